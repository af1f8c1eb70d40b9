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
  *_with_confirm      the same after the script's confirmation turn ("배송 문제, 맞으세요?"):
                      an unsure answer above the model's confirm_floor is confirmed when the
                      caller's decoded yes/no reply (same voice, same line; yes only when the
                      answer heard is theirs) is a yes above confirm_threshold
  confirm_asked       share of answers (oog_confirm_asked: of out-of-grammar utterances) that
                      got a confirmation turn

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
# The script's confirmation turn ("배송 문제, 맞으세요?"): its yes/no grammar, decoded like a
# question; a caller asked to confirm says yes when the heard answer is theirs, no otherwise.
CONFIRM_Q = "<confirm>"


def confirm_grammar(path: Path = SCRIPT) -> dict[str, list[str]]:
    script = load_script(path)
    if script.confirm is None:
        return {}
    return {k: getattr(script.confirm, k).phrases_for("ko", script.language)
            for k in ("yes", "no")}


CONFIRM = confirm_grammar()
GRAMMARS = {**QUESTIONS, **({CONFIRM_Q: CONFIRM} if CONFIRM else {})}
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
    return GRAMMARS[question]


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


def confirm_items(voices: list[str], split: str) -> list[dict[str, Any]]:
    """Every yes/no phrase of the confirmation turn, by every voice at every speed."""
    return [{"question": CONFIRM_Q, "text": p, "truth": intent, "voice": v, "speed": speed,
             "split": split}
            for intent, ps in CONFIRM.items() for p in ps for v in voices for speed in SPEEDS]


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
                for q in GRAMMARS}
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


def confirm_reply(r: dict[str, Any],
                  pool: dict[tuple[str, str, str], list[dict[str, Any]]]) -> dict[str, Any] | None:
    """The confirmation decode of r's caller (same voice, same line): "yes" when the answer
    heard is what they said, "no" otherwise (out-of-grammar speech included)."""
    say = "yes" if r["truth"] is not None and r["best"] == r["truth"] else "no"
    options = pool.get((r["voice"], r["noise"], say))
    if not options:
        return None
    return options[int(_h(r["question"], r["text"], r["voice"], r["noise"])[:6], 16)
                   % len(options)]


def score(recs: list[dict[str, Any]], model: conf.ConfidenceModel, unk: str,
          probs: dict[int, float] | None = None,
          confirms: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Figures overall and per noise level. ``probs`` (record id -> p) replaces the model's
    probability, for cross-validated threshold choice. With ``confirms`` (decoded yes/no
    replies) the *_with_confirm figures add the confirmation turn of unsure answers."""
    pool: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    yes_model = model.for_confirmation()
    said: dict[int, str | None] = {}
    for c in confirms or []:
        pool.setdefault((c["voice"], c["noise"], c["truth"]), []).append(c)
        said[id(c)] = decision(c, yes_model, unk).intent

    def outcome(r: dict[str, Any]) -> tuple[str | None, str | None, bool]:
        """(intent accepted at once, intent after a confirmation, confirmation asked)."""
        if probs is not None:
            p = probs.get(id(r))
            if p is None:
                return None, None, False
            if p >= model.threshold_for(r["feats"]):
                return r["best"], r["best"], False
            asked = model.can_confirm(p)
        else:
            hyp = decision(r, model, unk)
            if hyp.intent is not None:
                return hyp.intent, hyp.intent, False
            asked = hyp.confirmable
        reply = confirm_reply(r, pool) if asked else None
        if reply is None:
            return None, None, False
        return None, r["best"] if said[id(reply)] == "yes" else None, True

    def figures(rs: list[dict[str, Any]]) -> dict[str, float]:
        out = [(r, *outcome(r)) for r in rs]
        ig = [o for o in out if o[0]["truth"] is not None]
        oog = [o for o in out if o[0]["truth"] is None]
        res: dict[str, Any] = {
            "intent_accuracy": round(sum(1 for r, *_ in ig if r["best"] == r["truth"])
                                     / max(1, len(ig)), 4)}
        for suffix, k in (("", 1), ("_with_confirm", 2)):
            acc = [r for r, *o in ig if o[k - 1] is not None]
            right = sum(1 for r, *o in ig if o[k - 1] is not None and o[k - 1] == r["truth"])
            fa = sum(1 for r, *o in oog if o[k - 1] is not None)
            res |= {
                f"accepted{suffix}": round(len(acc) / max(1, len(ig)), 4),
                f"accepted_precision{suffix}": round(right / len(acc), 4) if acc else 1.0,
                f"oog_false_accept{suffix}": round(fa / max(1, len(oog)), 4),
                f"errors{suffix}": len(acc) - right,
            }
            if not suffix:
                res["accepted_precision_with_oog"] = (round(right / (len(acc) + fa), 4)
                                                      if acc or fa else 1.0)
        res["confirm_asked"] = round(sum(1 for *_, a in ig if a) / max(1, len(ig)), 4)
        res["oog_confirm_asked"] = round(sum(1 for *_, a in oog if a) / max(1, len(oog)), 4)
        return res
    res: dict[str, Any] = dict(figures(recs))
    res["by_noise"] = {n: figures([r for r in recs if r["noise"] == n]) for n in NOISE}
    return res


# The operating point --tune looks for on DEV (cross-validated by voice): answers-only precision
# at every noise level, and out-of-grammar speech accepted at most this often.
TARGET_PRECISION = 0.99
MAX_OOG_FALSE_ACCEPT = 0.01


def tune(recs: list[dict[str, Any]], unk: str,
         confirms: list[dict[str, Any]] | None = None) -> conf.ConfidenceModel:
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
    final = final.with_threshold(t, noisy)
    if confirms:
        final = tune_confirm(final, recs, confirms, probs, unk)
        s = score(recs, final, unk, probs, confirms)
    notes = {"fit": "python3 bench/asr.py --tune", "dev_voices": DEV_VOICES,
             "target_precision": TARGET_PRECISION, "max_oog_false_accept": MAX_OOG_FALSE_ACCEPT,
             "dev_cross_validated": {k: s[k] for k in ("accepted", "accepted_precision",
                                                       "oog_false_accept")}}
    if confirms:
        notes["dev_cross_validated"] |= {k: s[k] for k in (
            "accepted_with_confirm", "accepted_precision_with_confirm",
            "oog_false_accept_with_confirm", "confirm_asked", "oog_confirm_asked")}
    return replace(final, notes=notes)


# A confirmation is offered only from where it is more often a "yes" than a "no" for callers
# who answered (DEV, answers within 0.1 above the floor). Out-of-grammar speech is
# over-represented in this test set (about 2.6 per answer), so it is left out of that share and
# reported as oog_confirm_asked instead.
MIN_CONFIRM_RIGHT = 0.5


def tune_confirm(model: conf.ConfidenceModel, recs: list[dict[str, Any]],
                 confirms: list[dict[str, Any]], probs: dict[int, float],
                 unk: str) -> conf.ConfidenceModel:
    """The confirmation's operating point on DEV: its yes threshold is the lowest that takes no
    "no" reply for a yes at any noise level; its floor the lowest probability from which unsure
    answers are mostly right and the targets still hold with confirmation."""
    grid = [x / 100 for x in range(5, 100)]
    noes = [c for c in confirms if c["truth"] == "no"]
    yes_t = next((t for t in grid
                  if not any(decision(c, replace(model, confirm_threshold=t).for_confirmation(),
                                      unk).intent == "yes" for c in noes)), None)
    if yes_t is None:
        print("tune: no confirmation threshold is safe on DEV; confirmation off", file=sys.stderr)
        return model
    for floor in grid:
        cand = replace(model, confirm_floor=floor, confirm_threshold=yes_t)
        # the marginal slice: would a confirmation just above the floor mostly end in a yes?
        band = [r for r in recs if id(r) in probs and r["truth"] is not None
                and floor <= probs[id(r)] < min(floor + 0.1, model.threshold_for(r["feats"]))]
        right = sum(1 for r in band if r["best"] == r["truth"])
        if band and right / len(band) < MIN_CONFIRM_RIGHT:
            continue
        s = score(recs, cand, unk, probs, confirms)
        if (all(v["accepted_precision_with_confirm"] >= TARGET_PRECISION
                for v in s["by_noise"].values())
                and s["oog_false_accept_with_confirm"] <= MAX_OOG_FALSE_ACCEPT):
            print(f"tune: confirm floor {floor}, yes threshold {yes_t} (DEV, cross-validated): "
                  f"{json.dumps(s)}", file=sys.stderr)
            return cand
    print("tune: no confirmation floor meets the targets on DEV; confirmation off",
          file=sys.stderr)
    return model


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
    dev_c = decode_all(confirm_items(dev_v, "dev"), model, args.redecode, denoise, args.jobs)
    test_c = decode_all(confirm_items(test_v, "test"), model, args.redecode, denoise, args.jobs)
    for recs in (dev, test, dev_c, test_c):
        prepare(recs, unk)
    if args.tune:
        fitted = tune(dev, unk, dev_c)
        path = conf.model_path("ko")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(fitted.to_json(), encoding="utf-8")
        print(f"wrote {path}", file=sys.stderr)
        model_c = fitted
    else:
        model_c = conf.confidence_for("ko")
    print("dev:", json.dumps(score(dev, model_c, unk, confirms=dev_c)), file=sys.stderr)
    test_score = score(test, model_c, unk, confirms=test_c)
    rtfs = sorted(r["rtf"] for r in test)
    keys = ("accepted", "accepted_precision", "intent_accuracy", "oog_false_accept",
            "accepted_precision_with_oog", "confirm_asked", "accepted_with_confirm",
            "accepted_precision_with_confirm", "oog_false_accept_with_confirm",
            "oog_confirm_asked")
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
        "confirm_floor": model_c.confirm_floor,
        "confirm_threshold": model_c.confirm_threshold,
        "operating_points": operating_points(test, model_c, unk),
    }
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
