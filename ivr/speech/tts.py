"""Text + voice profile -> cached 8 kHz mono 16-bit WAV that Asterisk plays.

Rendering goes through pyttsx3 (espeak-ng) and sox. The cache key is a hash of the normalised text,
the profile fields that change the sound and the engine version, so a second render of the same
prompt is a file lookup. Files are written to a temp name and renamed: a crash never leaves half a
prompt in the cache.

pyttsx3 quirks handled here (measured on this machine, see shared notes):
- its espeak driver is one global C engine per process: one engine, one lock;
- ``runAndWait()`` can return before espeak's thread has written the file (multi-sentence Chinese
  text): wait for the ``finished-utterance`` callback, not for ``runAndWait``;
- ``runAndWait()`` with only property changes queued never returns: properties are always set in
  the same batch as a ``save_to_file``;
- a bad voice is reported only through the ``error`` callback: voices are validated when profiles
  load, and any callback error fails the render;
- ``save_to_file`` prints to stdout: silenced.
The ``espeak-cli`` backend (one ``espeak-ng`` process per prompt) is the isolated alternative.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import logging
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ivr.speech import audio
from ivr.speech.spoken import normalize_text
from ivr.speech.voices import VoiceProfile

log = logging.getLogger(__name__)

ENGINE_VERSION = "tts-1"  # bump when rendering changes, so old cache entries are not reused
Backend = Literal["pyttsx3", "espeak-cli"]
_FINISH_TIMEOUT_S = 60.0


class TtsError(RuntimeError):
    """A prompt could not be rendered; the message says which text and voice."""


@functools.cache
def espeak_version() -> str:
    try:
        out = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    m = re.search(r"(\d+\.\d+[\w.-]*)", out)
    return m.group(1) if m else "unknown"


class _Pyttsx3Synth:
    """The process-wide pyttsx3 engine (espeak can be initialised only once per process)."""

    _instance: _Pyttsx3Synth | None = None
    _create_lock = threading.Lock()

    def __init__(self) -> None:
        import pyttsx3

        self._lock = threading.Lock()
        self._engine = pyttsx3.init("espeak")
        self._finished = threading.Event()
        self._errors: list[str] = []
        self._engine.connect("finished-utterance", self._on_finished)
        self._engine.connect("error", self._on_error)

    @classmethod
    def get(cls) -> _Pyttsx3Synth:
        with cls._create_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _on_finished(self, name: Any = None, completed: bool = True) -> None:
        if not completed:
            self._errors.append("synthesis was cancelled")
        self._finished.set()

    def _on_error(self, name: Any = None, exception: BaseException | None = None) -> None:
        self._errors.append(repr(exception))
        self._finished.set()

    def synth(self, text: str, profile: VoiceProfile, out: Path) -> None:
        with self._lock, contextlib.redirect_stdout(io.StringIO()):
            self._finished.clear()
            self._errors.clear()
            eng = self._engine
            eng.setProperty("voice", profile.espeak_name)
            eng.setProperty("rate", profile.rate)
            eng.setProperty("pitch", profile.pitch)
            eng.setProperty("volume", profile.volume)
            eng.save_to_file(text, str(out))
            eng.runAndWait()
            if not self._finished.wait(_FINISH_TIMEOUT_S):
                raise TtsError(f"pyttsx3 did not finish within {_FINISH_TIMEOUT_S:.0f} s")
            if self._errors:
                raise TtsError(f"pyttsx3 reported: {'; '.join(self._errors)}")
        if not out.exists() or out.stat().st_size <= 44:
            raise TtsError("pyttsx3 wrote no audio")


def _espeak_cli_synth(text: str, profile: VoiceProfile, out: Path) -> None:
    proc = subprocess.run(
        ["espeak-ng", "-v", profile.espeak_name, "-s", str(profile.rate), "-p", str(profile.pitch),
         "-a", str(round(profile.volume * 100)), "-w", str(out), "--", text],
        capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 or not out.exists():
        raise TtsError(f"espeak-ng failed: {proc.stderr.strip()}")


@dataclass
class PrerenderReport:
    """What :meth:`TtsEngine.prerender` did; ``paths`` maps (text, voice) -> WAV."""

    paths: dict[tuple[str, str], Path] = field(default_factory=dict)
    rendered: int = 0
    cached: int = 0
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # (text, voice, message)

    @property
    def ok(self) -> bool:
        return not self.errors


class TtsEngine:
    """Renders prompts into ``cache_dir`` with the given voice profiles (name -> profile)."""

    def __init__(self, cache_dir: Path | str, voices: Mapping[str, VoiceProfile],
                 backend: Backend = "pyttsx3", gain_db: float = -3.0) -> None:
        if backend not in ("pyttsx3", "espeak-cli"):
            raise ValueError(f"unknown TTS backend {backend!r}")
        self.cache_dir = Path(cache_dir)
        self.voices = dict(voices)
        self.backend = backend
        self.gain_db = gain_db
        self.last_hit = False  # whether the last render() came from the cache (for stats)

    def profile(self, voice_name: str) -> VoiceProfile:
        try:
            return self.voices[voice_name]
        except KeyError:
            known = ", ".join(sorted(self.voices)) or "none loaded"
            raise TtsError(f"unknown voice {voice_name!r} (known: {known})") from None

    def cache_key(self, text: str, voice_name: str) -> str:
        profile = self.profile(voice_name)
        spoken = self.spoken_text(text, voice_name)
        material = json.dumps({"text": spoken, "voice": profile.synth_fields(),
                               "engine": ENGINE_VERSION, "backend": self.backend,
                               "espeak": espeak_version(), "gain": self.gain_db},
                              sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(material.encode()).hexdigest()[:32]

    def spoken_text(self, text: str, voice_name: str) -> str:
        """The text actually synthesised: numbers/prices/dates in words, whitespace collapsed."""
        profile = self.profile(voice_name)
        return " ".join(normalize_text(text, profile.language).split())

    def path_for(self, text: str, voice_name: str) -> Path:
        return self.cache_dir / f"{voice_name}-{self.cache_key(text, voice_name)}.wav"

    def render(self, text: str, voice_name: str) -> Path:
        """Return the 8 kHz mono 16-bit WAV for ``text`` in ``voice_name``, rendering it if needed.

        ``playable(path)`` (the path without ``.wav``) is what STREAM FILE / Playback take.
        """
        if not text or not text.strip():
            raise TtsError(f"empty prompt text for voice {voice_name!r}")
        out = self.path_for(text, voice_name)
        if out.exists():
            self.last_hit = True
            return out
        self.last_hit = False
        profile = self.profile(voice_name)
        spoken = self.spoken_text(text, voice_name)
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".tts-", dir=out.parent) as tmp:
            raw = Path(tmp) / "raw.wav"
            try:
                if self.backend == "pyttsx3":
                    _Pyttsx3Synth.get().synth(spoken, profile, raw)
                else:
                    _espeak_cli_synth(spoken, profile, raw)
                audio.to_asterisk_wav(raw, out, self.gain_db)
            except (TtsError, audio.AudioError, OSError, subprocess.SubprocessError) as exc:
                raise TtsError(f"rendering {text[:40]!r} with voice {voice_name!r} failed: "
                               f"{exc}") from exc
        return out

    def pcm(self, path: Path | str) -> bytes:
        """Raw 8 kHz s16le samples of a rendered prompt, for AudioSocket streaming."""
        return audio.pcm(path)

    def render_pcm(self, text: str, voice_name: str) -> bytes:
        return audio.pcm(self.render(text, voice_name))

    def prerender(self, items: Iterable[tuple[str, str]], progress: bool = True
                  ) -> PrerenderReport:
        """Render every (text, voice) before a campaign dials; failures are collected."""
        todo = list(dict.fromkeys(items))  # de-duplicate, keep order
        report = PrerenderReport()
        bar = _progress(len(todo)) if progress else contextlib.nullcontext(None)
        with bar as advance:
            for text, voice in todo:
                try:
                    report.paths[(text, voice)] = self.render(text, voice)
                    if self.last_hit:
                        report.cached += 1
                    else:
                        report.rendered += 1
                except TtsError as exc:
                    log.error("%s", exc)
                    report.errors.append((text, voice, str(exc)))
                if advance is not None:
                    advance()
        return report


def playable(path: Path | str) -> str:
    """The name Asterisk's STREAM FILE / Playback take: the path without its extension."""
    return str(Path(path).with_suffix(""))


@contextlib.contextmanager
def _progress(total: int) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), transient=False) as prog:
        task = prog.add_task("rendering prompts", total=total)
        yield lambda: prog.advance(task)


def timed_render(engine: TtsEngine, text: str, voice: str) -> tuple[Path, float]:
    """Render and return (path, wall seconds): used by the benchmark."""
    t0 = time.perf_counter()
    path = engine.render(text, voice)
    return path, time.perf_counter() - t0


__all__ = ["ENGINE_VERSION", "PrerenderReport", "TtsEngine", "TtsError", "playable",
           "timed_render"]
