"""Hear what the customer hears: capture the RTP to and from sipp's media port on loopback.

A raw AF_PACKET socket on ``lo`` (root, as the bed runs) sees every packet; those to the customer
are the IVR's prompts, those from it are the customer's speech. Both get one monotonic clock, so
"end of the caller's speech -> first audio of the next prompt" is measured where a person would
measure it. G.711 u-law payloads are decoded to levels for onset/offset detection.
"""

from __future__ import annotations

import math
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

ETH_P_ALL = 0x0003
SO_TIMESTAMPNS = 35  # Linux <asm-generic/socket.h>
ONSET_SLACK_S = 0.15


def _ulaw_table() -> list[int]:
    out = []
    for b in range(256):
        u = ~b & 0xFF
        sign, exponent, mantissa = u & 0x80, (u >> 4) & 0x07, u & 0x0F
        sample = ((mantissa << 3) + 0x84) << exponent
        sample -= 0x84
        out.append(-sample if sign else sample)
    return out


_ULAW = _ulaw_table()


def ulaw_dbfs(payload: bytes) -> float:
    if not payload:
        return -100.0
    power = sum(_ULAW[b] * _ULAW[b] for b in payload) / len(payload)
    return 10 * math.log10(power / 32768.0**2) if power > 0 else -100.0


@dataclass
class Packet:
    t: float  # time.monotonic() at capture
    to_customer: bool
    payload_type: int
    level_db: float


@dataclass
class RtpSniffer:
    media_port: int  # sipp's RTP port (the customer side)
    packets: list[Packet] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(ETH_P_ALL))
        # Kernel receive timestamps: a busy machine may read late, the times stay exact. A big
        # buffer so that no packet is dropped while the reader is behind.
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        self.sock.bind(("lo", 0))
        self.sock.settimeout(0.2)
        # kernel timestamps are CLOCK_REALTIME; packets are reported on the monotonic clock
        self._offset = time.time() - time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self.sock.close()

    def __enter__(self) -> RtpSniffer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                frame, ancdata, _flags, addr = self.sock.recvmsg(65535, 64)
            except TimeoutError:
                continue
            except OSError:
                return
            if addr[2] == socket.PACKET_OUTGOING:
                continue  # loopback shows each packet twice; keep the incoming copy
            t = time.monotonic()
            for level, kind, data in ancdata:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
                    sec, nsec = struct.unpack("qq", data[:16])
                    t = sec + nsec / 1e9 - self._offset
            self._parse(frame, t)

    def _parse(self, frame: bytes, t: float) -> None:
        if len(frame) < 14 + 20 + 8 + 12 or frame[12:14] != b"\x08\x00":
            return
        ip = frame[14:]
        ihl = (ip[0] & 0x0F) * 4
        if ip[9] != 17:
            return
        sport, dport = struct.unpack("!HH", ip[ihl:ihl + 4])
        if self.media_port not in (sport, dport):
            return
        rtp = ip[ihl + 8:]
        if len(rtp) < 12 or rtp[0] >> 6 != 2:
            return
        pt = rtp[1] & 0x7F
        payload = rtp[12:]
        level = ulaw_dbfs(payload) if pt == 0 else -100.0
        self.packets.append(Packet(t, dport == self.media_port, pt, level))


def voiced_spans(packets: list[Packet], *, to_customer: bool, threshold_db: float = -45.0,
                 gap_s: float = 0.35) -> list[tuple[float, float]]:
    """(onset, offset) of sound in one direction; pauses shorter than ``gap_s`` are bridged."""
    spans: list[tuple[float, float]] = []
    for p in packets:
        if p.to_customer != to_customer or p.payload_type != 0 or p.level_db < threshold_db:
            continue
        if spans and p.t - spans[-1][1] <= gap_s:
            spans[-1] = (spans[-1][0], p.t)
        else:
            spans.append((p.t, p.t))
    return spans


def turn_timings(packets: list[Packet]) -> tuple[list[float], list[float]]:
    """(turn latencies, barge-in stop times) in ms, as heard at the customer's port.

    Turn latency: end of a caller utterance -> onset of the next prompt audio. Barge-in stop: a
    prompt that ends while the caller is speaking stopped this long after the caller's speech
    started (or after the prompt itself started, if the caller was already speaking).
    """
    caller = voiced_spans(packets, to_customer=False)
    prompts = voiced_spans(packets, to_customer=True)
    latencies, stops = [], []
    for onset, offset in caller:
        for p_start, p_end in prompts:
            # The IVR may hear the soft start of a word before it crosses this level: a prompt
            # ending up to ONSET_SLACK_S before the audible onset was still cut by it.
            if onset - ONSET_SLACK_S < p_end <= offset + 0.05 and p_start < onset:
                stops.append(max(0.0, p_end - onset) * 1000)
                break
        nxt = [p for p in prompts if p[0] > offset]
        if nxt:
            latencies.append((nxt[0][0] - offset) * 1000)
    return latencies, stops
