"""ASR benchmark: Korean survey answers over a telephone path, with and without noise.

Generates its own test set (espeak-ng Korean voice variants at several speeds, 8 kHz, mu-law round
trip, clean / 20 dB / 10 dB SNR white or babble noise), decodes each utterance through the real
TurnRecognizer with the production grammar of the question it answers (question_grammar + the
default second-opinion decoders), and scores the intent decisions. The questions and their phrases
are read from the Korean survey script (surveys/platform_satisfaction.ko.yaml, node intents plus
the global intents heard there), so the bench measures what the survey really asks.
In-grammar answers should be accepted with the right intent; out-of-grammar utterances (chatter,
answers to other questions) should be rejected.

Speakers are split: DEV voices tune the thresholds (``--tune``), TEST voices are reported.

Figures (last stdout line, JSON), all on the TEST split:
  intent_accuracy     raw best guess (before rejection) right, over in-grammar utterances
  accepted            share of in-grammar utterances accepted (any intent)
  accepted_precision  accepted with the right intent / all accepted (in-grammar + out-of-grammar)
  oog_false_accept    out-of-grammar utterances accepted as some intent
  rtf_p50 / rtf_p95   CPU seconds per second of audio fed to the recognizer, per utterance

Usage:  python3 bench/asr.py [--quick] [--tune] [--redecode]
Audio and decodes are cached under var/bench-cache/asr/ (delete it to regenerate).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ivr.config import Settings  # noqa: E402
from ivr.speech.grammar import question_grammar  # noqa: E402
from ivr.speech.intents import (  # noqa: E402
    Thresholds,
    check_features,
    classify,
    rejection,
    thresholds_for,
)
from ivr.speech.models import get_model  # noqa: E402
from ivr.speech.recognizer import DEFAULT_CHECKS, TurnRecognizer, has_words  # noqa: E402
from ivr.survey.loader import load_script  # noqa: E402

CACHE = ROOT / "var" / "bench-cache" / "asr"
RATE = 8000
DECODE_VERSION = "5"  # bump when decoding (grammar recipe, VAD) changes

SCRIPT = ROOT / "surveys" / "platform_satisfaction.ko.yaml"


def survey_questions(path: Path = SCRIPT) -> dict[str, dict[str, list[str]]]:
    """question node -> intent -> Korean phrases (node intents + the global intents heard there)."""
    script = load_script(path)
    out: dict[str, dict[str, list[str]]] = {}
    for name, node in script.nodes.items():
        if node.kind != "question":
            continue
        intents = script.phrases_of(node, "ko")
        if intents:
            out[name] = intents
    return out


QUESTIONS = survey_questions()
# Things callers say that answer nothing; they must be rejected (ask again).
CHATTER = [
    "오늘 날씨 좋네요", "잘 모르겠어요", "누구세요", "여보세요", "뭐라고요", "잠깐만요",
    "글쎄요", "택배 아직 안 왔어요", "생각 좀 해 볼게요", "어디서 전화 하셨어요",
    "감사합니다", "지금 운전 중이에요",
]
BABBLE_TEXT = [
    "오늘 회의는 오후 세 시에 시작합니다 모두 늦지 않게 와 주세요",
    "어제 본 영화가 정말 재미있었어요 다음에 같이 봐요",
    "이번 주말에는 가족과 함께 바다에 갈 예정입니다",
    "지하철 이호선은 지금 운행이 지연되고 있습니다",
    "점심 메뉴로 김치찌개와 된장찌개 중에 골라 주세요",
    "새로 나온 휴대폰은 배터리가 아주 오래 갑니다",
]
DEV_VOICES = ["ko+m3", "ko+f3", "ko+m1"]
TEST_VOICES = ["ko+f2", "ko+m5", "ko+f4"]
SPEEDS = [135, 160, 185]
NOISE = {"clean": None, "snr20": 20.0, "snr10": 10.0}


def question_intents(question: str) -> dict[str, list[str]]:
    return QUESTIONS[question]


def build_items(voices: list[str], split: str) -> list[dict[str, Any]]:
    """Every (question, text, truth, voice, speed) of one split."""
    items = []
    for q in QUESTIONS:
        intents = question_intents(q)
        words = {w for ps in intents.values() for p in ps for w in p.split()}
        texts: list[tuple[str, str | None]] = [(p, i) for i, ps in intents.items() for p in ps]
        # Answers to other questions are out of this question's grammar; skip those sharing a
        # word with it (they might legitimately mean one of its answers).
        cross = [p for oq, ints in QUESTIONS.items() if oq != q for ps in ints.values()
                 for p in ps if not words & set(p.split())]
        rnd = random.Random(q)
        texts += [(t, None) for t in CHATTER + rnd.sample(cross, min(6, len(cross)))]
        for (text, truth), voice in itertools.product(texts, voices):
            speed = SPEEDS[int(_h(text, voice)[:4], 16) % len(SPEEDS)]
            items.append({"question": q, "text": text, "truth": truth, "voice": voice,
                          "speed": speed, "split": split})
    return items


def _h(*parts: object) -> str:
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()


# ---- audio -------------------------------------------------------------------------------------
def speak(text: str, voice: str, speed: int) -> array:
    """espeak-ng -> 8 kHz 16-bit samples with 400 ms lead-in and 800 ms tail silence (cached)."""
    path = CACHE / "audio" / f"{_h(text, voice, speed)}.s16"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / "a.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(wav), text],
                           check=True, capture_output=True)
            raw = Path(tmp) / "a.s16"
            subprocess.run(["sox", str(wav), "-r", str(RATE), "-c", "1", "-b", "16", "-e",
                            "signed-integer", "-t", "raw", str(raw), "gain", "-3", "rate", "-h",
                            "pad", "0.4", "0.8"], check=True, capture_output=True)
            shutil.move(str(raw), path)
    samples = array("h")
    samples.frombytes(path.read_bytes())
    return samples


_BABBLE: array | None = None


def babble() -> array:
    global _BABBLE
    if _BABBLE is None:
        tracks = [speak(t, v, 160) for t, v in
                  zip(BABBLE_TEXT, ["ko+m2", "ko+f1", "ko+m4", "ko+f5", "ko+m6", "ko+f3"],
                      strict=True)]
        n = max(len(t) for t in tracks)
        mix = [0.0] * n
        for k, t in enumerate(tracks):
            off = k * 1777
            for i, s in enumerate(t):
                mix[(i + off) % n] += s
        _BABBLE = array("h", (max(-32768, min(32767, int(v / 2))) for v in mix))
    return _BABBLE


def add_noise(speech: array, snr_db: float, key: str) -> array:
    """Speech + white or babble noise at ``snr_db`` (speech power over the voiced part)."""
    rnd = random.Random(key)
    lead, tail = int(0.4 * RATE), int(0.8 * RATE)
    core = speech[lead:len(speech) - tail] or speech
    p_speech = sum(s * s for s in core) / len(core)
    if rnd.random() < 0.5:
        noise = [rnd.gauss(0.0, 1.0) for _ in speech]
    else:
        b = babble()
        off = rnd.randrange(len(b))
        noise = [float(b[(off + i) % len(b)]) for i in range(len(speech))]
    p_noise = sum(v * v for v in noise) / len(noise)
    gain = math.sqrt(p_speech / (p_noise * 10 ** (snr_db / 10)))
    return array("h", (max(-32768, min(32767, int(s + gain * v)))
                       for s, v in zip(speech, noise, strict=True)))


def _mulaw_tables() -> tuple[list[int], list[int]]:
    dec = []
    for b in range(256):
        u = ~b & 0xFF
        t = ((u & 0x0F) << 3) + 0x84
        t <<= (u & 0x70) >> 4
        dec.append((0x84 - t) if u & 0x80 else (t - 0x84))
    # encode: nearest decoded value (G.711 mu-law, round trip only needs consistency)
    enc = []
    order = sorted(range(256), key=lambda c: dec[c])
    values = [dec[c] for c in order]
    j = 0
    for x in range(-32768, 32768):
        while j + 1 < len(values) and abs(values[j + 1] - x) <= abs(values[j] - x):
            j += 1
        enc.append(order[j])
    return enc, dec


_MU: tuple[list[int], list[int]] | None = None


def mulaw_roundtrip(samples: array) -> array:
    """The telephone codec: 16-bit -> G.711 mu-law -> 16-bit."""
    global _MU
    if _MU is None:
        _MU = _mulaw_tables()
    enc, dec = _MU
    return array("h", (dec[enc[s + 32768]] for s in samples))


def telephone_audio(item: dict[str, Any], noise: str) -> bytes:
    speech = speak(item["text"], item["voice"], item["speed"])
    snr = NOISE[noise]
    if snr is not None:
        speech = add_noise(speech, snr, _h(item["text"], item["voice"], noise))
    return mulaw_roundtrip(speech).tobytes()


# ---- decoding ----------------------------------------------------------------------------------
def decode_all(items: list[dict[str, Any]], model: Any, redecode: bool) -> list[dict[str, Any]]:
    """Decode every item x noise level (cached per DECODE_VERSION); returns decode records."""
    grammars = {q: question_grammar(question_intents(q), model, language="ko", question=q,
                                    source=str(SCRIPT))
                for q in QUESTIONS}
    cache_file = CACHE / f"decodes-v{DECODE_VERSION}.json"
    cache: dict[str, Any] = {}
    if cache_file.exists() and not redecode:
        cache = json.loads(cache_file.read_text(encoding="utf-8"))
    out = []
    for n, (item, noise) in enumerate(itertools.product(items, NOISE)):
        key = _h(item["question"], item["text"], item["voice"], item["speed"], noise,
                 json.dumps(grammars[item["question"]], ensure_ascii=False), DEFAULT_CHECKS,
                 model.path.name)  # the name carries the decoder tuning's digest
        if key not in cache:
            pcm = telephone_audio(item, noise)
            rec = TurnRecognizer(model, grammars[item["question"]],
                                 question_intents(item["question"]))
            t0 = time.process_time()
            step = 320
            events = []
            for i in range(0, len(pcm), step):
                ev = rec.feed(pcm[i:i + step])
                while ev is not None:
                    events.append((ev.value, rec.frames * 20))
                    ev = rec.feed(b"")
                if rec.state == "done":
                    break
            if rec.state != "done":
                ev = rec.finish()
                if ev is not None:
                    events.append((ev.value, rec.frames * 20))
            hyp = rec.result()
            cpu = time.process_time() - t0
            audio_s = rec.frames * 0.02
            cache[key] = {"segments": rec.raw_results(), "checks": rec.check_results(),
                          "speech_span": rec.speech_span,
                          "events": events, "rtf": cpu / max(audio_s, 0.02),
                          "live_intent": hyp.intent}
            if n % 200 == 0:
                print(f"decoded {n}/{len(items) * len(NOISE)}", file=sys.stderr)
                cache_file.parent.mkdir(parents=True, exist_ok=True)
                cache_file.write_text(json.dumps(cache, ensure_ascii=False), encoding="utf-8")
        out.append({**item, "noise": noise, **cache[key]})
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    cache_file.write_text(json.dumps(cache, ensure_ascii=False), encoding="utf-8")
    return out


PERMISSIVE = Thresholds(min_posterior=0.0, min_margin=-1e9, min_coverage=0.0,
                        max_edge_gap_ms=1e12, min_speech_ms=0.0, max_sec_per_word=1e12)


def candidates(rec: dict[str, Any], unk: str, scale: Thresholds) -> tuple[str | None, str | None,
                                                                          list[dict[str, float]]]:
    """(raw best intent, candidate intent, features per segment) of a stored decode.

    Same logic as recognizer.decide: with permissive thresholds only the threshold-free checks
    (exact phrase, no unk, segments agree) remain; rejection() applies the rest."""
    base = replace(PERMISSIVE, posterior_scale=scale.posterior_scale,
                   lone_margin=scale.lone_margin)
    segs = [s for s in rec["segments"] if has_words(s)]
    intents = question_intents(rec["question"])
    if not segs:
        return None, None, []
    checks = rec.get("checks") or {}
    span = tuple(rec["speech_span"]) if len(segs) == 1 and rec["speech_span"] else None
    hyps = [classify(s, intents, unk_token=unk, thresholds=base, speech_span=span,
                     checks=checks if len(segs) == 1 else None)
            for s in segs]
    if len(segs) > 1:
        extra = check_features(" ".join(h.transcript for h in hyps), checks)
        for h in hyps:
            h.features.update(extra)
    found = {h.intent for h in hyps}
    intent = found.pop() if len(found) == 1 else None
    return hyps[0].best_intent, intent, [h.features for h in hyps]


def prepare(recs: list[dict[str, Any]], unk: str, t: Thresholds) -> None:
    for r in recs:
        r["best"], r["cand"], r["feats"] = candidates(r, unk, t)


def accepted_intent(r: dict[str, Any], t: Thresholds) -> str | None:
    if r["cand"] is None or any(rejection(f, t) for f in r["feats"]):
        return None
    return str(r["cand"])


def score(recs: list[dict[str, Any]], t: Thresholds) -> dict[str, Any]:
    def figures(rs: list[dict[str, Any]]) -> dict[str, float]:
        ig = [r for r in rs if r["truth"] is not None]
        dec = [(r, accepted_intent(r, t)) for r in rs]
        acc = [(r, i) for r, i in dec if i is not None]
        right = sum(1 for r, i in acc if i == r["truth"])
        oog = [i for r, i in dec if r["truth"] is None]
        return {
            "intent_accuracy": round(sum(1 for r in ig if r["best"] == r["truth"])
                                     / max(1, len(ig)), 4),
            "accepted": round(sum(1 for r, _ in acc if r["truth"] is not None)
                              / max(1, len(ig)), 4),
            "accepted_precision": round(right / len(acc), 4) if acc else 1.0,
            "oog_false_accept": round(sum(1 for i in oog if i) / max(1, len(oog)), 4),
            "errors": len(acc) - right,
        }
    res: dict[str, Any] = dict(figures(recs))
    res["by_noise"] = {n: figures([r for r in recs if r["noise"] == n]) for n in NOISE}
    return res


def tune(recs: list[dict[str, Any]], base: Thresholds) -> Thresholds:
    """Grid search on DEV: most acceptance with precision >= 0.995 at every noise level; when no
    threshold set gets there, the strictest precision floor (0.99, 0.98, 0.95) that one reaches."""
    scored = []
    grid = itertools.product([0.0, 0.8, 0.9, 0.95, 0.98], [0.0, 1.0, 2.0], [0.0, 0.55, 0.7],
                             [250.0, 350.0, 1e9], [1.2, 1.6, 1e9],
                             [0.0, 0.5, 0.7, 0.8, 0.9, 0.95], [0.0, 1.0])
    for post, margin, cov, gap, spw, conf, garbage in grid:
        t = replace(base, min_posterior=post, min_margin=margin, min_coverage=cov,
                    max_edge_gap_ms=gap, max_sec_per_word=spw, min_word_conf=conf,
                    require_garbage_agree=garbage)
        s = score(recs, t)
        floor = min(v["accepted_precision"] for v in s["by_noise"].values())
        obj = s["by_noise"]["clean"]["accepted"] + 0.5 * s["by_noise"].get(
            "snr10", {"accepted": 0.0})["accepted"]
        scored.append((floor, obj, t))
    for target in (0.995, 0.99, 0.98, 0.95):
        ok = [(obj, t) for floor, obj, t in scored if floor >= target]
        if ok:
            print(f"tune: precision floor {target} on DEV", file=sys.stderr)
            return max(ok, key=lambda x: x[0])[1]
    print("tune: no threshold set reaches 0.95 precision on DEV", file=sys.stderr)
    return base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="one dev and one test voice only")
    ap.add_argument("--tune", action="store_true", help="grid-search thresholds on the DEV split")
    ap.add_argument("--redecode", action="store_true", help="ignore cached decodes")
    args = ap.parse_args()
    if not shutil.which("espeak-ng") or not shutil.which("sox"):
        sys.exit("bench/asr.py needs espeak-ng and sox")
    t0 = time.perf_counter()
    model = get_model("ko", Settings())
    load_s = time.perf_counter() - t0
    dev_v, test_v = (DEV_VOICES[:1], TEST_VOICES[:1]) if args.quick else (DEV_VOICES, TEST_VOICES)
    dev = decode_all(build_items(dev_v, "dev"), model, args.redecode)
    test = decode_all(build_items(test_v, "test"), model, args.redecode)
    thresholds = thresholds_for("ko")
    prepare(dev, model.unk_token, thresholds)
    prepare(test, model.unk_token, thresholds)
    if args.tune:
        thresholds = tune(dev, thresholds)
        print("tuned thresholds (DEV):", json.dumps(asdict(thresholds)), file=sys.stderr)
    dev_score = score(dev, thresholds)
    print("dev:", json.dumps(dev_score), file=sys.stderr)
    test_score = score(test, thresholds)
    rtfs = sorted(r["rtf"] for r in test)
    result = {
        "split": "test",
        "utterances": len(test),
        "in_grammar": sum(1 for r in test if r["truth"] is not None),
        "intent_accuracy": test_score["intent_accuracy"],
        "accepted": test_score["accepted"],
        "accepted_precision": test_score["accepted_precision"],
        "oog_false_accept": test_score["oog_false_accept"],
        "rtf_p50": round(statistics.median(rtfs), 4),
        "rtf_p95": round(rtfs[int(0.95 * (len(rtfs) - 1))], 4),
        "model_load_s": round(load_s, 2),
        "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "by_noise": {n: {k: v[k] for k in ("accepted", "accepted_precision", "intent_accuracy",
                                           "oog_false_accept")}
                     for n, v in test_score["by_noise"].items()},
        "thresholds": asdict(thresholds),
    }
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
