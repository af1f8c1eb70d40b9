"""ASR benchmark: Korean survey answers over a telephone path, with and without noise.

Generates its own test set (espeak-ng Korean voice variants at several speeds, 8 kHz, mu-law round
trip, clean / 20 dB / 10 dB SNR white or babble noise), decodes each utterance through the real
TurnRecognizer (noise suppression, the production grammar of the question it answers, n-best
alternatives), and scores the intent decisions of the language's confidence model. The questions
and their phrases are read from the Korean survey script (surveys/platform_satisfaction.ko.yaml,
node intents plus the global intents heard there), so the bench measures what the survey asks.
Answers (in-grammar) should be accepted with the right intent; out-of-grammar utterances
(chatter, answers to other questions) should be rejected.

Speakers and chatter are split: DEV voices and DEV chatter fit the confidence model (``--tune``,
written to ivr/speech/data/confidence.ko.json), TEST voices and TEST chatter are reported.

Figures (last stdout line, JSON), all on the TEST split:
  intent_accuracy     best phrase of the n-best right (before rejection), over answers
  accepted            share of answers accepted (any intent)
  accepted_precision  accepted with the right intent / accepted, over answers (the issue's figure)
  oog_false_accept    out-of-grammar utterances accepted as some intent
  accepted_precision_with_oog  right / all accepted, answers and out-of-grammar together
  rtf_p50 / rtf_p95   CPU seconds per second of audio the turn consumed (0.4 s lead-in,
                      the answer, the endpoint's trailing silence), per utterance

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
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ivr.config import Settings  # noqa: E402
from ivr.speech import confidence as conf  # noqa: E402
from ivr.speech.grammar import question_grammar  # noqa: E402
from ivr.speech.intents import Signal  # noqa: E402
from ivr.speech.models import get_model  # noqa: E402
from ivr.speech.recognizer import TurnRecognizer, decide  # noqa: E402
from ivr.survey.loader import load_script  # noqa: E402

CACHE = ROOT / "var" / "bench-cache" / "asr"
RATE = 8000
DECODE_VERSION = "6"  # bump when decoding (grammar recipe, VAD) changes

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
# Things callers say that answer nothing; they must be rejected (ask again). TEST_CHATTER is
# heard only by the TEST voices, DEV_CHATTER only by the DEV voices that fit the model.
TEST_CHATTER = [
    "오늘 날씨 좋네요", "잘 모르겠어요", "누구세요", "여보세요", "뭐라고요", "잠깐만요",
    "글쎄요", "택배 아직 안 왔어요", "생각 좀 해 볼게요", "어디서 전화 하셨어요",
    "감사합니다", "지금 운전 중이에요",
]
DEV_CHATTER = [
    "지금 밥 먹고 있어요", "어느 회사라고요", "목소리가 잘 안 들려요", "다시 한번 말씀해 주세요",
    "무슨 일이시죠", "저 지금 회의 중이에요", "아이가 울어서요", "그게 무슨 말이에요", "얼마였더라",
    "어떤 상품이요", "이 번호 어떻게 아셨어요", "됐어요 끊을게요", "음 그러니까요", "아 그거요",
    "배터리가 없어요", "운전하고 있어서요",
]
BABBLE_TEXT = [
    "오늘 회의는 오후 세 시에 시작합니다 모두 늦지 않게 와 주세요",
    "어제 본 영화가 정말 재미있었어요 다음에 같이 봐요",
    "이번 주말에는 가족과 함께 바다에 갈 예정입니다",
    "지하철 이호선은 지금 운행이 지연되고 있습니다",
    "점심 메뉴로 김치찌개와 된장찌개 중에 골라 주세요",
    "새로 나온 휴대폰은 배터리가 아주 오래 갑니다",
]
DEV_VOICES = ["ko+m1", "ko+m2", "ko+m3", "ko+m4", "ko+m6", "ko+m7", "ko+f1", "ko+f3", "ko+f5"]
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
        chatter = DEV_CHATTER if split == "dev" else TEST_CHATTER
        texts += [(t, None) for t in chatter + rnd.sample(cross, min(6, len(cross)))]
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
# Decoding does not depend on the confidence model (it only decides afterwards).
DECODE_ONLY = conf.ConfidenceModel(("posterior",), (0.0,), 0.0, (0.0,), (1.0,), 0.0)


def decode_one(model: Any, grammar: list[str], item: dict[str, Any], noise: str,
               denoise: bool) -> dict[str, Any]:
    """One utterance through a real TurnRecognizer, as a call's turn hears it."""
    pcm = telephone_audio(item, noise)
    rec = TurnRecognizer(model, grammar, question_intents(item["question"]),
                         confidence=DECODE_ONLY, denoise=denoise)
    t0 = time.process_time()
    step = 320
    for i in range(0, len(pcm), step):
        ev = rec.feed(pcm[i:i + step])
        while ev is not None:
            ev = rec.feed(b"")
        if rec.state == "done":
            break
    if rec.state != "done":
        rec.finish()
    cpu = time.process_time() - t0
    audio_s = max(rec.frames, 1) * 0.02  # all the audio the turn consumed
    return {"segments": rec.raw_results(), "speech_span": rec.speech_span,
            "snr_db": rec.snr_db, "rtf": cpu / audio_s}


_WORKER: dict[str, Any] = {}


def _worker_decode(job: tuple[str, dict[str, Any], str, bool]) -> tuple[str, dict[str, Any]]:
    key, item, noise, denoise = job
    if "model" not in _WORKER:
        _WORKER["model"] = get_model("ko", Settings())
    model = _WORKER["model"]
    grammar = question_grammar(question_intents(item["question"]), model, language="ko",
                               question=item["question"], source=str(SCRIPT))
    return key, decode_one(model, grammar, item, noise, denoise)


def decode_all(items: list[dict[str, Any]], model: Any, redecode: bool,
               denoise: bool = True, jobs: int = 1) -> list[dict[str, Any]]:
    """Decode every item x noise level (cached per DECODE_VERSION); returns decode records.
    ``jobs`` > 1 decodes in that many processes (one model each)."""
    grammars = {q: question_grammar(question_intents(q), model, language="ko", question=q,
                                    source=str(SCRIPT))
                for q in QUESTIONS}
    cache_file = CACHE / f"decodes-v{DECODE_VERSION}{'' if denoise else '-raw'}.json"
    cache: dict[str, Any] = {}
    if cache_file.exists() and not redecode:
        cache = json.loads(cache_file.read_text(encoding="utf-8"))
    keyed = []
    for item, noise in itertools.product(items, NOISE):
        key = _h(item["question"], item["text"], item["voice"], item["speed"], noise,
                 json.dumps(grammars[item["question"]], ensure_ascii=False),
                 model.path.name)  # the name carries the decoder tuning's digest
        keyed.append((key, item, noise))
    todo = [(k, i, n, denoise) for k, i, n in keyed if k not in cache]

    def save() -> None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        cache_file.write_text(json.dumps(cache, ensure_ascii=False), encoding="utf-8")

    if todo:
        import multiprocessing

        with multiprocessing.Pool(jobs) if jobs > 1 else _Serial(model) as pool:
            for n, (key, rec) in enumerate(pool.imap_unordered(_worker_decode, todo, 8)):
                cache[key] = rec
                if n % 200 == 0:
                    print(f"decoded {n}/{len(todo)}", file=sys.stderr)
                    save()
        save()
    return [{**item, "noise": noise, **cache[key]} for key, item, noise in keyed]


class _Serial:
    """multiprocessing.Pool's imap_unordered in this process (and its model)."""

    def __init__(self, model: Any) -> None:
        _WORKER["model"] = model

    def __enter__(self) -> _Serial:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def imap_unordered(self, fn: Any, jobs: list[Any], _chunk: int) -> Any:
        return map(fn, jobs)


def decision(rec: dict[str, Any], model: conf.ConfidenceModel, unk: str) -> Any:
    """The production decision (ivr.speech.recognizer.decide) on a stored decode."""
    span = tuple(rec["speech_span"]) if rec["speech_span"] else None
    return decide(rec["segments"], question_intents(rec["question"]), unk_token=unk,
                  confidence=model, signal=Signal(span, rec["snr_db"]))  # type: ignore[arg-type]


def prepare(recs: list[dict[str, Any]], unk: str) -> None:
    """Features of each decode's chosen phrase (the fit's rows) and the raw best intent."""
    for r in recs:
        hyp = decision(r, DECODE_ONLY, unk)
        r["best"], r["feats"] = hyp.best_intent, hyp.features
        r["single"] = sum(1 for s in r["segments"] if has_text(s)) == 1


def has_text(result: dict[str, Any]) -> bool:
    alts = result.get("alternatives") or [result]
    return bool(str(alts[0].get("text", "")).strip())


def accepted_intent(r: dict[str, Any], model: conf.ConfidenceModel, unk: str) -> str | None:
    if r["best"] is None:
        return None
    return decision(r, model, unk).intent  # type: ignore[no-any-return]


def score(recs: list[dict[str, Any]], model: conf.ConfidenceModel, unk: str,
          probs: dict[int, float] | None = None) -> dict[str, Any]:
    """Figures overall and per noise level. ``probs`` (record id -> p) replaces the model's
    probability, for cross-validated threshold choice."""
    def intent_of(r: dict[str, Any]) -> str | None:
        if probs is not None:
            p = probs.get(id(r))
            return r["best"] if p is not None and p >= model.threshold_for(r["feats"]) else None
        return accepted_intent(r, model, unk)

    def figures(rs: list[dict[str, Any]]) -> dict[str, float]:
        ig = [r for r in rs if r["truth"] is not None]
        oog = [r for r in rs if r["truth"] is None]
        dec = [(r, intent_of(r)) for r in rs]
        acc_ig = [(r, i) for r, i in dec if i is not None and r["truth"] is not None]
        right = sum(1 for r, i in acc_ig if i == r["truth"])
        fa = sum(1 for r, i in dec if i is not None and r["truth"] is None)
        return {
            "intent_accuracy": round(sum(1 for r in ig if r["best"] == r["truth"])
                                     / max(1, len(ig)), 4),
            "accepted": round(len(acc_ig) / max(1, len(ig)), 4),
            "accepted_precision": round(right / len(acc_ig), 4) if acc_ig else 1.0,
            "oog_false_accept": round(fa / max(1, len(oog)), 4),
            "accepted_precision_with_oog": round(right / (len(acc_ig) + fa), 4)
            if acc_ig or fa else 1.0,
            "errors": len(acc_ig) - right,
        }
    res: dict[str, Any] = dict(figures(recs))
    res["by_noise"] = {n: figures([r for r in recs if r["noise"] == n]) for n in NOISE}
    return res


# The operating point --tune looks for on DEV (cross-validated by voice): answers-only precision
# at every noise level, and out-of-grammar speech accepted at most this often.
TARGET_PRECISION = 0.99
MAX_OOG_FALSE_ACCEPT = 0.01


def tune(recs: list[dict[str, Any]], unk: str) -> conf.ConfidenceModel:
    """Fit the confidence model on DEV and choose its thresholds (normal and noisy line) with
    leave-one-voice-out probabilities: the pair that accepts the most clean answers (then noisy
    ones) while meeting TARGET_PRECISION at every noise level and MAX_OOG_FALSE_ACCEPT."""
    rows = [r for r in recs if r["best"] is not None and r["single"]]
    feats = [r["feats"] for r in rows]
    names = [f for f in conf.FEATURES if all(f in x for x in feats)]
    labels = [1 if r["best"] == r["truth"] else 0 for r in rows]
    probs: dict[int, float] = {}
    for voice in sorted({r["voice"] for r in rows}):
        train = [k for k, r in enumerate(rows) if r["voice"] != voice]
        m = conf.fit([feats[k] for k in train], [labels[k] for k in train], features=names)
        for r in rows:
            if r["voice"] == voice:
                probs[id(r)] = m.probability(r["feats"])
    final = conf.fit(feats, labels, features=names)
    best: tuple[tuple[float, float], float, float, dict[str, Any]] | None = None
    grid = [x / 100 for x in range(30, 100)]
    for t in grid:
        for noisy in [x for x in grid if x >= t][::5] + [0.99]:
            s = score(recs, final.with_threshold(t, noisy), unk, probs)
            ok = (all(v["accepted_precision"] >= TARGET_PRECISION
                      for v in s["by_noise"].values())
                  and s["oog_false_accept"] <= MAX_OOG_FALSE_ACCEPT)
            if not ok:
                continue
            objective = (s["by_noise"]["clean"]["accepted"], s["accepted"])
            if best is None or objective > best[0]:
                best = (objective, t, noisy, s)
    if best is None:
        print("tune: no thresholds meet the targets on DEV; using 0.99", file=sys.stderr)
        best = ((0.0, 0.0), 0.99, 0.99,
                score(recs, final.with_threshold(0.99, 0.99), unk, probs))
    _, t, noisy, s = best
    print(f"tune: thresholds {t} / noisy {noisy} (DEV, cross-validated): {json.dumps(s)}",
          file=sys.stderr)
    notes = {"fit": "python3 bench/asr.py --tune", "dev_voices": DEV_VOICES,
             "target_precision": TARGET_PRECISION, "max_oog_false_accept": MAX_OOG_FALSE_ACCEPT,
             "dev_cross_validated": {k: s[k] for k in ("accepted", "accepted_precision",
                                                       "oog_false_accept")}}
    return replace(final, threshold=t, noisy_threshold=noisy, notes=notes)


def operating_points(recs: list[dict[str, Any]], model: conf.ConfidenceModel,
                     unk: str) -> list[dict[str, Any]]:
    """What other thresholds would give on these records (for operators choosing their own)."""
    out = []
    for t in (0.5, 0.6, 0.7, 0.8, 0.9):
        s = score(recs, model.with_threshold(t, max(t, model.noisy_threshold or t)), unk)
        out.append({"threshold": t,
                    "accepted_clean": s["by_noise"]["clean"]["accepted"],
                    "precision_min": min(v["accepted_precision"] for v in s["by_noise"].values()),
                    "oog_false_accept": s["oog_false_accept"]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="one dev and one test voice only")
    ap.add_argument("--tune", action="store_true",
                    help="fit the confidence model on the DEV split and write it")
    ap.add_argument("--redecode", action="store_true", help="ignore cached decodes")
    ap.add_argument("--no-denoise", action="store_true", help="decode without noise suppression")
    ap.add_argument("--jobs", type=int, default=2, help="decoding processes (default 2)")
    args = ap.parse_args()
    if not shutil.which("espeak-ng") or not shutil.which("sox"):
        sys.exit("bench/asr.py needs espeak-ng and sox")
    t0 = time.perf_counter()
    model = get_model("ko", Settings())
    load_s = time.perf_counter() - t0
    unk = model.unk_token
    dev_v, test_v = (DEV_VOICES[:1], TEST_VOICES[:1]) if args.quick else (DEV_VOICES, TEST_VOICES)
    denoise = not args.no_denoise
    dev = decode_all(build_items(dev_v, "dev"), model, args.redecode, denoise, args.jobs)
    test = decode_all(build_items(test_v, "test"), model, args.redecode, denoise, args.jobs)
    prepare(dev, unk)
    prepare(test, unk)
    if args.tune:
        fitted = tune(dev, unk)
        path = conf.model_path("ko")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(fitted.to_json(), encoding="utf-8")
        print(f"wrote {path}", file=sys.stderr)
        model_c = fitted
    else:
        model_c = conf.confidence_for("ko")
    print("dev:", json.dumps(score(dev, model_c, unk)), file=sys.stderr)
    test_score = score(test, model_c, unk)
    rtfs = sorted(r["rtf"] for r in test)
    keys = ("accepted", "accepted_precision", "intent_accuracy", "oog_false_accept",
            "accepted_precision_with_oog")
    result = {
        "split": "test",
        "utterances": len(test),
        "in_grammar": sum(1 for r in test if r["truth"] is not None),
        **{k: test_score[k] for k in keys},
        "rtf_p50": round(statistics.median(rtfs), 4),
        "rtf_p95": round(rtfs[int(0.95 * (len(rtfs) - 1))], 4),
        "model_load_s": round(load_s, 2),
        "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "denoise": denoise,
        "by_noise": {n: {k: v[k] for k in keys} for n, v in test_score["by_noise"].items()},
        "threshold": model_c.threshold,
        "noisy_threshold": model_c.noisy_threshold,
        "operating_points": operating_points(test, model_c, unk),
    }
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
