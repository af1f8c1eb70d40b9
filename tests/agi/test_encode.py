"""The one AGI argument encoder and the command check (#13): data never becomes a second command."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.agi import encode
from ivr.agi.channel import AGIChannel, AGIRefused, AGIResponse, parse_response
from ivr.agi.encode import UnsafeCommand

VECTORS = ["商品\nEXEC Dial PJSIP/0099912345678@carrier", "a\rEXEC Dial x", 'a" EXEC Dial "x',
           "a\\", "a\\\"b", "a\x00EXEC Dial x", "\x1b[2J\x07\x7f\x85\u2028\u2029", "x" * 20000,
           "", " ", '"', "\\\\\\", "failure"]


@pytest.mark.parametrize("value", VECTORS)
def test_encoded_argument_reads_back_as_exactly_one_clean_argument(value: str) -> None:
    quoted = encode.arg(value)
    assert not encode.CONTROL.search(quoted)
    line = f"SET VARIABLE X {quoted}"
    assert encode.check_command(line) == line
    assert encode.split(line) == ["SET", "VARIABLE", "X", encode.clean(value)]


@settings(max_examples=2000, deadline=None)
@given(st.text(), st.text(alphabet=st.sampled_from(list('"\\ \n\r\t\x00ab')), max_size=50))
def test_any_text_round_trips_through_asterisks_parser(value: str, tricky: str) -> None:
    for v in (value, tricky, value + tricky):
        line = f"VERBOSE {encode.arg(v)} 1"
        # What Asterisk's parse_args (res_agi.c) makes of the line: the same three arguments.
        assert encode.split(encode.check_command(line)) == ["VERBOSE", encode.clean(v), "1"]
        assert len(line.encode()) <= encode.MAX_COMMAND_BYTES


@pytest.mark.parametrize("line", [
    "SET VARIABLE X \"a\nEXEC Dial PJSIP/1@carrier\"",  # a line break: a second command
    "SET VARIABLE X \"a\rb\"", "SET VARIABLE X \"a\x00b\"",
    'SET VARIABLE X "unterminated', "SET VARIABLE X dangling\\",
    "VERBOSE " + "x" * 5000,  # longer than Asterisk's buffer: the rest would be a new command
])
def test_the_check_refuses_unsafe_commands(line: str) -> None:
    with pytest.raises(UnsafeCommand):
        encode.check_command(line)


class Recorder:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def command(self, line: str) -> AGIResponse:
        self.sent.append(line)
        return parse_response("200 result=1")

    async def close(self) -> None:
        return None


def test_the_channel_never_sends_an_unsafe_command() -> None:
    t = Recorder()
    agi = AGIChannel(t, {})

    async def main() -> None:
        await agi.set_variable("__IVR_PRODUCT", "商品\nEXEC Dial PJSIP/0099912345678@carrier")
        await agi.verbose('x" \\ \r\n\x00')
        await agi.stream_file("/tmp/a b/prompt", "0123")
        for bad in (lambda: agi.command("EXEC Dial x\nEXEC Dial y"),
                    lambda: agi.set_variable("CALLERID(num)", "1"),
                    lambda: agi.set_variable("X Y", "1"),
                    lambda: agi.exec("Dial PJSIP/1", "x"),
                    lambda: agi.goto("ivr-agent", "agents\nEXEC Dial x")):
            with pytest.raises(AGIRefused):
                await bad()

    asyncio.run(main())
    assert t.sent == ['SET VARIABLE __IVR_PRODUCT "商品 EXEC Dial PJSIP/0099912345678@carrier"',
                      'VERBOSE "x\\" \\\\    " 1', 'STREAM FILE "/tmp/a b/prompt" "0123"']
    assert all(encode.split(line) for line in t.sent)
