"""Open answers are transcribed after the call with the real Korean model (free-form decoding)."""

from __future__ import annotations

import wave
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from ivr.cli import root
from ivr.config import load_settings
from ivr.speech import transcribe as tr
from ivr.speech.models import LoadedModel
from ivr.store import CallRecorder, open_db

pytestmark = pytest.mark.asr
SUGGESTION = "라이브 방송 상품 품질을 더 꼼꼼히 확인해 주세요"


def write_wav(path: Path, pcm: bytes, rate: int = 8000, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return path


@pytest.fixture()
def recordings(tmp_path: Path, speak: Callable[..., bytes]) -> dict[str, Path]:
    return {
        "speech": write_wav(tmp_path / "speech.wav", speak(SUGGESTION, "ko+f3", 150)),
        "silence": write_wav(tmp_path / "silence.wav", bytes(8000 * 2 * 2)),
    }


def test_transcribe_wav_hears_words_and_silence_is_empty(
        ko_model: LoadedModel, recordings: dict[str, Path]) -> None:
    assert tr.can_transcribe(ko_model)
    text = tr.transcribe_wav(ko_model, recordings["speech"])
    # The small model on espeak audio gets few words right, but it hears speech as words; the
    # unknown token never reaches the transcript.
    assert len(text.split()) >= 3, text
    assert ko_model.unk_token not in text.split()
    assert tr.transcribe_wav(ko_model, recordings["silence"]) == ""


def test_unreadable_recordings_are_refused_with_the_reason(ko_model: LoadedModel,
                                                          tmp_path: Path) -> None:
    stereo = write_wav(tmp_path / "stereo.wav", bytes(8000 * 4), channels=2)
    with pytest.raises(tr.TranscribeError, match="mono 16-bit"):
        tr.transcribe_wav(ko_model, stereo)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not a wav file at all")
    with pytest.raises(tr.TranscribeError, match="cannot read"):
        tr.transcribe_wav(ko_model, junk)
    with pytest.raises(tr.TranscribeError, match="cannot read"):
        tr.transcribe_wav(ko_model, tmp_path / "missing.wav")


def _call(db: object, call_id: str, language: str, answers: list[tuple[str, str | None]]) -> None:
    rec = CallRecorder(db, call_id)  # type: ignore[arg-type]
    rec.start(language=language)
    for node, recording in answers:
        rec.answer(node, recording=recording, transcript=None, input_mode="voice")


def test_transcribe_pending_fills_transcripts_once_and_keeps_failures_pending(
        ko_model: LoadedModel, recordings: dict[str, Path], tmp_path: Path) -> None:
    db = open_db(tmp_path / "ivr.db")
    _call(db, "c1", "ko", [("suggestions", str(recordings["speech"])), ("satisfaction", None)])
    _call(db, "c2", "ko", [("suggestions", str(recordings["silence"])),
                           ("other", str(tmp_path / "gone.wav"))])
    _call(db, "c3", "xx", [("suggestions", str(recordings["speech"]))])
    errors: list[str] = []
    models = {"ko": ko_model}
    counts = tr.transcribe_pending(db, models.get, on_error=errors.append)
    assert counts == {"transcribed": 2, "no_model": 1, "failed": 1}
    assert len(errors) == 1 and "gone.wav" in errors[0] and "c2" in errors[0]
    rows = {(r["call_id"], r["node"]): r["transcript"] for r in db["answers"].rows}
    assert rows[("c1", "suggestions")]
    assert rows[("c1", "satisfaction")] is None  # not recorded: nothing to transcribe
    assert rows[("c2", "suggestions")] == ""  # transcribed, nothing heard
    assert rows[("c2", "other")] is None and rows[("c3", "suggestions")] is None  # still pending
    # Done ones are not decoded again; one call alone can be asked for.
    assert tr.transcribe_pending(db, models.get, call_id="c1") == {
        "transcribed": 0, "no_model": 0, "failed": 0}
    assert [r["node"] for r in tr.pending(db)] == ["other", "suggestions"]


def test_transcribe_pending_cli_reports_counts_and_failures(
        ko_model: LoadedModel, recordings: dict[str, Path], tmp_path: Path) -> None:
    cfg = tmp_path / "ivr.yaml"
    cfg.write_text(f"home: {tmp_path / 'home'}\n", encoding="utf-8")
    runner = CliRunner()
    db = open_db(load_settings(str(cfg)).db_path)
    _call(db, "c1", "ko", [("suggestions", str(recordings["speech"]))])
    _call(db, "c2", "ko", [("suggestions", str(tmp_path / "gone.wav"))])
    res = runner.invoke(root, ["--config", str(cfg), "speech", "transcribe-pending"])
    assert res.exit_code == 1, res.output
    assert "transcribed=1 no_model=0 failed=1" in res.output
    assert "gone.wav" in res.output and "stay pending" in res.output
    res = runner.invoke(root, ["--config", str(cfg), "speech", "transcribe", "--lang", "ko",
                               str(recordings["speech"])])
    assert res.exit_code == 0, res.output
    assert res.output.startswith(f"{recordings['speech']}\t") and len(res.output.split()) >= 4
