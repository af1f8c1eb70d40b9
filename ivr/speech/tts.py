"""Text + voice profile -> cached 8 kHz mono 16-bit WAV that Asterisk plays.

Two backends render the same libespeak-ng voices and variants, then sox converts to 8 kHz:

- ``"espeak-cli"``: one ``espeak-ng`` process per prompt. Isolated and deterministic.
- ``"pyttsx3"``: pyttsx3's espeak driver in one persistent worker process
  (:mod:`ivr.speech.pyttsx3_worker`), started on first use and replaced if it dies or hangs.
  Driven in-process, pyttsx3 2.99 is unreliable (``runAndWait()`` returns before the file is
  written; ``runAndWait`` cancels espeak's queue whenever it is busy, e.g. still applying the
  properties just set, so spurious completed=False results appear (10-14 in 30 naive renders)
  and queued property changes can be dropped; a late callback writes whatever path is current).
  The worker applies properties, waits for espeak to be idle, runs one ``save_to_file`` per
  engine run, waits for ``finished-utterance`` completed=True and a complete WAV at a fresh path
  per attempt, retries cancelled attempts, and validates the voice first.

The cache key is a hash of the normalised text, the profile fields that change the sound, the
backend and the engine version, so a second render of the same prompt is a file lookup. Files are
written to a temp name and renamed: a crash never leaves half a prompt in the cache.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
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
from typing import TYPE_CHECKING, Any, Literal

from ivr.speech import audio
from ivr.speech.pyttsx3_worker import Pyttsx3Worker, WorkerError
from ivr.speech.spoken import normalize_text
from ivr.speech.voices import VoiceProfile, load_voices

if TYPE_CHECKING:
    from ivr.config import Settings

log = logging.getLogger(__name__)

ENGINE_VERSION = "tts-1"  # bump when rendering changes, so old cache entries are not reused
Backend = Literal["espeak-cli", "pyttsx3"]
BACKENDS: tuple[str, ...] = ("espeak-cli", "pyttsx3")
_FINISH_TIMEOUT_S = 60.0
DEFAULT_VOICES = {"cmn": "cmn-calm-male", "ko": "ko-calm-male", "en": "en-neutral"}


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
                 backend: Backend = "espeak-cli", gain_db: float = -3.0) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown TTS backend {backend!r} (known: {', '.join(BACKENDS)})")
        self.cache_dir = Path(cache_dir)
        self.voices = dict(voices)
        self.backend = backend
        self.gain_db = gain_db
        self.last_hit = False  # whether the last render() came from the cache (for stats)
        self._worker: Pyttsx3Worker | None = None
        self._worker_lock = threading.Lock()

    def worker(self) -> Pyttsx3Worker:
        """The pyttsx3 worker client (created on first use; its process starts lazily)."""
        with self._worker_lock:
            if self._worker is None:
                self._worker = Pyttsx3Worker()
            return self._worker

    def close(self) -> None:
        """Stop the pyttsx3 worker process, if any (a later render starts a new one)."""
        with self._worker_lock:
            if self._worker is not None:
                self._worker.close()

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
            try:
                raw = self._synth(spoken, profile, Path(tmp))
                audio.to_asterisk_wav(raw, out, self.gain_db)
            except (TtsError, WorkerError, audio.AudioError, OSError,
                    subprocess.SubprocessError) as exc:
                raise TtsError(f"rendering {text[:40]!r} with voice {voice_name!r} failed: "
                               f"{exc}") from exc
        return out

    def _synth(self, spoken: str, profile: VoiceProfile, tmp: Path) -> Path:
        """Backend WAV (any rate) of ``spoken`` inside the private directory ``tmp``."""
        if self.backend == "pyttsx3":
            return self.worker().render(spoken, profile.espeak_name, profile.rate,
                                        profile.pitch, profile.volume, tmp)
        raw = tmp / "raw.wav"
        _espeak_cli_synth(spoken, profile, raw)
        return raw

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


_SOUND_EXT = (".wav", ".sln", ".gsm", ".ulaw", ".alaw", ".g722", ".sln16")


def playable(path: Path | str) -> str:
    """The name Asterisk's STREAM FILE / Playback take: the path without its sound extension."""
    s = str(path)
    for ext in _SOUND_EXT:
        if s.endswith(ext):
            return s[: -len(ext)]
    return s


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


__all__ = ["BACKENDS", "ENGINE_VERSION", "PrerenderReport", "TtsEngine", "TtsError", "playable",
           "timed_render"]


@functools.cache
def _engine(cache_dir: Path, voices_dir: Path, backend: str) -> TtsEngine:
    return TtsEngine(cache_dir, load_voices(voices_dir), backend=backend)  # type: ignore[arg-type]


def engine(settings: Settings) -> TtsEngine:
    """The settings' engine, one per process and prompt cache: calls, prerendering and the CLI
    share it, so a prompt rendered once is a file lookup for all of them."""
    return _engine(settings.prompts_dir / "tts", Path(settings.speech.voices_dir),
                   settings.speech.tts_backend)


def default_voice(settings: Settings, language: str | None = None) -> str:
    """The voice profile for ``language`` (default: the settings') when nobody chose one."""
    lang = language or settings.language
    return DEFAULT_VOICES.get(lang, DEFAULT_VOICES["cmn"])
