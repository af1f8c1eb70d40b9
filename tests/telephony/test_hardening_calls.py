"""Order data never becomes telephony control (#13), on real calls: Asterisk + FastAGI + sipp over
the PJSIP trunk.

An attacker's aim is to make Asterisk dial a number nobody planned (toll fraud: 0099912345678) or
one the rules forbid (do-not-call, Xinjiang). They try through the order data (newline, CR, '"',
'\\', NUL, other control characters and very long values in product, merchant, host, buyer name
and order id - reaching the intro prompt, the transfer and its channel variables), through a
hand-made AMI Originate into ivr-dial with crafted variables, through ``ivr call --var``, and by
holding FastAGI connections open. Throughout, the carrier (sipp) must receive no INVITE but to the
planned numbers, Asterisk's log must show no application the dialplan did not name, and every
call must complete or fail cleanly.
"""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from panoramisk import Manager

from ivr.asterisk.render import DIALPLANS_DIR, ami_secret
from ivr.call.variables import CHANNEL, CallVariables
from ivr.config import PROJECT_ROOT
from ivr.dialer.ami import AmiOriginator
from ivr.dialer.types import DialResult
from ivr.farend import campaign as helpers
from ivr.farend.bed import Bed
from ivr.farend.customer_plan import Answer, plan_customer
from ivr.farend.sipp import Customer, HangUp, Wait
from ivr.fields import clean_text
from ivr.speech.tts import engine
from ivr.store import add_dnc
from ivr.survey.loader import load_script
from ivr.survey.orders import order_context

pytestmark = [pytest.mark.asterisk, pytest.mark.usefixtures("telephony")]

SCRIPT = PROJECT_ROOT / "tests" / "data" / "transfer.cmn.yaml"  # names the order, 0 = agent
MINI = PROJECT_ROOT / "tests" / "data" / "mini.cmn.yaml"
VOICE = "cmn-calm-male"
PLATFORM = "快购"
CALLER_ID = "+862150001001"
FRAUD = "0099912345678"  # what the attacker wants dialed
DNC = "8613900000009"
XINJIANG = "8613999123456"
EVIL = f"EXEC Dial PJSIP/{FRAUD}@carrier"
# One call per row: the vectors in every text field of one order, which the prompt names and the
# buyer transfers to a person (key 0), so they reach a prompt and every transfer variable.
HOSTILE: dict[str, dict[str, str]] = {
    "8613800139101": {  # line breaks
        "product": f"商品\n{EVIL}", "merchant": f"店\r{EVIL}", "host": f'主播"\n{EVIL}\n"',
        "buyer_name": f'买家\\"\n{EVIL}'},
    "8613800139102": {  # NUL, escape sequences, quotes and backslashes
        "product": f"A\x00{EVIL}", "merchant": "\x1b[2J\x07\x7f\x85\u2028店",
        "host": f'"; {EVIL} "', "buyer_name": '\\\\\\"\\'},
    "8613800139103": {  # very long values (past Asterisk's 8 KiB command buffer)
        "product": "长" * 5000 + f"\n{EVIL}", "merchant": "\\" * 3000, "host": '"' * 3000,
        "buyer_name": "x" * 9000 + f"\r\n{EVIL}"},
}
ALLOWED = "8613800139110"  # a number the rules allow (raw originates aim their tricks at it)
ROGUE_AGI = "8613800139111"
SURVEY = "8613800139120"  # a real survey call while 500 idle connections sit on the daemon
PLANNED = {*HOSTILE, ROGUE_AGI, SURVEY}


def order(number: str, **fields: Any) -> dict[str, Any]:
    return {"order_id": f"O{number}", "phone": "+" + number, "category": "baby", "price": 39.9,
            "platform": PLATFORM, "order_time": "2026-11-20T12:15:00+00:00", **fields}


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    home = tmp_path_factory.mktemp("hardening-bed")
    with Bed(home, agent_dial="Local/100@ivr-test-agent", platform=PLATFORM) as b:
        db = b.db()
        add_dnc(db, "+" + DNC, "asked", "test")
        # Straight into the table: the worst case is data that never passed the importer.
        for number, fields in HOSTILE.items():
            db["orders"].insert(order(number, **fields))
        tts = engine(b.settings)
        script = load_script(SCRIPT)
        customers = [
            plan_customer(n, script, order_context(db, f"O{n}", phone="+" + n, platform=PLATFORM,
                                                   timezone="Asia/Shanghai"),
                          [Answer(key="0")], tts, voice=VOICE, language="cmn", work_dir=home)
            for n in HOSTILE]
        customers.append(plan_customer(SURVEY, load_script(MINI), {"platform": PLATFORM},
                                       [Answer(key="1"), Answer(key="2")], tts,
                                       voice=VOICE, language="cmn", work_dir=home))
        # Every number an attacker might reach answers, so a leaked INVITE would be seen.
        customers += [Customer(n, actions=[Wait(4000)]) for n in (FRAUD, DNC, XINJIANG, ALLOWED)]
        customers.append(Customer(ROGUE_AGI, actions=[Wait(5000), HangUp()]))
        b.start_customers(customers)
        yield b
        # Module-wide verdict: whatever was tried, nothing else left on the trunk ...
        assert b.sipp is not None
        dialed = {n for n, _ in helpers.invites_from(b.sipp.messages())}
        assert dialed <= PLANNED, (dialed - PLANNED, b.diagnostics())
        # ... and Asterisk ran only applications the dialplan names.
        assert_only_dialplan_apps(b)


def dialplan_apps() -> set[str]:
    apps: set[str] = set()
    for f in DIALPLANS_DIR.glob("*.conf"):
        for line in f.read_text().splitlines():
            m = re.match(r"\s*(?:exten\s*=>\s*[^,]+,[^,]+|same\s*=>\s*[^,]+),\s*([A-Za-z]+)\(",
                         line)
            if m:
                apps.add(m.group(1))
    return apps


def assert_only_dialplan_apps(bed: Bed) -> None:
    log = bed.asterisk.log_file.read_text(errors="replace")
    ran = set(re.findall(r"Executing \[[^\]]*\] ([A-Za-z]+)\(", log))
    assert ran and ran <= dialplan_apps(), ran - dialplan_apps()
    # An AGI may EXEC applications too; a keys-only survey needs none.
    assert "AGI Script Executing Application" not in log
    assert not re.search(rf"Dial\([^)]*({FRAUD}|{DNC}|{XINJIANG})", log)


def dial(bed: Bed, number: str, **variables: str) -> DialResult:
    """``variables``: channel variable name -> value, put into the call contract as they are."""
    field = {var: name for name, var in CHANNEL.items()}

    async def run() -> DialResult:
        async with AmiOriginator.from_settings(bed.settings) as o:
            return await o.dial(CallVariables(phone="+" + number, caller_id=CALLER_ID,
                                              **{field[k]: v for k, v in variables.items()}))

    return asyncio.run(run())


def invites(bed: Bed) -> set[str]:
    assert bed.sipp is not None
    return {n for n, _ in helpers.invites_from(bed.sipp.messages())}


@pytest.mark.parametrize("number", sorted(HOSTILE))
def test_hostile_order_text_reaches_prompt_and_transfer_as_data(bed: Bed, number: str) -> None:
    fields = HOSTILE[number]
    r = dial(bed, number, IVR_ORDER_ID=f"O{number}", IVR_VOICE=VOICE, IVR_SCRIPT=str(SCRIPT))
    assert r.outcome == "answered", bed.diagnostics()
    row = bed.call_row(r.uniqueid)
    assert (row["state"], row["outcome"]) == ("completed", "transferred"), bed.diagnostics()
    assert row["error"] is None
    log = bed.asterisk.log_file.read_text(errors="replace")
    # The agent got every field whole, as one value each: control characters made spaces,
    # quotes and backslashes as written, bounded.
    want = {k: clean_text(v, 200) for k, v in fields.items()}
    agent = (f"ivr-test-agent merchant=<{want['merchant']}> host=<{want['host']}> "
             f"buyer=<{want['buyer_name']}> product=<{want['product']}>")
    assert agent in log, bed.diagnostics()
    assert f"Order: O{number},Product: " in log
    assert invites(bed) <= PLANNED
    assert bed.sipp is not None
    trace = bed.sipp.messages()
    # SIP headers name the product, never the Asterisk build.
    assert re.search(r"^User-Agent: ivr\s*$", trace, re.M) and "Asterisk PBX" not in trace
    assert "Traceback" not in bed.fastagi_log()


def test_hostile_order_id_is_never_dialed_or_used(bed: Bed) -> None:
    # The dialer refuses to originate with an order id outside its type, before AMI ...
    for bad in ('O1"', "O1\\", "O1\nAction: Originate", "O1,IVR_DIAL_PREFIX=00999",
                "O1\x00", "O" * 5000):
        r = dial(bed, ALLOWED, IVR_ORDER_ID=bad)
        assert r.outcome == "failed" and r.refused and "IVR_ORDER_ID" in r.cause_text, r
    # ... and a campaign contact whose order id came in some other way is skipped, not dialed.
    from ivr.call.variables import SURVEY, VariableError, check

    with pytest.raises(VariableError, match="IVR_ORDER_ID"):
        check({"IVR_ORDER_ID": 'O"\nEXEC Dial x'}, SURVEY)
    assert ALLOWED not in invites(bed)


def raw_originate(bed: Bed, number: str, variables: dict[str, str],
                  wait_s: float = 2.0) -> dict[str, str]:
    """An Originate into ivr-dial made by hand on AMI, with whatever variables it likes."""
    async def run() -> dict[str, str]:
        s = bed.settings
        m = Manager(host=s.ami.host, port=s.ami.port, username=s.ami.username,
                    secret=ami_secret(s), ping_delay=0)
        await asyncio.wait_for(m.connect(), 10)
        try:
            resp = await asyncio.wait_for(m.send_action({
                "Action": "Originate", "Channel": f"Local/{number}@ivr-dial",
                "Context": "ivr-survey", "Exten": "s", "Priority": "1", "Async": "true",
                "Timeout": "20000", "Variable": [f"{k}={v}" for k, v in variables.items()]}), 40)
            msgs = resp if isinstance(resp, list) else [resp]
            await asyncio.sleep(wait_s)
            return dict(msgs[-1])
        finally:
            m.close()

    return asyncio.run(run())


def test_raw_ami_originate_with_crafted_variables_reaches_nothing_forbidden(
        bed: Bed, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil_agi = tmp_path / "evil-agi"
    evil_agi.write_text(f"#!/bin/sh\ntouch {marker}\necho 'SET VARIABLE IVR_GUARD allow'\n")
    evil_agi.chmod(0o700)
    attempts = [
        # the guard bypass of issue 13: the prefix smuggles a second dial target
        (ALLOWED, {"__IVR_DIAL_PREFIX": f"{FRAUD}@carrier&PJSIP/"}),
        (ALLOWED, {"__IVR_DIAL_PREFIX": "00999"}),
        # a pre-approved target: the guard clears it and checks the number itself
        (DNC, {"__IVR_GUARD": "allow", "__IVR_DIAL_TARGET": f"PJSIP/{DNC}@carrier",
               "__IVR_DIAL_CALLER_ID": CALLER_ID, "__IVR_DIAL_TIMEOUT": "30"}),
        (ALLOWED, {"__IVR_DIAL_TARGET": f"PJSIP/{FRAUD}@carrier", "IVR_GUARD": "allow",
                   "__IVR_TRUNK": "nope"}),
        # replace the guard program itself, and make the dialplan take the classic path
        # (globals are read with GLOBAL())
        (DNC, {"__IVR_CLASSIC": str(evil_agi), "__IVR_AGI_TRANSPORT": "classic",
               "__IVR_AGI": "127.0.0.1:1"}),
        (DNC, {"__IVR_GUARD_REASON": "ok", "__IVR_GUARD": "allow"}),
        (XINJIANG, {"__IVR_TRUNK": "carrier", "__IVR_RING_TIMEOUT": "30|U(x)"}),
        (ALLOWED, {"__IVR_RING_TIMEOUT": "30|U(x)"}),
        (ALLOWED, {"__IVR_TRUNK": f"carrier/{FRAUD}"}),
        (FRAUD, {}),
        (f"{FRAUD}&PJSIP/{FRAUD}", {}),
    ]
    for number, variables in attempts:
        raw_originate(bed, number, variables)
    dialed = invites(bed)
    assert not dialed & {FRAUD, DNC, XINJIANG, ALLOWED}, (dialed, bed.diagnostics())
    assert not marker.exists()
    log = bed.asterisk.log_file.read_text(errors="replace")
    assert log.count("ivr guard refused") >= len(attempts) - 2  # the last two never match
    assert "AGI Script " + str(evil_agi) not in log


def test_raw_originate_cannot_point_the_survey_at_a_rogue_agi(bed: Bed) -> None:
    rogue = socket.socket()
    rogue.bind(("127.0.0.1", 0))
    rogue.listen()
    rogue.settimeout(0.1)
    port = rogue.getsockname()[1]
    try:
        raw_originate(bed, ROGUE_AGI, {"__IVR_AGI": f"127.0.0.1:{port}",
                                       "__IVR_AGI_TRANSPORT": "fastagi",
                                       "__IVR_PROMPTS": "/etc"}, wait_s=6.0)
        with pytest.raises(TimeoutError):
            rogue.accept()  # the survey went to our daemon, never to the rogue
    finally:
        rogue.close()
    assert ROGUE_AGI in invites(bed)  # the allowed call itself did go out
    # The raw originate set no IVR_PHONE: find the call by its channel.
    rows = bed.rows("SELECT state, error FROM calls WHERE channel LIKE ?", [f"%{ROGUE_AGI}%"])
    assert rows and rows[0]["error"] is None, bed.diagnostics()


def test_ivr_call_var_cannot_override_trunk_or_prefix(bed: Bed) -> None:
    for var in (f"IVR_DIAL_PREFIX={DNC}@carrier&PJSIP/", "IVR_TRUNK=carrier2",
                "IVR_CALLER_ID=+8613900000009", "IVR_DIAL_TARGET=PJSIP/0099912345678@carrier"):
        p = subprocess.run([sys.executable, "-m", "ivr", "-c", str(bed.config_file), "call",
                            "+" + ALLOWED, "--var", var], capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 2 and "error: --var" in p.stderr, p.stderr
    assert ALLOWED not in invites(bed)


def test_idle_fastagi_connections_do_not_stop_a_survey_call(bed: Bed) -> None:
    """500 idle connections held open, renewed 50 times a second all through the call."""
    socks: list[socket.socket] = []
    stop = threading.Event()

    def connect() -> None:
        s = socket.create_connection(("127.0.0.1", bed.settings.agi.port), timeout=5)
        s.sendall(b"agi_network: yes\n")  # a request that never ends
        socks.append(s)
        while len(socks) > 500:
            socks.pop(0).close()

    def flood() -> None:
        while not stop.is_set():
            connect()
            time.sleep(0.02)

    for _ in range(500):
        connect()
    attacker = threading.Thread(target=flood, daemon=True)
    attacker.start()
    try:
        r = dial(bed, SURVEY, IVR_SCRIPT=str(MINI), IVR_VOICE=VOICE)
        assert r.outcome == "answered", bed.diagnostics()
        row = bed.call_row(r.uniqueid)
        assert (row["state"], row["satisfied"], row["would_buy_again"]) == ("completed", 1, 0), \
            bed.diagnostics()
    finally:
        stop.set()
        attacker.join()
        for s in socks:
            s.close()
    log = bed.fastagi_log()
    assert "agi.max_pending" in log and "refused AGI connection from 127.0.0.1" in log
    assert "Traceback" not in log


def test_a_rogue_client_gets_nothing_from_the_running_daemon(bed: Bed) -> None:
    from support.agi_peer import header_block

    with socket.create_connection(("127.0.0.1", bed.settings.agi.port), timeout=5) as s:
        number = next(iter(HOSTILE))
        s.sendall(header_block("survey", uniqueid="1700000000.99"))
        s.settimeout(3)
        got = s.recv(4096)
        assert got == b'GET FULL VARIABLE "${GLOBAL(IVR_AGI_SECRET)}"\n'
        s.sendall(f"200 result=1 (O{number})\n".encode())  # a guess
        rest = b""
        while chunk := s.recv(4096):
            rest += chunk
        assert rest == b"failure\n"  # then closed: no prompt, no order data
    assert bed.rows("SELECT id FROM calls WHERE id = '1700000000.99'") == []



def test_a_daemon_that_refuses_asterisk_fails_the_call_cleanly(tmp_path: Path) -> None:
    """A daemon with another installation's secret refuses our Asterisk: the guard falls back to
    the classic entry point, the answered call gets the apology and is recorded as failed, and
    the refusing daemon touched nothing."""
    import yaml

    from ivr.asterisk.render import agi_secret
    from ivr.farend.bed import LOOPBACK

    with Bed(tmp_path / "bed", [Customer(ALLOWED, actions=[Wait(8000)])],
             start_agi=False) as bed:
        other = tmp_path / "other.yaml"
        conf = yaml.safe_load(bed.config_file.read_text())
        conf.update(home=str(tmp_path / "other-home"),
                    agi={**conf["agi"], "secret": "x" * 32})
        other.write_text(yaml.safe_dump(conf))
        assert agi_secret(bed.settings) != "x" * 32
        log = (tmp_path / "other-fastagi.log").open("ab")
        daemon = subprocess.Popen([sys.executable, "-m", "ivr", "-c", str(other), "agi", "serve"],
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    socket.create_connection((LOOPBACK, bed.settings.agi.port), 0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            r = dial(bed, ALLOWED)
        finally:
            daemon.terminate()
            daemon.wait(timeout=10)
        assert r.outcome == "failed" and "agi-unreachable" in r.cause_text, bed.diagnostics()
        rows = bed.rows("SELECT state, error FROM calls")
        assert rows == [{"state": "failed", "error": "agi-unreachable"}], rows
        assert "system/apology" in bed.asterisk.log_file.read_text()
        refused = (tmp_path / "other-fastagi.log").read_text()
        assert "refused AGI connection from 127.0.0.1" in refused
        assert "wrong or missing secret" in refused
        other_db = tmp_path / "other-home" / "ivr.db"
        assert bed.rows("SELECT count(*) AS n FROM calls")[0]["n"] == 1
        from ivr.store import open_db

        assert open_db(other_db)["calls"].count == 0  # the refusing daemon wrote nothing
