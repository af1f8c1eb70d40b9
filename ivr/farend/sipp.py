"""Simulated customers on the far side of the SIP trunk, played by sipp (Debian's sip-tester).

One sipp UAS on 127.0.0.1 serves every call of a test or demo. Each customer is keyed by the
number dialed (and optionally by the caller ID presented): it answers and then speaks (RTP audio
streamed from a u-law file), presses keys (RFC 4733 events from sipp's bundled pcaps), waits, hangs
up; or it answers busy, declines (603), rejects as spam (607/608), or rings until the caller gives
up. The scenario XML is generated from those descriptions, so tests state behaviour, not SIP.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

from ivr.farend.dtmf_pcap import write_press


@dataclass(frozen=True)
class Wait:
    ms: int


@dataclass(frozen=True)
class Dtmf:
    digit: str


@dataclass(frozen=True)
class Say:
    """Stream an audio file (any format sox reads) to the IVR, then keep going at once."""

    audio: Path
    background: bool = False  # True: go on with the next action while the audio streams


@dataclass(frozen=True)
class HangUp:
    pass


Action = Wait | Dtmf | Say | HangUp


@dataclass
class Customer:
    number: str  # digits dialed on the trunk (E.164 without '+', after any prefix)
    actions: Sequence[Action] = ()
    ring_ms: int = 200
    # SIP final response instead of answering: 486 busy, 603 decline, 607/608 spam, 480 ...
    reject: int | None = None
    no_answer: bool = False  # ring until the caller cancels
    from_user: str | None = None  # only for this caller ID (digits, no '+'); None = any
    name: str = ""
    label: str = field(default="", init=False)


REASONS = {404: "Not Found", 480: "Temporarily Unavailable", 486: "Busy Here",
           503: "Service Unavailable", 603: "Decline", 607: "Unwanted", 608: "Rejected"}


def ulaw_file(audio: Path, cache_dir: Path) -> tuple[Path, int]:
    """Convert ``audio`` to raw 8 kHz u-law for sipp's rtp_stream; returns (path, duration ms)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    st = audio.stat()
    out = cache_dir / f"{audio.stem}-{int(st.st_mtime)}-{st.st_size}.ulaw"
    if not out.exists():
        tmp = out.with_suffix(".tmp.ulaw")
        # -D: sox dithers with a random seed by default, which made the same customer audio
        # differ from run to run (and recognition flip near its threshold); Asterisk's codecs
        # do not dither either.
        subprocess.run(["sox", "-D", str(audio), "-r", "8000", "-c", "1", "-t", "ul", str(tmp)],
                       check=True, capture_output=True)
        tmp.replace(out)
    return out, int(out.stat().st_size / 8)  # 8000 bytes per second


class ScenarioBuilder:
    def __init__(self, customers: Sequence[Customer], media_dir: Path) -> None:
        self.customers = list(customers)
        self.media_dir = media_dir

    def build(self) -> str:
        parts = [_HEAD]
        # Remember the dialog details every branch needs for its own BYE.
        parts.append(_RECV_INVITE)
        for i, c in enumerate(self.customers):
            c.label = f"c{i}"
            regex = f"^INVITE sip:{c.number}@"
            parts.append(_ereg(f"m{i}", regex, "msg"))
            if c.from_user:
                parts.append(_ereg(f"f{i}", f"sip:\\+?{c.from_user}@", "hdr", header="From:"))
        parts.append("    </action>\n  </recv>\n")
        # sipp rejects variables referenced only once; a log line keeps unused ones legal.
        parts.append('  <nop hide="true"><action><log message="call from [$remote_from] to '
                     '[$local_to] contact [$contact_uri]"/></action></nop>\n')
        # Branch to the first customer whose number (and caller ID, if set) matches; a customer
        # whose caller ID does not match falls through to the next one for the same number.
        n = len(self.customers)
        for i, c in enumerate(self.customers):
            parts.append(f'  <label id="t{i}"/>\n')
            target = f"g{i}" if c.from_user else c.label
            parts.append(f'  <nop hide="true" test="m{i}" next="{target}"/>\n')
        parts.append(f'  <label id="t{n}"/>\n  <nop hide="true" next="default"/>\n')
        for i, c in enumerate(self.customers):
            if c.from_user:
                parts.append(f'  <label id="g{i}"/>\n  <nop hide="true" test="f{i}" '
                             f'next="{c.label}"/>\n  <nop hide="true" next="t{i + 1}"/>\n')
        for c in self.customers:
            parts.append(f'  <label id="{c.label}"/>\n')
            parts.append(self._branch(c))
        parts.append('  <label id="default"/>\n')
        parts.append(self._branch(Customer(number="", actions=())))
        parts.append(_TAIL)
        return "".join(parts)

    def _branch(self, c: Customer) -> str:
        out = [_reply(180, "Ringing", contact=True)]
        if c.no_answer:
            # Ring until Asterisk CANCELs: 200 to the CANCEL, 487 to the INVITE.
            out.append(_RING_FOREVER)
            return "".join(out)
        if c.ring_ms:
            out.append(f'  <pause milliseconds="{c.ring_ms}"/>\n')
        if c.reject:
            out.append(_reply(c.reject, REASONS.get(c.reject, "Rejected")))
            out.append('  <recv request="ACK"/>\n  <nop hide="true" next="end"/>\n')
            return "".join(out)
        out.append(_ANSWER)
        hung_up = False
        presses = 0
        streaming = False
        for a in c.actions:
            if isinstance(a, Wait):
                out.append(f'  <pause milliseconds="{a.ms}"/>\n')
            elif isinstance(a, Dtmf):
                if streaming:
                    # Keys are a second RTP stream (sipp's pcap player): interleaved with the
                    # voice stream Asterisk takes them for repeated presses, so pause the voice.
                    out.append('  <nop><action><exec rtp_stream="pause"/></action></nop>\n')
                for d in a.digit:
                    # each press its own RTP timestamp, or Asterisk drops repeats as duplicates
                    pcap = write_press(d, presses, self.media_dir / f"{c.label}-{presses}.pcap")
                    presses += 1
                    out.append(f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n'
                               '  <pause milliseconds="300"/>\n')
                if streaming:
                    out.append('  <nop><action><exec rtp_stream="resume"/></action></nop>\n')
            elif isinstance(a, Say):
                ulaw, ms = ulaw_file(a.audio, self.media_dir)
                out.append(f'  <nop><action><exec rtp_stream="{escape(str(ulaw))},1,0"/>'
                           f'</action></nop>\n')
                if not a.background:
                    out.append(f'  <pause milliseconds="{ms}"/>\n')
                streaming = streaming or a.background
            elif isinstance(a, HangUp):
                out.append(_SEND_BYE)
                hung_up = True
                break
        if not hung_up:
            # Stay on the line until the IVR hangs up (its BYE lands in _unexp.main if we are
            # still pausing; here we wait for it explicitly).
            out.append('  <recv request="BYE"/>\n')
            out.append(_reply(200, "OK"))
        out.append('  <nop hide="true" next="end"/>\n')
        return "".join(out)


def _ereg(var: str, regex: str, where: str, header: str = "") -> str:
    hdr = f' header="{header}"' if header else ""
    return (f'      <ereg regexp="{escape(regex)}" search_in="{where}"{hdr} check_it="false" '
            f'assign_to="{var}"/>\n')


_HEAD = '<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="ivr customers">\n'

_RECV_INVITE = """  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" check_it="true" assign_to="remote_from"/>
      <ereg regexp=".*" search_in="hdr" header="To:" check_it="true" assign_to="local_to"/>
      <ereg regexp="sip:[^&gt;;]*" search_in="hdr" header="Contact:" check_it="true"
            assign_to="contact_uri"/>
"""


def _reply(code: int, reason: str, *, cseq: str = "[last_CSeq:]", contact: bool = False) -> str:
    """sipp's response to the request it received last (the INVITE, or a CANCEL)."""
    contact_line = "Contact: <sip:[local_ip]:[local_port];transport=[transport]>\n" if contact \
        else ""
    return f"""  <send>
    <![CDATA[
SIP/2.0 {code} {reason}
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
{cseq}
{contact_line}Content-Length: 0

    ]]>
  </send>
"""


_ANSWER = """  <send retrans="500">
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=customer 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=sendrecv

    ]]>
  </send>
  <recv request="ACK" crlf="true"/>
"""

_SEND_BYE = """  <send retrans="500">
    <![CDATA[
BYE [$contact_uri] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From:[$local_to];tag=[pid]SIPpTag01[call_number]
To:[$remote_from]
[last_Call-ID:]
CSeq: 1 BYE
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>
"""

# Ring until the caller gives up: 200 to its CANCEL, then 487 to the INVITE.
_RING_FOREVER = ('  <recv request="CANCEL"/>\n' + _reply(200, "OK")
                 + _reply(487, "Request Terminated", cseq="CSeq: [cseq] INVITE")
                 + '  <recv request="ACK"/>\n  <nop hide="true" next="end"/>\n')

# A BYE (or anything else) arriving while a branch is pausing or streaming lands here.
_TAIL = """  <label id="_unexp.main"/>
  <send>
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

    ]]>
  </send>
  <label id="end"/>
</scenario>
"""


class SippCustomer:
    """Runs sipp as the carrier/customer side on ``host:port`` until stopped."""

    def __init__(self, customers: Sequence[Customer], *, host: str = "127.0.0.1",
                 port: int = 5080, media_port: int = 16000, work_dir: Path | None = None) -> None:
        if shutil.which("sipp") is None:
            raise FileNotFoundError("sipp is missing: apt-get install sip-tester")
        self.customers = list(customers)
        self.host, self.port, self.media_port = host, port, media_port
        self.work_dir = work_dir or Path(tempfile.mkdtemp(prefix="ivr-sipp-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def scenario_file(self) -> Path:
        return self.work_dir / "customers.xml"

    @property
    def log_file(self) -> Path:
        return self.work_dir / "sipp.log"

    def start(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        xml = ScenarioBuilder(self.customers, self.work_dir / "media").build()
        self.scenario_file.write_text(xml, encoding="iso-8859-1")
        log = open(self.log_file, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["sipp", "-sf", str(self.scenario_file), "-i", self.host, "-p", str(self.port),
             "-mi", self.host, "-mp", str(self.media_port), "-ci", self.host,
             "-cp", str(self.port + 3000), "-nostdin",
             "-trace_err", "-error_file", str(self.work_dir / "errors.log"),
             "-trace_msg", "-message_file", str(self.work_dir / "messages.log"),
             "-max_recv_loops", "1000", "-timeout_error", "-aa"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=self.work_dir, start_new_session=True,
        )
        log.close()
        time.sleep(0.3)
        if self.proc.poll() is not None:
            raise RuntimeError(f"sipp exited at start: {self.log_file.read_text(errors='replace')}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.proc = None

    def messages(self) -> str:
        path = self.work_dir / "messages.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> SippCustomer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
