"""The FastAGI daemon as a rogue local process sees it (#13): without this installation's secret a
connection gets nothing - no order data, no do-not-call write, no directory - and idle or
malformed connections are refused with a logged reason while real requests are served."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest
from support.agi_peer import header_block, play_fastagi

from ivr.agi.fastagi import serve
from ivr.asterisk.render import agi_secret
from ivr.config import AgiSettings, ConfigError, Settings, load_settings
from ivr.farend.bed import free_port
from ivr.store import add_dnc, open_db

QUESTION = b'GET FULL VARIABLE "${GLOBAL(IVR_AGI_SECRET)}"\n'
ORDER = {"order_id": "SECRET-1", "phone": "+8613912345678", "product": "机密商品",
         "merchant": "店", "host": "主播", "price": 9.9}


def settings_for(tmp_path: Path, **agi: object) -> Settings:
    s = Settings(home=tmp_path)
    s.agi = AgiSettings(port=free_port(), header_timeout_s=agi.pop("header_timeout_s", 1.0),
                        **agi)  # type: ignore[arg-type]
    db = open_db(s.db_path)
    db["orders"].insert(ORDER)
    return s


async def with_daemon(settings: Settings, body: object) -> object:
    ready = asyncio.Event()
    server = asyncio.create_task(serve(settings, ready))
    await ready.wait()
    try:
        return await body()  # type: ignore[operator]
    finally:
        server.cancel()
        await asyncio.gather(server, return_exceptions=True)


async def rogue(port: int, payload: bytes, answer: bytes | None = None,
                read_s: float = 2.0) -> bytes:
    """Connect, send ``payload``; if the daemon asks something, reply ``answer``; return all it
    sent until it closed (or ``read_s`` passed)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    got = b""
    try:
        while True:
            chunk = await asyncio.wait_for(reader.readline(), read_s)
            if not chunk:
                break
            got += chunk
            if answer is not None and chunk.startswith(b"GET FULL VARIABLE"):
                writer.write(answer)
                await writer.drain()
    except TimeoutError:
        pass
    finally:
        writer.close()
    return got


def db_state(settings: Settings) -> tuple[int, int]:
    db = open_db(settings.db_path)
    return db["calls"].count, db["dnc"].count


@pytest.mark.parametrize("answer", [None, b"200 result=0\n", b"200 result=1 (guess)\n",
                                    b"200 result=1 ()\n", b"HANGUP\n"])
def test_without_the_secret_a_client_gets_nothing(tmp_path: Path, answer: bytes | None,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    settings = settings_for(tmp_path)
    caplog.set_level(logging.WARNING, "ivr.agi.fastagi")

    async def body() -> list[bytes]:
        out = []
        # the survey would read the order and speak it; opt-out would write do-not-call
        for script, extra in (("survey", {}), ("guard", {"agi_arg_1": "8613912345678"}),
                              ("survey", {"agi_arg_1": "x"})):
            out.append(await rogue(settings.agi.port, header_block(script, **extra), answer))
        return out

    sent = asyncio.run(with_daemon(settings, body))
    for got in sent:  # type: ignore[union-attr]
        # The only things ever sent: the secret question and "failure" (no prompt, no
        # variable, no data).
        assert got in (b"failure\n", QUESTION + b"failure\n"), got
    assert db_state(settings) == (0, 0)
    assert "refused AGI connection from 127.0.0.1:" in caplog.text
    assert "SECRET-1" not in caplog.text and "机密" not in caplog.text


def test_with_the_secret_the_request_is_served(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    add_dnc(open_db(settings.db_path), "+8613900000009", "asked", "test")

    async def body() -> list[str]:
        t = await play_fastagi("127.0.0.1", settings.agi.port, "guard",
                               [("GET VARIABLE", "200 result=0")] * 4 +
                               [("SET VARIABLE IVR_GUARD_REASON", "200 result=1")],
                               secret=agi_secret(settings), agi_arg_1="8613900000009")
        return t.commands

    commands = asyncio.run(with_daemon(settings, body))
    assert 'SET VARIABLE IVR_GUARD "deny"' in commands  # type: ignore[operator]


@pytest.mark.parametrize("uniqueid", ["../../../tmp/pwned", "1700000000.1/../../x", "..",
                                      "1700000000.1\x00", "a" * 200, "", "1700000000.1 x"])
def test_a_crafted_uniqueid_is_refused_before_anything(tmp_path: Path, uniqueid: str,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    settings = settings_for(tmp_path)
    caplog.set_level(logging.WARNING, "ivr.agi.fastagi")
    before = sorted(p for p in tmp_path.rglob("*"))
    secret = agi_secret(settings).encode()
    payload = header_block("survey", uniqueid=uniqueid)

    async def body() -> bytes:
        return await rogue(settings.agi.port, payload, b"200 result=1 (" + secret + b")\n")

    got = asyncio.run(with_daemon(settings, body))
    assert got == b"failure\n"  # refused at the headers: not even the secret question
    assert "bad agi_uniqueid" in caplog.text or "not a printable" in caplog.text
    after = sorted(p for p in tmp_path.rglob("*") if "ivr.db" not in p.name)
    assert [p for p in after if p not in before and "secrets" not in str(p)] == []
    assert not Path("/tmp/pwned").exists()
    assert db_state(settings) == (0, 0)


@pytest.mark.parametrize("payload", [
    b"agi_network: yes\nagi_network_script: survey\nagi_uniqueid: 1.1\nnot a header\n\n",
    b"agi_network: yes\nagi_network_script: ../survey\nagi_uniqueid: 1.1\n\n",
    b"agi_network: yes\nagi_network_script: survey\nagi_uniqueid: 1.1\nX-Evil: 1\n\n",
    b"agi_network: yes\nagi_network_script: survey\nagi_uniqueid: 1.1\nagi_arg_1: \x1b[2J\n\n",
    b"agi_network: yes\nagi_network_script: survey\nagi_uniqueid: 1.1\nagi_arg_1: \xff\xfe\n\n",
    b"agi_network_script: survey\nagi_uniqueid: 1.1\n\n",
    b"agi_network: yes\nagi_network_script: survey\nagi_uniqueid: 1.1\nagi_arg_1: "
    + b"x" * 2000 + b"\n\n",
    b"agi_x: " + b"y" * 70000 + b"\n\n",
])
def test_malformed_headers_are_refused(tmp_path: Path, payload: bytes,
                                       caplog: pytest.LogCaptureFixture) -> None:
    settings = settings_for(tmp_path)
    caplog.set_level(logging.WARNING, "ivr.agi.fastagi")

    async def body() -> bytes:
        return await rogue(settings.agi.port, payload, b"200 result=1 (x)\n")

    assert asyncio.run(with_daemon(settings, body)) == b"failure\n"
    assert "refused AGI connection from 127.0.0.1" in caplog.text
    assert db_state(settings) == (0, 0)


def test_idle_connections_time_out_and_cannot_crowd_out_asterisk(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = settings_for(tmp_path, header_timeout_s=1.0, max_pending=16)
    caplog.set_level(logging.WARNING, "ivr.agi.fastagi")

    async def body() -> tuple[list[str], float, int]:
        idle = [await asyncio.open_connection("127.0.0.1", settings.agi.port)
                for _ in range(60)]
        half = [await asyncio.open_connection("127.0.0.1", settings.agi.port) for _ in range(20)]
        for _r, w in half:  # a header block that never ends
            w.write(b"agi_network: yes\n")
            await w.drain()
        await asyncio.sleep(0.05)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        t = await play_fastagi("127.0.0.1", settings.agi.port, "guard",
                               [("GET VARIABLE", "200 result=0")] * 4 +
                               [("SET VARIABLE IVR_GUARD_REASON", "200 result=1")],
                               secret=agi_secret(settings), agi_arg_1="8613912345678")
        served = loop.time() - t0
        await asyncio.sleep(1.5)  # past the header timeout: every idle one was closed
        closed = 0
        for r, _w in idle + half:
            try:  # until EOF: the daemon says "failure" and closes
                closed += await asyncio.wait_for(r.read(), 0.5) in (b"", b"failure\n")
            except ConnectionError:  # closed with a reset: dropped all the same
                closed += 1
            except TimeoutError:
                pass
        for _r, w in idle + half:
            w.close()
        return t.commands, served, closed

    commands, served, closed = asyncio.run(with_daemon(settings, body))  # type: ignore[misc]
    assert 'SET VARIABLE IVR_GUARD "allow"' in commands
    assert closed == 80  # timed out or dropped for newer connections, none left hanging
    assert "agi.max_pending" in caplog.text and "agi.header_timeout_s" in caplog.text


def test_max_sessions_refuses_beyond_the_cap(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    settings = settings_for(tmp_path, max_sessions=1)
    caplog.set_level(logging.WARNING, "ivr.agi.fastagi")
    secret = agi_secret(settings)

    async def body() -> bytes:
        # One session held open (the guard waits for its first variable) ...
        r, w = await asyncio.open_connection("127.0.0.1", settings.agi.port)
        w.write(header_block("guard", agi_arg_1="8613912345678"))
        await w.drain()
        assert (await r.readline()).startswith(b"GET FULL VARIABLE")
        w.write(f"200 result=1 ({secret})\n".encode())
        await w.drain()
        assert (await r.readline()).startswith(b"GET VARIABLE")
        # ... so the next one is refused.
        second = await rogue(settings.agi.port, header_block("guard"),
                             f"200 result=1 ({secret})\n".encode())
        w.close()
        return second

    second = asyncio.run(with_daemon(settings, body))
    assert second == QUESTION + b"failure\n"
    assert "calls in progress (agi.max_sessions)" in caplog.text


def test_listening_beyond_loopback_needs_an_allow_list(tmp_path: Path) -> None:
    cfg = tmp_path / "ivr.yaml"
    cfg.write_text("agi: {host: 0.0.0.0}\n")
    with pytest.raises(ConfigError, match=r"agi: host 0.0.0.0 accepts connections "
                                          r"from other machines: list the Asterisk addresses"):
        load_settings(cfg)
    cfg.write_text("agi: {host: 0.0.0.0, allow: [10.0.0.5, 10.1.0.0/16]}\n")
    assert load_settings(cfg).agi.allow == ["10.0.0.5/32", "10.1.0.0/16"]
    cfg.write_text("agi: {host: 0.0.0.0, allow: [not-an-ip]}\n")
    with pytest.raises(ConfigError, match="agi.allow.0"):
        load_settings(cfg)


def test_address_check_uses_loopback_and_the_allow_list(tmp_path: Path) -> None:
    from ivr.agi.fastagi import FastAGIServer

    s = Settings(home=tmp_path)
    s.agi = AgiSettings(host="0.0.0.0", allow=["10.1.0.0/16"])

    async def make() -> FastAGIServer:  # panoramisk's Application wants a running loop
        return FastAGIServer(s, "x" * 32)

    server = asyncio.run(make())
    assert [server._address_allowed(a) for a in (
        "127.0.0.1", "::1", "10.1.2.3", "::ffff:10.1.2.3", "10.2.0.1", "192.168.1.5",
        "garbage")] == [True, True, True, True, False, False, False]


def test_secret_file_is_private_and_per_installation(tmp_path: Path) -> None:
    a = agi_secret(Settings(home=tmp_path / "a"))
    b = agi_secret(Settings(home=tmp_path / "b"))
    assert a != b and len(a) >= 32
    assert os.stat(tmp_path / "a" / "secrets" / "agi_secret").st_mode & 0o777 == 0o600
    assert agi_secret(Settings(home=tmp_path / "a")) == a
