"""Which answer phrasings does the speech model hear reliably? (a survey-design tool)

For each question of a survey, candidate phrasings of every intent are spoken by the DEV voices
of bench/asr.py (3 voices x 3 speeds, telephone path, clean and 20 dB SNR) and decoded with the
question's grammar (one phrasing per intent, as the survey would have it). Coordinate descent
swaps each intent's phrasing for the candidate that raises the question's accuracy most, then adds
synonyms that cost nothing. Global intents (heard at every question) can be fixed with --globals
after choosing them once. Output: per question and intent the chosen phrasings with their hit rate
on DEV (right intent), as JSON on the last line. TEST voices are never used here,
so bench/asr.py's TEST figures stay unbiased.

Usage: python3 bench/phrase_study.py [--question satisfaction] [--globals JSON]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

import asr  # noqa: E402

from ivr.config import Settings  # noqa: E402
from ivr.speech.grammar import normalize_phrase, question_grammar  # noqa: E402
from ivr.speech.models import get_model  # noqa: E402

GLOBALS = {
    "agent": ["사람 바꿔 주세요", "상담원 연결", "사람", "상담원 바꿔 주세요", "상담사 연결"],
    "callback": ["나중에", "지금 바빠", "나중에 전화 주세요", "나중에 다시", "지금 바빠 나중에",
                 "나중에 전화", "바빠서", "지금 통화 중", "지금 운전 중"],
    "opt_out": ["전화 하지 마세요", "전화 그만", "다시 전화 하지 마세요", "전화 그만 하세요",
                "수신 거부", "수신거부", "연락 하지 마세요", "그만"],
}
CANDIDATES: dict[str, dict[str, list[str]]] = {
    "satisfaction": {
        "satisfied": ["좋아요", "만족", "네", "네 만족", "만족 해요", "아주 만족", "좋습니다",
                      "네 좋아요", "만족 합니다"],
        "unsatisfied": ["아니요", "불만", "별로", "싫어요", "불만족", "불만 있어요", "별로 예요",
                        "아니요 불만", "실망", "불만 이에요"],
    },
    "remedy": {
        "refund": ["환불", "환불 해 주세요", "환불 주세요", "전액 환불", "환불 할게요"],
        "voucher": ["쿠폰", "상품권", "포인트", "할인권", "쿠폰 주세요", "할인 쿠폰", "적립금",
                    "쿠폰 할게요", "포인트 주세요"],
        "none": ["필요 없어요", "아니요", "됐어요", "없어요"],
    },
    "reason": {
        "quality": ["품질", "품질 문제", "불량", "제품 불량", "물건 불량", "품질 불량"],
        "taste": ["맛", "맛 문제", "설명 다름", "맛 없어요", "설명 이랑 다름"],
        "logistics": ["배송", "택배", "배송 문제", "배송 늦게", "택배 문제"],
        "service": ["서비스", "서비스 문제", "불친절", "응대", "친절 하지"],
        "other": ["기타", "다른 이유", "그 외", "기타 이유", "다른 문제"],
    },
    "buy_again": {
        "yes": ["네", "예", "구매", "계속 구매", "구매 할게요", "네 살 거예요", "그래요",
                "네 구매"],
        "no": ["아니요", "아니오", "싫어요", "안 사요", "아니요 안 사요", "구매 안 해요"],
    },
    "callback_time": {
        "tonight": ["오늘 저녁", "저녁", "오늘 밤", "저녁 에"],
        "tomorrow": ["내일", "내일 전화", "내일 해 주세요"],
        "anytime": ["상관 없어요", "언제 든지", "아무 때"],
    },
}
NO_GLOBALS = {"callback_time": ("callback",)}
VOICES = asr.DEV_VOICES
SPEEDS = asr.SPEEDS
NOISES = ("clean", "snr20")


def question_candidates(q: str, model: object) -> dict[str, list[str]]:
    intents = dict(CANDIDATES[q])
    for g, ps in GLOBALS.items():
        if g not in NO_GLOBALS.get(q, ()):
            intents[g] = ps
    out = {}
    for intent, phrases in intents.items():
        ok = [p for p in phrases if all(model.has_word(w) for w in p.split())]  # type: ignore[attr-defined]
        for p in sorted(set(phrases) - set(ok)):
            print(f"skip {p!r}: not in the model vocabulary", file=sys.stderr)
        out[intent] = ok
    return out


def decode_hits(model: object, q: str, intents: dict[str, list[str]],
                cache: dict[str, str]) -> dict[tuple[str, str], list[bool]]:
    """(intent, phrase) -> right-intent flags of its DEV utterances, decoded with this grammar."""
    import vosk

    grammar = question_grammar(intents, model, language="ko", question=q, source="study")  # type: ignore[arg-type]
    gkey = json.dumps(grammar, ensure_ascii=False)
    index = {normalize_phrase(p): i for i, ps in intents.items() for p in ps}
    out = {}
    for intent, phrases in intents.items():
        for p in phrases:
            flags = []
            for voice, speed, noise in itertools.product(VOICES, SPEEDS, NOISES):
                key = asr._h(gkey, p, voice, speed, noise)
                if key not in cache:
                    pcm = asr.telephone_audio({"text": p, "voice": voice, "speed": speed}, noise)
                    rec = vosk.KaldiRecognizer(model.model, 8000.0, gkey)  # type: ignore[attr-defined]
                    rec.AcceptWaveform(pcm)
                    cache[key] = json.loads(rec.FinalResult())["text"]
                flags.append(index.get(normalize_phrase(cache[key])) == intent)
            out[(intent, p)] = flags
    return out


def accuracy(hits: dict[tuple[str, str], list[bool]]) -> float:
    """Mean over intents of the mean hit rate of their phrases (every intent counts the same)."""
    per: dict[str, list[bool]] = defaultdict(list)
    for (intent, _), flags in hits.items():
        per[intent] += flags
    return sum(sum(f) / len(f) for f in per.values()) / len(per)


def study(model: object, q: str, fixed: dict[str, list[str]], cache: dict[str, str],
          only: list[str] | None = None) -> dict[str, list[tuple[str, float]]]:
    """Coordinate descent: one phrasing per intent, swapped while accuracy improves; then
    synonyms are added where they cost nothing. ``fixed`` intents (globals chosen earlier) are
    kept as they are."""
    cands = question_candidates(q, model)
    chosen = {i: (fixed[i] if i in fixed else ps[:1]) for i, ps in cands.items()}
    if only:
        fixed = {**{i: ps for i, ps in chosen.items() if i not in only}, **fixed}
    best = accuracy(decode_hits(model, q, chosen, cache))
    for _round in range(2):
        improved = False
        for intent, ps in cands.items():
            if intent in fixed:
                continue
            for p in ps:
                if [p] == chosen[intent]:
                    continue
                trial = {**chosen, intent: [p]}
                acc = accuracy(decode_hits(model, q, trial, cache))
                if acc > best + 1e-9:
                    print(f"{q}: {intent} -> {p!r} ({best:.3f} -> {acc:.3f})", file=sys.stderr)
                    best, chosen, improved = acc, trial, True
        if not improved:
            break
    for intent, ps in cands.items():  # synonyms that cost nothing
        if intent in fixed:
            continue
        for p in ps:
            if p in chosen[intent]:
                continue
            trial = {**chosen, intent: chosen[intent] + [p]}
            hits = decode_hits(model, q, trial, cache)
            acc = accuracy(hits)
            own = sum(hits[(intent, p)]) / len(hits[(intent, p)])
            if acc >= best - 1e-9 and own >= 0.7:
                print(f"{q}: {intent} + {p!r} ({best:.3f} -> {acc:.3f}, own {own:.2f})",
                      file=sys.stderr)
                best, chosen = acc, trial
    hits = decode_hits(model, q, chosen, cache)
    print(f"{q}: accuracy {best:.3f}", file=sys.stderr)
    out: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for (i, p), flags in hits.items():
        out[i].append((p, round(sum(flags) / len(flags), 3)))
    return dict(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--question", action="append", choices=sorted(CANDIDATES))
    ap.add_argument("--globals", help="JSON {intent: [phrases]} of global intents already chosen")
    ap.add_argument("--only", action="append", help="study only these intents (others: first "
                    "candidate, or --globals)")
    args = ap.parse_args()
    model = get_model("ko", Settings())
    fixed = json.loads(args.globals) if args.globals else {}
    cache: dict[str, str] = {}
    result = {q: study(model, q, fixed, cache, args.only) for q in args.question or CANDIDATES}
    for q, intents in result.items():
        print(q, json.dumps(intents, ensure_ascii=False), file=sys.stderr)
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
