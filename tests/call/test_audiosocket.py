"""AudioSocket server against a fake Asterisk client over 127.0.0.1."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from ivr.call.audiosocket import (
    KIND_UUID,
    AudioSocketServer,
    Turn,
    TurnOutcome,
    encode,
)
from ivr.speech import audio

from .conftest import tone
from .energy_listener import EnergyListener
from .fake_asterisk import FakeAsterisk

pytestmark = pytest.mark.timeout(30)


def run(coro):
    return asyncio.run(coro)


async def one_turn(turn: Turn, caller_pcm: bytes = b"", actions=None,
                   lead_frames: int = 2) -> tuple[TurnOutcome, FakeAsterisk]:
    async with AudioSocketServer(lead_frames=lead_frames) as server:
        call = str(uuid.uuid4())
        fut = server.register(call, turn)
        client = FakeAsterisk(server.port, call)
        await client.connect()
        streamer = asyncio.create_task(client.stream(caller_pcm)) if caller_pcm else None
        if actions:
            await actions(client)
        outcome = await asyncio.wait_for(fut, 15)
        await client.wait_closed()
        if streamer:
            streamer.cancel()
        await client.close()
        return outcome, client


def test_play_only_sends_every_frame_paced_in_real_time():
    prompt = tone(500)
    outcome, client = run(one_turn(Turn(prompt=prompt)))
    assert outcome.event == "played"
    frames = client.rec.prompt_frames
    assert len(frames) == 25 == outcome.prompt_frames_sent == outcome.prompt_frames_total
    assert b"".join(f for _, f in frames) == prompt
    assert all(len(f) == audio.FRAME_BYTES for _, f in frames)
    spread = frames[-1][0] - frames[0][0]
    assert 380 <= spread <= 560, spread  # (25 - 1 - lead 2) * 20 ms = 440 ms, not a burst
    assert client.rec.hangup_received  # AudioSocket() returns gracefully on 0x00
    assert outcome.timings.prompt_started is not None and outcome.timings.closed is not None


def test_barge_in_stops_prompt_at_once(espeak_pcm):
    listener = EnergyListener(threshold=500, start_frames=3, end_silence_ms=600)
    caller = audio.silence(400) + espeak_pcm + audio.silence(1500)
    outcome, client = run(one_turn(Turn(prompt=tone(4000), listener=listener), caller))
    assert outcome.event == "end"
    assert outcome.barged_in
    assert outcome.prompt_frames_sent < outcome.prompt_frames_total
    t = outcome.timings
    assert t.speech_start is not None and t.speech_end is not None
    assert t.barge_in_stop_ms is not None and t.barge_in_stop_ms < 25
    # caller side: the frame that completed speech_start vs the last prompt frame that arrived
    loud = [i for i, f in enumerate(audio.frames(caller)) if audio.rms(f) >= 500]
    trigger = loud[2]
    assert loud[:3] == [loud[0], loud[0] + 1, loud[0] + 2]
    sent = client.rec.sent_at[trigger]
    # the server keeps the line alive with silence after the prompt stops: ignore those frames
    last_prompt = [at for at, f in client.rec.prompt_frames if any(f)][-1]
    assert last_prompt - sent < 30, last_prompt - sent
    assert outcome.result["speech"] is True


def test_without_barge_in_caller_is_ignored_during_prompt(espeak_pcm):
    listener = EnergyListener(threshold=500, no_input_ms=600)
    caller = espeak_pcm[: 16000 * 7 // 10] + audio.silence(3000)  # 0.7 s speech inside 1.2 s prompt
    outcome, client = run(one_turn(Turn(prompt=tone(1200), listener=listener, barge_in=False),
                                   caller))
    assert outcome.prompt_frames_sent == outcome.prompt_frames_total == 60
    assert not outcome.barged_in
    assert outcome.event == "no_input"  # the speech during the prompt was never heard
    assert outcome.timings.speech_start is None
    waited = outcome.timings.closed - outcome.timings.prompt_stopped
    assert 550 <= waited <= 1000, waited


def test_speech_after_prompt_is_recognised_when_no_barge_in(espeak_pcm):
    listener = EnergyListener(threshold=500, end_silence_ms=500)
    caller = audio.silence(800) + espeak_pcm + audio.silence(1500)
    outcome, _ = run(one_turn(Turn(prompt=tone(400), listener=listener, barge_in=False), caller))
    assert outcome.event == "end"
    assert outcome.timings.speech_start > outcome.timings.prompt_stopped


def test_dtmf_ends_turn_and_stops_prompt():
    async def press(client: FakeAsterisk) -> None:
        await asyncio.sleep(0.3)
        await client.dtmf("7")

    outcome, client = run(one_turn(Turn(prompt=tone(3000), listener=EnergyListener()),
                                   audio.silence(3000), press))
    assert outcome.event == "dtmf" and outcome.dtmf == "7"
    assert 10 <= outcome.prompt_frames_sent < 40
    assert client.rec.hangup_received


@pytest.mark.parametrize("clean", [True, False])
def test_caller_hangup_resolves_turn(clean):
    async def hang(client: FakeAsterisk) -> None:
        await asyncio.sleep(0.2)
        await client.hangup(clean=clean)

    outcome, client = run(one_turn(Turn(prompt=tone(2000), listener=EnergyListener()),
                                   b"", hang))
    assert outcome.event == "hangup"
    assert outcome.prompt_frames_sent < 40
    assert not client.rec.hangup_received


class NeverDecides:
    def __init__(self) -> None:
        self.fed = 0

    def feed(self, pcm: bytes) -> str | None:
        self.fed += 1
        return None

    def result(self) -> int:
        return self.fed


def test_enum_events_are_understood():
    import enum

    class Ev(enum.Enum):
        SPEECH_START = "speech_start"
        END = "end"

    class EnumListener(NeverDecides):
        def feed(self, pcm: bytes):
            self.fed += 1
            return Ev.SPEECH_START if self.fed == 3 else Ev.END if self.fed == 10 else None

    outcome, _ = run(one_turn(Turn(prompt=tone(2000), listener=EnumListener()),
                              audio.silence(2000)))
    assert outcome.event == "end" and outcome.barged_in and outcome.result == 10


def test_listen_timeout_when_listener_never_decides():
    outcome, _ = run(one_turn(Turn(prompt=tone(100), listener=NeverDecides(), max_listen_ms=300),
                              audio.silence(2000)))
    assert outcome.event == "timeout"
    assert outcome.result > 5  # the listener was fed after the prompt


def test_listener_crash_is_an_outcome_not_a_server_crash():
    class Broken(NeverDecides):
        def feed(self, pcm: bytes) -> str | None:
            raise RuntimeError("boom")

    outcome, _ = run(one_turn(Turn(prompt=b"", listener=Broken()), audio.silence(500)))
    assert outcome.event == "error" and "boom" in (outcome.error or "")


def test_no_connect_and_unknown_uuid():
    async def scenario():
        async with AudioSocketServer() as server:
            fut = server.register(uuid.uuid4(), Turn(prompt=tone(100), connect_timeout_ms=100))
            outcome = await asyncio.wait_for(fut, 5)
            assert outcome.event == "no_connect"
            # a connection for a uuid nobody registered is closed at once
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(encode(KIND_UUID, uuid.uuid4().bytes))
            await writer.drain()
            data = await asyncio.wait_for(reader.read(), 5)
            assert data == encode(0x00)
            writer.close()
            # cancel() resolves a registered turn too
            u = uuid.uuid4()
            fut2 = server.register(u, Turn())
            server.cancel(u)
            assert (await fut2).event == "no_connect"

    run(scenario())


def test_concurrent_calls_get_their_own_prompts():
    async def scenario():
        async with AudioSocketServer() as server:
            prompts = [tone(400, freq=300 + 100 * i) for i in range(6)]
            calls = [str(uuid.uuid4()) for _ in prompts]
            futs = [server.register(c, Turn(prompt=p)) for c, p in zip(calls, prompts, strict=True)]
            clients = [FakeAsterisk(server.port, c) for c in calls]
            await asyncio.gather(*(c.connect() for c in clients))
            outcomes = await asyncio.wait_for(asyncio.gather(*futs), 10)
            for c in clients:
                await c.wait_closed()
                await c.close()
            return prompts, clients, outcomes

    prompts, clients, outcomes = run(scenario())
    for p, c, o in zip(prompts, clients, outcomes, strict=True):
        assert o.event == "played"
        assert b"".join(f for _, f in c.rec.prompt_frames) == p
    # played in parallel, not one after another (6 x 400 ms would be 2.4 s)
    starts = [o.timings.prompt_started for o in outcomes]
    ends = [o.timings.closed for o in outcomes]
    assert max(ends) - min(starts) < 1000


def test_register_twice_is_refused():
    async def scenario():
        async with AudioSocketServer() as server:
            u = uuid.uuid4()
            server.register(u, Turn())
            with pytest.raises(ValueError):
                server.register(str(u), Turn())

    run(scenario())


def test_key_tail_at_turn_start_is_ignored():
    # A key event in the first moments of a turn is the tail of the previous question's press.
    async def press(client: FakeAsterisk) -> None:
        await asyncio.sleep(0.05)
        await client.dtmf("1")
        await asyncio.sleep(0.6)
        await client.dtmf("2")

    outcome, _client = run(one_turn(Turn(prompt=tone(3000), listener=EnergyListener()),
                                    audio.silence(3000), press))
    assert outcome.event == "dtmf" and outcome.dtmf == "2"
