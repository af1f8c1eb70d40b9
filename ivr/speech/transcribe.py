"""Transcribe open answers (free-form Vosk decoding of their recordings), after the call.

An open question ("any suggestions?") is recorded, not recognised against a grammar. A free-form
decode costs about half a second of CPU per second of audio on the small Korean model, too slow
to keep a caller waiting, so recordings are transcribed after the call: the survey handler hands
the finished call to :func:`schedule` (one background worker per process, so transcription never
takes more than one core from live calls), and ``ivr speech transcribe-pending`` catches up on
whatever is left (a daemon restart, a model installed later).

``answers.transcript`` of a recorded answer: NULL = not transcribed yet, '' = transcribed and
nothing was heard, else the words. A model that cannot decode without a grammar (no ``Gr.fst`` /
``HCLG.fst`` in ``graph/``) leaves transcripts NULL.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import wave
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import sqlite_utils

from ivr.config import Settings
from ivr.speech.models import LoadedModel, ModelError, get_model
from ivr.store import open_db

log = logging.getLogger(__name__)

CHUNK_S = 0.5  # audio handed to Vosk per call while decoding a file


class TranscribeError(Exception):
    """A recording cannot be transcribed (unreadable, wrong format)."""


def can_transcribe(model: LoadedModel) -> bool:
    """True when the model has a language model for free-form decoding."""
    graph = Path(model.path) / "graph"
    return (graph / "Gr.fst").exists() or (graph / "HCLG.fst").exists()


def transcribe_wav(model: LoadedModel, path: Path) -> str:
    """The words heard in a mono 16-bit WAV ('' when nothing was), the unknown token dropped."""
    import vosk

    try:
        with wave.open(str(path), "rb") as w:
            if w.getsampwidth() != 2 or w.getnchannels() != 1:
                raise TranscribeError(f"{path}: need mono 16-bit PCM WAV, got "
                                      f"{w.getnchannels()} channel(s) of {8 * w.getsampwidth()} "
                                      f"bit")
            rate = w.getframerate()
            rec = vosk.KaldiRecognizer(model.model, float(rate))
            step = max(1, int(rate * CHUNK_S))
            texts: list[str] = []
            while frames := w.readframes(step):
                if rec.AcceptWaveform(frames):
                    texts.append(json.loads(rec.Result()).get("text", ""))
            texts.append(json.loads(rec.FinalResult()).get("text", ""))
    except (wave.Error, EOFError, OSError) as exc:
        raise TranscribeError(f"{path}: cannot read the recording: {exc}") from exc
    words = [w for t in texts for w in t.split() if w != model.unk_token]
    return " ".join(words)


ModelFor = Callable[[str], "LoadedModel | None"]


def models_from(settings: Settings) -> ModelFor:
    """language -> the configured model when it is installed and can transcribe, else None."""
    cache: dict[str, LoadedModel | None] = {}

    def model_for(language: str) -> LoadedModel | None:
        if language not in cache:
            model = None
            if language in settings.speech.models:
                try:
                    model = get_model(language, settings)
                except ModelError as exc:
                    log.info("no transcription for %s: %s", language, exc)
            cache[language] = model if model is not None and can_transcribe(model) else None
        return cache[language]

    return model_for


def pending(db: sqlite_utils.Database, call_id: str | None = None) -> list[dict[str, Any]]:
    """Recorded answers not transcribed yet, with their call's language (oldest first)."""
    sql = ("select a.id, a.call_id, a.node, a.recording, coalesce(c.language, '') as language "
           "from answers a left join calls c on c.id = a.call_id "
           "where coalesce(a.recording, '') != '' and a.transcript is null")
    params: list[str] = []
    if call_id is not None:
        sql += " and a.call_id = ?"
        params.append(call_id)
    return list(db.query(sql + " order by a.id", params))


def transcribe_pending(db: sqlite_utils.Database, model_for: ModelFor,
                       call_id: str | None = None,
                       on_error: Callable[[str], None] | None = None) -> dict[str, int]:
    """Transcribe the pending recorded answers (of one call, or all); returns counts of
    ``transcribed``, ``no_model`` (language without a model that can) and ``failed``
    (missing or unreadable file: left pending, reported to ``on_error``, default the log)."""
    counts = {"transcribed": 0, "no_model": 0, "failed": 0}
    for row in pending(db, call_id):
        model = model_for(str(row["language"]))
        if model is None:
            counts["no_model"] += 1
            continue
        try:
            text = transcribe_wav(model, Path(str(row["recording"])))
        except TranscribeError as exc:
            (on_error or log.warning)(f"answer {row['id']} (call {row['call_id']}, "
                                      f"{row['node']}): {exc}")
            counts["failed"] += 1
            continue
        db.table("answers").update(row["id"], {"transcript": text})
        counts["transcribed"] += 1
    return counts


_worker: ThreadPoolExecutor | None = None
WORKER_NICE = 10  # live calls' recognisers come first when the CPU is busy


def _lower_priority() -> None:
    # Linux schedules threads as tasks: this lowers the worker thread alone, not the process.
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICE)
    except (AttributeError, OSError) as exc:
        log.debug("transcription worker keeps its priority: %s", exc)


def schedule(settings: Settings, call_id: str) -> Future[dict[str, int]]:
    """Transcribe a finished call's recordings in the background (one worker per process; it has
    its own database connection, SQLite connections stay in their thread)."""
    global _worker
    if _worker is None:
        _worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="transcribe",
                                     initializer=_lower_priority)

    def job() -> dict[str, int]:
        try:
            return transcribe_pending(open_db(settings.db_path), models_from(settings), call_id)
        except Exception:  # a failed transcription never matters to the call; log it
            log.exception("transcription of call %s failed", call_id)
            raise

    return _worker.submit(job)
