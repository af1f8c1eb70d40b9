from __future__ import annotations

import pytest

from ivr.agi.channel import AGIError, AGIHangup, parse_response, quote


def test_parse_plain_result() -> None:
    r = parse_response("200 result=49")
    assert (r.code, r.result, r.value, r.data) == (200, "49", 49, "")


def test_parse_result_with_data_and_extra() -> None:
    r = parse_response("200 result=1 (hello world) endpos=8000")
    assert (r.result, r.data, r.extra) == ("1", "hello world", {"endpos": "8000"})


def test_parse_timeout() -> None:
    r = parse_response("200 result= (timeout)")
    assert r.result == "" and r.data == "timeout"


@pytest.mark.parametrize("line", ["HANGUP", "511 Command Not Permitted on a dead channel"])
def test_hangups_raise(line: str) -> None:
    with pytest.raises(AGIHangup):
        parse_response(line)


@pytest.mark.parametrize("line", ["510 Invalid or unknown command", "garbage"])
def test_errors_raise(line: str) -> None:
    with pytest.raises(AGIError):
        parse_response(line)


def test_quote_escapes() -> None:
    assert quote('a "b"') == '"a \\"b\\""'
