"""Actions: typed validation and the safety envelope, fuzzed so that nothing unsafe ever
reaches the (simulated) robot."""

from __future__ import annotations

import asyncio
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omni_agent.actions import ActionRejected, Move, NavigateTo, parse_action, reply_schema
from omni_agent.config import SafetyConfig
from omni_agent.messages import Pose2D
from omni_agent.safety import SafetyEnvelope
from omni_agent.transport import Bus
from sim.robot import SimRobot
from sim.world import World

WORLD = World.load()
LIMITS = SafetyConfig()


def envelope(config: SafetyConfig = LIMITS) -> SafetyEnvelope:
    return SafetyEnvelope(config, WORLD.site_map())


START = WORLD.places["living room"]

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-3, max_value=3),
    st.integers(min_value=-100, max_value=100),
    st.text(max_size=5),
    st.none(),
)
names = st.one_of(
    st.sampled_from([*WORLD.places, "stairs", "garage", "KITCHEN", " kitchen ", "red cup"]),
    st.text(max_size=12),
    numbers,
)
raw_actions = st.fixed_dictionaries(
    {"skill": st.sampled_from(["move", "navigate_to", "turn", "look_at", "stop", "say", "fly"])},
    optional={
        "linear": numbers,
        "angular": numbers,
        "duration": numbers,
        "place": names,
        "x": numbers,
        "y": numbers,
        "degrees": numbers,
        "target": names,
        "text": st.text(max_size=20),
        "extra": numbers,
    },
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=raw_actions, start=st.sampled_from(sorted(WORLD.places)))
def test_fuzzed_actions_either_get_rejected_or_keep_the_robot_safe(
    raw: dict[str, object], start: str
) -> None:
    pose = WORLD.places[start]
    if WORLD.violation(pose.x, pose.y):
        return  # a start inside a keep-out zone is not a state the robot can be in
    try:
        action = parse_action(raw)
        envelope().check(action, pose)
    except ActionRejected as exc:
        assert exc.reason and "\n" not in exc.reason
        return
    # it passed both gates: executing it must not break any ground-truth rule
    robot = SimRobot(WORLD, Bus(), start=pose)
    asyncio.run(robot.execute(action))
    assert robot.violations == []
    if isinstance(action, Move):
        assert abs(action.linear) <= LIMITS.max_linear_speed
        assert abs(action.angular) <= LIMITS.max_angular_speed
        assert action.duration <= LIMITS.max_move_duration_s
        assert all(map(math.isfinite, (action.linear, action.angular, action.duration)))


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"skill": "navigate_to", "place": "stairs"}, "keep-out zone stairs"),
        ({"skill": "navigate_to", "place": "garage"}, "unknown place 'garage'"),
        ({"skill": "move", "linear": 2.0, "duration": 1}, "linear speed 2 m/s exceeds 0.5"),
        ({"skill": "move", "linear": 0.3, "duration": 60}, "duration 60 s exceeds 10 s"),
        ({"skill": "move", "linear": -0.5, "duration": 10}, "would leave the geofence"),
        ({"skill": "move", "linear": float("nan"), "duration": 1}, "linear"),
        ({"skill": "move", "linear": 0.1, "duration": 1, "turbo": True}, "turbo"),
        ({"skill": "navigate_to"}, "either place or both x and y"),
        ({"skill": "fly", "height": 3}, "unknown skill"),
        ("not json", "not valid JSON"),
    ],
)
def test_unsafe_or_malformed_actions_are_rejected_with_a_reason(raw: object, reason: str) -> None:
    with pytest.raises(ActionRejected) as info:
        action = parse_action(raw)
        envelope().check(action, START)
    assert reason in str(info.value)


def test_the_allow_list_rejects_skills_a_deployment_turned_off() -> None:
    config = SafetyConfig(allowed_skills=["say", "stop"])
    with pytest.raises(ActionRejected, match="allow-list"):
        envelope(config).check(NavigateTo(place="kitchen"), START)


def test_a_configured_keepout_applies_even_when_the_map_has_none() -> None:
    config = SafetyConfig.model_validate(
        {"keepout": [{"name": "dock", "x_min": 0, "y_min": 0, "x_max": 1, "y_max": 1}]}
    )
    with pytest.raises(ActionRejected, match="dock"):
        envelope(config).check(NavigateTo(place="charging dock"), Pose2D(x=2.5, y=2))


def test_reply_schema_lists_every_allowed_motion_skill_after_say() -> None:
    schema = reply_schema(["say", "move", "navigate_to", "stop"])
    assert list(schema["properties"]) == ["say", "actions"]
    variants = schema["properties"]["actions"]["items"]["anyOf"]
    assert [v["properties"]["skill"]["const"] for v in variants] == ["move", "navigate_to", "stop"]
