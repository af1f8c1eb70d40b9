"""pyttsx3 (espeak-ng driver) rendering in a persistent worker process, and its client.

Why a worker process, and how pyttsx3 2.99's espeak driver must be driven (measured here):

- The driver initialises libespeak-ng in *asynchronous* retrieval mode: synthesis and every
  ``SetVoiceByName``/``SetParameter`` are queued to espeak's own thread. The driver's ``stop()``
  (called by every ``runAndWait()`` through ``endLoop``) cancels whatever that thread is doing
  when ``espeak_IsPlaying()`` is true - which can be the just-queued property changes - and leaves a
  ``_stopping`` flag behind that cancels the *next* synthesis (``finished-utterance`` with
  completed=False). So: apply the properties, wait until espeak's queue is idle, then queue one
  ``save_to_file`` and run; wait for ``finished-utterance`` completed=True and for an idle queue
  before the next render.
- The first ``runAndWait()`` returns before synthesis ends (its queued ``endLoop`` is pumped
  before the loop starts); a warm-up render at start-up leaves the proxy idle so later runs block
  properly. We wait for the callback anyway.
- The WAV is written by espeak's thread when the utterance ends, to whatever ``save_to_file``
  path is current *then*: every attempt gets a fresh path, and no attempt starts while espeak is
  busy, so a late callback can never write a later prompt's file. A worker that does not become
  idle exits; the client starts a new one.
- A bad voice is reported only through the ``error`` callback (the previous voice stays), and a bad
  variant (``cmn+zz``) is dropped silently: the worker checks the base voice against the library's
  list and reads the current voice back after setting it.
- The driver prints "Audio saved to ..." on stdout: the protocol uses a private copy of the
  original stdout and fd 1 goes to /dev/null.

Protocol: one JSON object per line. Client -> worker: ``{"text", "voice", "rate", "pitch",
"volume", "dir"}``; worker -> client: ``{"ok": true, "path", "attempts", "cancelled"}`` or
``{"ok": false, "kind": "voice"|"render", "error"}``. The first line from the worker is
``{"ready": true}`` (or ``{"ready": false, "error"}``).
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

MAX_ATTEMPTS = 4  # cancelled/invalid renders retried inside the worker
IDLE_TIMEOUT_S = 5.0  # espeak's queue must drain within this, or the worker is unusable
START_TIMEOUT_S = 30.0
ESPEAK_RATE = 22050  # the driver writes this rate into every WAV header


class WorkerError(RuntimeError):
    """A render failed. ``kind`` is "voice" (bad voice: never retried) or "render"."""

    def __init__(self, message: str, kind: str = "render") -> None:
        super().__init__(message)
        self.kind = kind


# ----------------------------------------------------------------------------- worker side

class _Renderer:
    """Owns the pyttsx3 engine inside the worker process."""

    def __init__(self) -> None:
        import pyttsx3
        from pyttsx3.drivers import _espeak

        self._espeak = _espeak
        self.engine = pyttsx3.init("espeak")
        self.done = threading.Event()
        self.completions: list[bool] = []
        self.errors: list[str] = []
        self.engine.connect("finished-utterance", self._on_finished)
        self.engine.connect("error", self._on_error)
        self.voices = {str(v.id).rsplit("/", 1)[-1].lower()
                       for v in self.engine.getProperty("voices")}
        self._applied: tuple[Any, ...] | None = None
        self.warm_up()

    def _on_finished(self, name: Any = None, completed: bool = False) -> None:
        self.completions.append(bool(completed))
        self.done.set()

    def _on_error(self, name: Any = None, exception: BaseException | None = None) -> None:
        self.errors.append(str(exception))

    def wait_idle(self) -> None:
        deadline = time.monotonic() + IDLE_TIMEOUT_S
        while self._espeak.IsPlaying():
            if time.monotonic() > deadline:
                raise SystemExit("espeak did not become idle; worker exits so a fresh one starts")
            time.sleep(0.002)

    def warm_up(self) -> None:
        """One throw-away render: afterwards the driver proxy is idle and runAndWait blocks."""
        import tempfile

        with tempfile.TemporaryDirectory(prefix="pyttsx3-warm-") as tmp:
            self._attempt("a", Path(tmp))

    def apply(self, voice: str, rate: int, pitch: int, volume: float) -> None:
        base = voice.split("+", 1)[0].lower()
        if base not in self.voices:
            raise WorkerError(f"espeak-ng (through pyttsx3) has no voice {base!r}", "voice")
        if self.engine.isBusy():  # properties would be queued behind a run and cancelled
            raise SystemExit("pyttsx3 proxy unexpectedly busy; worker exits")
        self.errors.clear()
        self.engine.setProperty("voice", voice)
        self.engine.setProperty("rate", int(rate))
        self.engine.setProperty("pitch", int(pitch))
        self.engine.setProperty("volume", float(volume))
        self.wait_idle()  # properties are queued to espeak's thread: let them land first
        if self.errors:
            raise WorkerError(f"voice {voice!r} rejected: {'; '.join(self.errors)}", "voice")
        current = str(self.engine.getProperty("voice") or "").rsplit("/", 1)[-1].lower()
        if current != voice.lower():  # a bad variant is dropped without any error
            raise WorkerError(f"voice {voice!r} not accepted by espeak-ng (it selected "
                              f"{current!r}; check the variant)", "voice")

    def _attempt(self, text: str, directory: Path) -> tuple[Path | None, bool]:
        """One engine run with one save_to_file. Returns (valid file or None, was_cancelled)."""
        self.wait_idle()
        path = directory / f"attempt-{uuid.uuid4().hex}.wav"  # fresh: late writes land nowhere
        self.done.clear()
        self.completions.clear()
        self.engine.save_to_file(text, str(path))
        self.engine.runAndWait()
        finished = self.done.wait(timeout=max(30.0, len(text) * 0.5))
        self.wait_idle()
        if not finished:
            raise SystemExit("no finished-utterance callback; worker exits")
        if self.completions != [True]:
            return None, True
        return (path if _complete_wav(path) else None), False

    def render(self, req: dict[str, Any]) -> dict[str, Any]:
        text = str(req["text"])
        directory = Path(req["dir"])
        cancelled = 0
        for attempt in range(1, MAX_ATTEMPTS + 1):
            # re-applied every attempt: a cancel also drops property changes still queued
            self.apply(str(req["voice"]), req["rate"], req["pitch"], req["volume"])
            path, was_cancelled = self._attempt(text, directory)
            cancelled += was_cancelled
            if path is not None:
                return {"ok": True, "path": str(path), "attempts": attempt,
                        "cancelled": cancelled}
        return {"ok": False, "kind": "render",
                "error": f"no complete WAV after {MAX_ATTEMPTS} attempts ({cancelled} cancelled)"}


def _complete_wav(path: Path, settle_s: float = 1.0) -> bool:
    """The file exists, its header is mono 16-bit 22050 Hz with audio, and its size matches the
    header and has stopped changing."""
    deadline = time.monotonic() + settle_s
    while True:
        try:
            size = path.stat().st_size
            with wave.open(str(path), "rb") as w:
                params = (w.getnchannels(), w.getsampwidth(), w.getframerate())
                frames = w.getnframes()
            if (params == (1, 2, ESPEAK_RATE) and frames > 0
                    and size == 44 + 2 * frames and path.stat().st_size == size):
                return True
        except (OSError, wave.Error, EOFError):
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)


def worker_main() -> None:
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # the driver's print() chatter goes nowhere
    sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - lives with the process

    def send(obj: dict[str, Any]) -> None:
        proto.write(json.dumps(obj, ensure_ascii=False) + "\n")

    try:
        renderer = _Renderer()
    except Exception as exc:  # noqa: BLE001 - reported to the client, which raises
        send({"ready": False, "error": f"{type(exc).__name__}: {exc}"})
        return
    send({"ready": True, "voices": len(renderer.voices)})
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            reply = renderer.render(json.loads(line))
        except WorkerError as exc:
            reply = {"ok": False, "kind": exc.kind, "error": str(exc)}
        except (KeyError, TypeError, ValueError) as exc:
            reply = {"ok": False, "kind": "render", "error": f"bad request: {exc}"}
        send(reply)


# ----------------------------------------------------------------------------- client side

@dataclass
class WorkerStats:
    started: int = 0  # worker processes started (1 + restarts)
    renders: int = 0
    cancelled: int = 0  # cancelled attempts the worker retried
    retried: int = 0  # renders repeated on a fresh worker after a crash/timeout


class Pyttsx3Worker:
    """Client of one worker process; thread-safe (renders are serialised).

    ``recycle_after`` renders, the worker is replaced (bounds any leak in the library; 1 gives
    one process per prompt). A dead, hung or forked-away worker is replaced transparently.
    """

    def __init__(self, timeout_s: float = 60.0, recycle_after: int | None = 2000) -> None:
        self.timeout_s = timeout_s
        self.recycle_after = recycle_after
        self.stats = WorkerStats()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: collections.deque[str] = collections.deque(maxlen=40)
        self._owner_pid = 0
        self._served = 0

    # -- process management
    def _start(self) -> None:
        pkg_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_root, env.get("PYTHONPATH")) if p)
        proc = subprocess.Popen(
            [sys.executable, "-m", "ivr.speech.pyttsx3_worker"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
            bufsize=1, env=env, close_fds=True)
        lines: queue.Queue[str | None] = queue.Queue()
        assert proc.stdout is not None and proc.stderr is not None
        threading.Thread(target=_pump_lines, args=(proc.stdout, lines), daemon=True).start()
        threading.Thread(target=_pump_stderr, args=(proc.stderr, self._stderr),
                         daemon=True).start()
        self._proc, self._lines = proc, lines
        self._owner_pid, self._served = os.getpid(), 0
        self.stats.started += 1
        hello = self._read(START_TIMEOUT_S)
        if not hello.get("ready"):
            self._stop()
            raise WorkerError(f"pyttsx3 worker failed to start: {hello.get('error')}")

    def _alive(self) -> bool:
        return (self._proc is not None and self._proc.poll() is None
                and self._owner_pid == os.getpid())

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or self._owner_pid != os.getpid():
            return  # a forked child never touches its parent's worker
        try:
            if proc.stdin:
                proc.stdin.close()
            proc.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait(timeout=5)

    def close(self) -> None:
        with self._lock:
            self._stop()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown
            self._stop()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._alive() and self._proc else None

    # -- requests
    def _read(self, timeout: float) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise WorkerError(f"pyttsx3 worker gave no answer within {timeout:.0f} s") from None
        if line is None:
            time.sleep(0.05)  # let the stderr pump catch the last words
            tail = " | ".join(list(self._stderr)[-5:]) or "no stderr"
            raise WorkerError(f"pyttsx3 worker died ({tail})")
        data: dict[str, Any] = json.loads(line)
        return data

    def _request(self, req: dict[str, Any]) -> dict[str, Any]:
        if not self._alive() or (self.recycle_after and self._served >= self.recycle_after):
            self._stop()
            self._start()
        assert self._proc is not None and self._proc.stdin is not None
        self._served += 1
        try:
            self._proc.stdin.write(json.dumps(req, ensure_ascii=False) + "\n")
            self._proc.stdin.flush()
        except OSError as exc:
            raise WorkerError(f"pyttsx3 worker pipe broken: {exc}") from exc
        return self._read(self.timeout_s)

    def render(self, text: str, voice: str, rate: int, pitch: int, volume: float,
               directory: Path) -> Path:
        """Render ``text`` into a new 22050 Hz mono 16-bit WAV inside ``directory``."""
        req = {"text": text, "voice": voice, "rate": rate, "pitch": pitch, "volume": volume,
               "dir": str(directory)}
        with self._lock:
            for tries in (1, 2):
                try:
                    reply = self._request(req)
                except WorkerError:
                    self._kill()  # hung or dead: a late write must not reach the next prompt
                    if tries == 2:
                        raise
                    self.stats.retried += 1
                    continue
                if reply.get("ok"):
                    self.stats.renders += 1
                    self.stats.cancelled += int(reply.get("cancelled", 0))
                    return Path(reply["path"])
                raise WorkerError(str(reply.get("error")), str(reply.get("kind", "render")))
        raise AssertionError("unreachable")  # pragma: no cover

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and self._owner_pid == os.getpid():
            proc.kill()
            proc.wait(timeout=5)


def _pump_lines(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    try:
        for line in stream:
            lines.put(line)
    except (OSError, ValueError):
        pass
    lines.put(None)


def _pump_stderr(stream: IO[str], tail: collections.deque[str]) -> None:
    try:
        for line in stream:
            tail.append(line.rstrip())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    worker_main()
