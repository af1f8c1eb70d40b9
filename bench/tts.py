"""TTS benchmark: render N distinct prompts cold (cmn and ko, male and female), then warm.

Prints one JSON object as the last line:
{"prompts": N, "render_x_realtime": median audio-seconds per wall-second (cold),
 "cache_hit_ms_p95": p95 of the warm (cache hit) render time in ms, ...}
Usage: python3 bench/tts.py [N] [--backend espeak-cli|pyttsx3] [--worker-recycle K]
(--worker-recycle 1 = one pyttsx3 worker process per prompt, for comparison with the persistent
worker.)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ivr.speech.audio import wav_info  # noqa: E402
from ivr.speech.tts import BACKENDS, TtsEngine  # noqa: E402
from ivr.speech.voices import load_voices  # noqa: E402

VOICES = ["cmn-calm-male", "cmn-friendly-female", "ko-calm-male", "ko-friendly-female"]
PRODUCTS = {"cmn": ["蓝牙耳机", "保温杯", "运动鞋", "电饭煲", "洗发水"],
            "ko": ["블루투스 이어폰", "보온병", "운동화", "전기밥솥", "샴푸"]}


def prompt(i: int, voice: str) -> str:
    price = 9.9 + 10 * i
    if voice.startswith("cmn"):
        item = PRODUCTS["cmn"][i % 5]
        return f"您好，您在示例平台购买的{price:.1f}元的{item}，您满意吗？满意请说满意。"
    item = PRODUCTS["ko"][i % 5]
    return f"안녕하세요, 고객님. 구매하신 {price:.1f}원 {item}에 만족하십니까?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", nargs="?", type=int, default=40)
    ap.add_argument("--backend", choices=BACKENDS, default="espeak-cli")
    ap.add_argument("--worker-recycle", type=int, default=None,
                    help="pyttsx3: replace the worker after this many renders")
    args = ap.parse_args()
    n = args.n
    voices = load_voices(Path(__file__).resolve().parent.parent / "voices")
    items = [(prompt(i, VOICES[i % len(VOICES)]), VOICES[i % len(VOICES)]) for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        engine = TtsEngine(Path(tmp) / "cache", voices, backend=args.backend)
        if args.backend == "pyttsx3" and args.worker_recycle:
            engine.worker().recycle_after = args.worker_recycle
        ratios, cold_ms, audio_s = [], [], 0.0
        for text, voice in items:
            t0 = time.perf_counter()
            path = engine.render(text, voice)
            dt = time.perf_counter() - t0
            assert not engine.last_hit
            secs = wav_info(path).seconds
            audio_s += secs
            ratios.append(secs / dt)
            cold_ms.append(dt * 1000)
        warm_ms = []
        for text, voice in items:
            t0 = time.perf_counter()
            engine.render(text, voice)
            warm_ms.append((time.perf_counter() - t0) * 1000)
            assert engine.last_hit
        stats = engine.worker().stats if args.backend == "pyttsx3" else None
        engine.close()
    warm_ms.sort()
    p95 = warm_ms[min(len(warm_ms) - 1, int(round(0.95 * (len(warm_ms) - 1))))]
    print(json.dumps({
        "backend": args.backend,
        "worker_recycle": args.worker_recycle,
        "prompts": n,
        "render_x_realtime": round(statistics.median(ratios), 1),
        "cold_render_ms_median": round(statistics.median(cold_ms), 1),
        "first_render_ms": round(cold_ms[0], 1),  # includes starting the pyttsx3 worker
        "audio_seconds_total": round(audio_s, 1),
        "cache_hit_ms_median": round(statistics.median(warm_ms), 3),
        "cache_hit_ms_p95": round(p95, 3),
        "workers_started": stats.started if stats else None,
        "cancelled_attempts": stats.cancelled if stats else None,
    }))


if __name__ == "__main__":
    main()
