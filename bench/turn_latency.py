"""Turn latency as the customer hears it, on real calls through Asterisk.

For every answer the sipp customer speaks (Korean, espeak voices, real Vosk model on the IVR side),
the time from the end of the caller's speech to the first audio of the next prompt is measured on
the RTP arriving at the customer's port (raw capture on loopback). Some customers barge in: the
time from their speech onset to the end of the prompt audio they receive is the barge-in stop time.

    python3 bench/turn_latency.py [--calls 6]

Last stdout line: {"turns": N, "turn_latency_ms_p50": x, "turn_latency_ms_p95": x,
"bargein_stop_ms_p50": x, "bargein_stop_ms_p95": x, "bargein_events": n}
Needs root (raw socket) and the bed (./dev setup).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ivr.call.variables import CallVariables  # noqa: E402
from ivr.dialer.ami import AmiOriginator  # noqa: E402
from ivr.farend.bed import Bed  # noqa: E402
from ivr.farend.customer_plan import Answer, plan_customer  # noqa: E402
from ivr.farend.rtp_sniffer import RtpSniffer, turn_timings  # noqa: E402
from ivr.speech.tts import engine  # noqa: E402
from ivr.survey.loader import load_script  # noqa: E402

SCRIPT = ROOT / "tests" / "data" / "mini.ko.yaml"
VOICES = ("ko+m3", "ko+f3", "ko+m5")


def utterance(word: str, voice: str, out_dir: Path) -> Path:
    out = out_dir / f"{word}-{voice.replace('+', '_')}.wav"
    if not out.exists():
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(out), word], check=True)
    return out


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(q * (len(s) - 1))))
    return s[k]


def measure(sniffer: RtpSniffer, since: float, until: float) -> tuple[list[float], list[float]]:
    return turn_timings([p for p in sniffer.packets if since <= p.t <= until])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--calls", type=int, default=6)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="ivr-turns-"))
    latencies: list[float] = []
    stops: list[float] = []
    try:
        with Bed(home, platform="예시몰", language="ko") as bed:
            script = load_script(SCRIPT)
            tts = engine(bed.settings)
            customers, numbers = [], []
            for i in range(args.calls):
                voice = VOICES[i % len(VOICES)]
                first = utterance("네" if i % 2 == 0 else "아니요", voice, home)
                second = utterance("환불" if i % 2 == 0 else "쿠폰", voice, home)
                barge = 1200 if i % 3 == 2 else None  # every third caller interrupts
                number = f"8210000{i:05d}"
                numbers.append(number)
                customers.append(plan_customer(
                    number, script, {"platform": "예시몰"},
                    [Answer(speech=first, intent="satisfied", barge_in_ms=barge),
                     Answer(speech=second, intent="refund")],
                    tts, voice="ko-calm-male", language="ko", work_dir=home))
            bed.start_customers(customers)
            assert bed.sipp is not None
            with RtpSniffer(bed.sipp.media_port) as sniffer:
                async def run() -> None:
                    async with AmiOriginator.from_settings(bed.settings) as o:
                        for number in numbers:
                            import time

                            t0 = time.monotonic()
                            r = await o.dial(CallVariables(
                                phone="+" + number, caller_id=bed.settings.trunk.caller_id,
                                script=str(SCRIPT), language="ko", voice="ko-calm-male"))
                            lat, st = measure(sniffer, t0, time.monotonic())
                            latencies.extend(lat)
                            stops.extend(st)
                            shown = [round(x) for x in lat], [round(x) for x in st]
                            print(f"+{number}: {r.outcome}; turn latency ms {shown[0]}; "
                                  f"barge-in stop ms {shown[1]}", file=sys.stderr)

                asyncio.run(run())
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print(json.dumps({
        "turns": len(latencies),
        "turn_latency_ms_p50": round(statistics.median(latencies), 1) if latencies else None,
        "turn_latency_ms_p95": round(percentile(latencies, 0.95), 1) if latencies else None,
        "bargein_events": len(stops),
        "bargein_stop_ms_p50": round(statistics.median(stops), 1) if stops else None,
        "bargein_stop_ms_p95": round(percentile(stops, 0.95), 1) if stops else None,
    }))


if __name__ == "__main__":
    main()
