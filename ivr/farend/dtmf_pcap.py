"""RFC 4733 key presses as pcap files for sipp's ``play_pcap_audio``.

sipp's bundled ``dtmf_2833_*.pcap`` all carry the same RTP timestamps, and Asterisk drops an event
whose timestamp equals the previous event's end (it looks like a retransmission), so a customer
could press only one key per call. Each press here gets its own sequence numbers and timestamp.
"""

from __future__ import annotations

import struct
from pathlib import Path

EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}
PAYLOAD_TYPE = 101
SSRC = 0x1D7F0001
PACKET_MS = 20
PRESS_MS = 160  # a firm key press
END_REPEATS = 3  # the end packet is sent three times, as phones do


def _udp_frame(payload: bytes) -> bytes:
    """Ethernet + IPv4 + UDP around ``payload`` (sipp rewrites addresses and ports)."""
    udp = struct.pack("!HHHH", 4000, 4000, 8 + len(payload), 0) + payload
    total = 20 + len(udp)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0, 64, 17, 0,
                     bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
    eth = b"\x00" * 12 + b"\x08\x00"
    return eth + ip + udp


def press_packets(key: str, index: int) -> list[tuple[float, bytes]]:
    """(seconds offset, RTP packet) for press number ``index`` of a call."""
    event = EVENTS[key]
    seq = (1000 + index * 40) & 0xFFFF
    timestamp = (8000 * 60 + index * 8000 * 5) & 0xFFFFFFFF  # 5 s of media clock per press
    packets = []
    steps = PRESS_MS // PACKET_MS
    for i in range(steps + END_REPEATS):
        end = i >= steps
        duration = min(i + 1, steps) * PACKET_MS * 8
        header = struct.pack("!BBHII", 0x80, (0x80 if i == 0 else 0) | PAYLOAD_TYPE,
                             (seq + i) & 0xFFFF, timestamp, SSRC)
        body = struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration)
        packets.append((min(i, steps) * PACKET_MS / 1000 + (i - steps + 1) * 0.005 * end,
                        header + body))
    return packets


def write_press(key: str, index: int, out: Path) -> Path:
    """A pcap with one key press (unique seq/timestamp for ``index``)."""
    if key not in EVENTS:
        raise ValueError(f"not a DTMF key: {key!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    data = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for offset, rtp in press_packets(key, index):
        frame = _udp_frame(rtp)
        sec = int(offset)
        usec = int((offset - sec) * 1_000_000)
        data += struct.pack("<IIII", 1_700_000_000 + sec, usec, len(frame), len(frame)) + frame
    out.write_bytes(bytes(data))
    return out
