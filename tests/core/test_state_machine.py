"""The interaction state machine: legal flows, illegal transitions, guards, the log."""

from __future__ import annotations

import pytest
from transitions import MachineError

from omni_agent.state import InteractionMachine, State


async def test_a_full_turn_walks_the_states_and_logs_each_with_a_rising_timestamp() -> None:
    machine = InteractionMachine()
    await machine.hear()
    await machine.think()
    await machine.speak()
    await machine.act()
    await machine.speak()
    await machine.finish()
    assert [t.dest for t in machine.log] == [
        "LISTENING", "THINKING", "SPEAKING", "ACTING", "SPEAKING", "IDLE",
    ]  # fmt: skip
    stamps = [t.stamp for t in machine.log]
    assert stamps == sorted(stamps)
    assert machine.state == State.IDLE


@pytest.mark.parametrize(
    ("setup", "illegal"),
    [
        ([], "act"),  # nothing moves outside a turn
        ([], "finish"),
        ([], "give_up"),  # only a LISTENING machine gives up
        (["think", "speak"], "think"),  # never two turns at once
        (["hear"], "act"),  # no action while the person speaks
        (["hear"], "speak"),
        ([], "recover"),  # recover only from SAFE_STOP
        (["safe_stop"], "think"),  # nothing starts while stopped
        (["safe_stop"], "speak"),
        (["safe_stop"], "hear"),
        (["safe_stop"], "act"),
    ],
)
async def test_illegal_steps_are_refused_and_leave_the_state_unchanged(
    setup: list[str], illegal: str
) -> None:
    machine = InteractionMachine()
    for trigger in setup:
        assert await machine.move(trigger, "setup")
    before, logged = machine.state, len(machine.log)
    assert await machine.move(illegal, "test") is False
    with pytest.raises(MachineError):  # fired directly, the machine itself refuses
        await getattr(machine, illegal)()
    assert machine.state == before and len(machine.log) == logged


async def test_recovery_is_guarded_by_estop_release_and_backend_readiness() -> None:
    backend_up = False
    machine = InteractionMachine(backend_ready=lambda: backend_up)
    machine.estop_engaged = True
    await machine.safe_stop()
    assert await machine.recover() is False  # e-stop still engaged
    machine.estop_engaged = False
    assert await machine.recover() is False  # model server still down
    assert machine.state == State.SAFE_STOP
    backend_up = True
    assert await machine.recover() is True
    assert machine.state == State.IDLE


async def test_errors_are_reset_to_idle_and_observers_see_every_transition() -> None:
    seen = []
    machine = InteractionMachine(on_transition=seen.append)
    await machine.think()
    await machine.fail(reason="bug")
    assert machine.state == State.ERROR
    await machine.reset()
    assert [(t.source, t.dest) for t in seen] == [
        ("IDLE", "THINKING"), ("THINKING", "ERROR"), ("ERROR", "IDLE"),
    ]  # fmt: skip
