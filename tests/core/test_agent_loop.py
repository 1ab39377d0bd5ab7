"""The agent loop end to end against the simulated robot and the scripted model double:
turns, rejected actions, e-stop, a failing server, barge-in, and memory off the hot path."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from omni_agent.agent import NoMemory, TurnRecord
from omni_agent.messages import EStop, UserUtterance, VoiceActivity, VoiceHold
from omni_agent.state import State
from omni_agent.transport import ESTOP, STATE, USER_TEXT, VOICE, VOICE_HOLD
from sim.brains.scripted import ScriptedReply, last_user_text


def reply_to(body: dict[str, Any]) -> ScriptedReply:
    text = last_user_text(body)
    if "kitchen" in text.split(":")[-1]:
        return ScriptedReply(
            say="Going to the kitchen.", actions=[{"skill": "navigate_to", "place": "kitchen"}]
        )
    if "stairs" in text.split(":")[-1]:
        return ScriptedReply(
            say="Here I go!", actions=[{"skill": "navigate_to", "place": "stairs"}]
        )
    return ScriptedReply(say="Hello! I am Robbie, nice to meet you today.")


async def test_a_navigation_request_moves_the_robot_and_walks_the_states(make_harness) -> None:
    h = await make_harness(reply_to)
    states = h.bus.subscribe(STATE)
    record = await h.say("Please go to the kitchen")
    assert record.say == "Going to the kitchen."
    assert [r.action["place"] for r in record.executed] == ["kitchen"]
    assert h.robot.place == "kitchen"
    seen = []
    while (msg := states.get_nowait()) is not None:
        seen.append(msg.state)
    assert seen == ["THINKING", "SPEAKING", "ACTING", "IDLE"]
    assert h.speech[-1].text == "Going to the kitchen."
    lat = record.trace.stages_ms()
    assert {"request_sent", "first_token", "done"} <= lat.keys()


async def test_an_unsafe_action_is_rejected_the_robot_stays_and_the_model_is_told(
    make_harness,
) -> None:
    h = await make_harness(reply_to)
    start = h.robot.pose
    record = await h.say("Drive down the stairs")
    assert record.executed == []
    assert h.robot.pose == start
    assert record.rejected == ["navigate_to: would enter keep-out zone stairs"]
    assert "can't do that safely" in h.speech[-1].text
    await h.say("Hello again")
    assert "rejected, robot did not move" in last_user_text(h.backend.requests[-1])


async def test_model_output_that_breaks_the_format_is_rejected_and_nothing_moves(
    make_harness,
) -> None:
    h = await make_harness(lambda body: ScriptedReply(raw='{"say": "Sure", "actions": [{"sk'))
    record = await h.say("Go to the kitchen")
    assert record.say == "Sure"
    assert record.executed == []
    assert record.rejected[0].startswith("reply: model reply is not valid JSON")
    assert h.agent.machine.state == State.IDLE


async def test_estop_stops_a_turn_from_any_state_and_blocks_until_released(
    make_harness,
) -> None:
    h = await make_harness(reply_to, chunk_delay_s=0.02)
    h.bus.publish(USER_TEXT, UserUtterance(text="Please go to the kitchen", person="Alice"))
    await h.until_state(State.SPEAKING)
    h.bus.publish(ESTOP, EStop(engaged=True))
    await asyncio.wait_for(h.turn_done.wait(), 2)
    assert h.agent.machine.state == State.SAFE_STOP
    assert h.robot.halts == 1
    assert h.agent.turns[-1].executed == []  # the navigation never started
    assert h.backend.cancelled == 1  # generation stopped on the server too
    h.bus.publish(USER_TEXT, UserUtterance(text="Hello?", person="Alice"))
    await h.until(
        lambda: any("ignored while SAFE_STOP" in e.data.get("text", "") for e in h.events)
    )
    assert len(h.agent.turns) == 1  # nothing is started while stopped
    h.bus.publish(ESTOP, EStop(engaged=False))
    await h.until_state(State.IDLE)
    assert (await h.say("Please go to the kitchen")).executed


async def test_a_server_failing_mid_stream_safe_stops_then_recovers_when_it_is_back(
    make_harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = await make_harness(reply_to)
    h.agent.config.model.recovery_poll_s = 0.01
    h.backend.die_after_chunks = 3

    failed = await h.say("Please go to the kitchen")
    h.backend.down = True  # the server process is gone for a while
    assert failed.error is not None and "broke off" in failed.error
    assert failed.executed == []
    assert h.agent.machine.state == State.SAFE_STOP
    assert h.robot.halts == 1
    h.backend.down = False  # back: the agent's own polling notices
    await h.until_state(State.IDLE)
    assert (await h.say("Please go to the kitchen")).executed


async def test_barge_in_stops_speech_and_generation_and_keeps_only_what_was_said(
    make_harness,
) -> None:
    h = await make_harness(reply_to, chunk_delay_s=0.02, chunk_chars=4)
    h.bus.publish(USER_TEXT, UserUtterance(text="Hi there", person="Alice"))
    await h.until(lambda: any(s.spoken_text for s in h.agent.speech.playing))
    h.bus.publish(VOICE, VoiceActivity(speaking=True))
    await asyncio.wait_for(h.turn_done.wait(), 2)
    turn = h.agent.turns[-1]
    assert turn.interrupted
    assert turn.spoken and "Hello! I am Robbie, nice to meet you today.".startswith(turn.spoken)
    assert turn.spoken != "Hello! I am Robbie, nice to meet you today."
    assert h.backend.cancelled == 1
    assert h.agent.machine.state == State.LISTENING
    assert h.speech[-1].interrupted
    # nothing of the cut turn is said afterwards: the next thing heard is the next reply
    spoken_before = len(h.speech)
    await h.say("Hello again")
    await h.until(lambda: len(h.speech) > spoken_before)
    assert [s.text for s in h.speech[spoken_before:]] == [
        "Hello! I am Robbie, nice to meet you today."
    ]


async def test_a_voice_over_the_robot_pauses_it_and_a_backchannel_plays_it_on(
    make_harness,
) -> None:
    h = await make_harness(reply_to, chunk_delay_s=0.02, chunk_chars=4)
    h.bus.publish(USER_TEXT, UserUtterance(text="Hi there", person="Alice"))
    await h.until(lambda: any(s.spoken_text for s in h.agent.speech.playing))
    reply = h.agent.speech.playing[0]
    h.bus.publish(VOICE_HOLD, VoiceHold(hold=True))  # a voice starts: judged, robot paused
    await h.until(lambda: reply.paused)
    assert h.agent.machine.state == State.SPEAKING  # no barge-in yet: the turn goes on
    h.bus.publish(VOICE_HOLD, VoiceHold(hold=False))  # "mm-hmm": play on
    await asyncio.wait_for(h.turn_done.wait(), 5)
    turn = h.agent.turns[-1]
    assert not turn.interrupted and not reply.paused and len(reply.pauses) == 1
    assert turn.spoken == "Hello! I am Robbie, nice to meet you today."


async def test_a_barge_in_after_the_pause_stops_the_robot_and_the_next_reply_plays(
    make_harness,
) -> None:
    h = await make_harness(reply_to, chunk_delay_s=0.02, chunk_chars=4)
    h.bus.publish(USER_TEXT, UserUtterance(text="Hi there", person="Alice"))
    await h.until(lambda: any(s.spoken_text for s in h.agent.speech.playing))
    h.bus.publish(VOICE_HOLD, VoiceHold(hold=True))
    await h.until(lambda: h.agent.speech.paused)
    h.bus.publish(VOICE, VoiceActivity(speaking=True))  # words, not "mm-hmm": the pause stops it
    await asyncio.wait_for(h.turn_done.wait(), 2)
    assert h.agent.turns[-1].interrupted and not h.agent.speech.paused
    turn = await h.say("Hello again")  # the next reply is not born paused
    assert not turn.interrupted and turn.spoken == "Hello! I am Robbie, nice to meet you today."


async def test_a_false_interruption_returns_to_idle_and_resumes_the_reply(make_harness) -> None:
    h = await make_harness(reply_to)
    turn = await h.say("Hi there")
    # replay the end of a turn that was cut short, then a cough that is not an utterance
    turn.spoken = "Hello!"
    h.agent._interrupted = turn
    await h.agent.machine.move("hear", "user speaking")
    h.bus.publish(VOICE, VoiceActivity(speaking=False, utterance=False))
    await h.until(
        lambda: bool(h.speech) and h.speech[-1].text == "I am Robbie, nice to meet you today."
    )
    await h.until_state(State.IDLE)  # SPEAKING while the resumed reply played, then IDLE
    assert [t.dest for t in h.agent.machine.log][-3:] == ["IDLE", "SPEAKING", "IDLE"]


class SlowMemory(NoMemory):
    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.stored: list[TurnRecord] = []

    async def remember(self, record: TurnRecord) -> None:
        await self.release.wait()
        self.stored.append(record)


async def test_memory_writes_never_hold_up_the_next_turn(make_harness) -> None:
    h = await make_harness(reply_to)
    memory = SlowMemory()
    h.agent.memory = memory
    await h.say("Hi there")
    await h.say("Hi again")  # answered while the first write is still pending
    assert memory.stored == []
    memory.release.set()
    await h.agent.drain()
    assert [r.user_text for r in memory.stored] == ["Hi there", "Hi again"]


async def test_speech_start_has_the_server_pre_read_the_prompt_up_to_the_words(
    make_harness,
) -> None:
    prefilled = asyncio.Event()

    def watch_for_prefill(body: dict[str, Any]) -> ScriptedReply:
        if body["max_tokens"] == 1:
            prefilled.set()
        return reply_to(body)

    h = await make_harness(watch_for_prefill)
    await h.say("Hi there")
    h.bus.publish(VOICE, VoiceActivity(speaking=True))
    await asyncio.wait_for(prefilled.wait(), 5)
    prefill = h.backend.requests[-1]
    assert prefill["max_tokens"] == 1 and "response_format" not in prefill
    record = await h.say("Go to the kitchen")
    assert len(h.backend.requests) == 3 and record.executed
    real = h.backend.requests[-1]
    assert "Go to the kitchen" in last_user_text(real)
    before_words = last_user_text(prefill).removesuffix('"')
    # everything before the person's words is identical, so the server's cache covers it
    assert last_user_text(real).startswith(before_words)
    assert real["messages"][:-1] == prefill["messages"][:-1]
