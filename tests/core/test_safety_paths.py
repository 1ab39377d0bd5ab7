"""The envelope checks the path the robot will actually drive: one motion model for the
envelope, the simulated robot and sim_bridge's base (exact arcs, a disc footprint, a
margin), routes instead of goals, and every skill's speed within the limits.

Regression cases come from an attack on the old envelope (issue 12); the property tests
drive random approved sequences from random start poses through both executors.
"""

from __future__ import annotations

import asyncio
import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omni_agent.actions import Action, ActionRejected, LookAt, Move, NavigateTo, Turn
from omni_agent.config import ConfigError, SafetyConfig, load_config
from omni_agent.errors import UserError
from omni_agent.kinematics import Kinematics, Trajectory
from omni_agent.messages import Pose2D
from omni_agent.safety import SafetyEnvelope
from omni_agent.transport import Bus
from sim.base import DriveBase
from sim.robot import SimRobot
from sim.world import World

WORLD = World.load()
FOOTPRINT = SafetyConfig().footprint_radius_m
MARGIN = SafetyConfig().margin_m


def envelope(config: SafetyConfig | None = None) -> SafetyEnvelope:
    return SafetyEnvelope(config or SafetyConfig(), WORLD.site_map())


def sim_robot(pose: Pose2D, config: SafetyConfig | None = None) -> SimRobot:
    return SimRobot(WORLD, Bus(), start=pose, camera=None, safety=config or SafetyConfig())


def run(robot: SimRobot, action: Action) -> bool:
    return asyncio.run(robot.execute(action)).ok


# regressions -------------------------------------------------------------------------


def test_an_arc_that_dips_into_the_stairs_is_rejected() -> None:
    """Regression: forward Euler predicted a lowest y of 1.0001 for this move, the exact
    arc reaches 0.975, 2.5 cm inside the stairs; both steps were approved."""
    env = envelope()
    robot = sim_robot(WORLD.places["hallway"])
    first = NavigateTo(x=6.0, y=1.475, yaw=math.pi / 2)
    env.check(first, robot.pose)  # the footprint clears the stairs by 0.275 m
    assert run(robot, first)
    arc = Move(linear=0.5, angular=1.0, duration=5)
    with pytest.raises(ActionRejected, match="keep-out zone stairs"):
        env.check(arc, robot.pose)
    # the rejection is real: even the centre of the exact arc enters the stairs
    lowest = min(p.y for p in Kinematics().move(robot.pose, 0.5, 1.0, 5).sample(0.01))
    assert lowest == pytest.approx(0.975, abs=1e-3)
    # and with no footprint and no margin (the old envelope's point robot) still rejected
    bare = SafetyConfig(footprint_radius_m=0.0, margin_m=0.0)
    with pytest.raises(ActionRejected, match="keep-out zone stairs"):
        envelope(bare).check(arc, robot.pose)


def test_navigate_checks_the_route_and_the_robot_drives_that_route() -> None:
    """Regression: charging dock, then (10.0, 0.5): the envelope checked only the goal
    and sim_bridge drove straight through the stairs."""
    env = envelope()
    robot = sim_robot(WORLD.places["living room"])
    base = DriveBase(
        WORLD, WORLD.places["living room"], Kinematics(), max_linear=0.5, max_angular=1.0
    )
    for goal in (NavigateTo(place="charging dock"), NavigateTo(x=10.0, y=0.5)):
        predicted = env.predict(goal, robot.pose)
        assert predicted is not None
        assert run(robot, goal)
        assert robot.violations == []
        assert robot.pose.distance_to(predicted.end) < 1e-6
        t = base.t
        target = robot.pose
        assert base.navigate(target, t)
        while base.goal is not None:
            t += 0.05
            base.step(t)
        assert list(base.violations) == []
        assert base.pose.distance_to(target) < 1e-6
    assert robot.pose.distance_to(Pose2D(x=10.0, y=0.5)) < 1e-6


def test_a_route_that_must_cross_a_keepout_zone_is_rejected() -> None:
    """A configured keep-out zone over the hallway door: the goal is fine, the route is not."""
    door = {"name": "wet floor", "x_min": 4.5, "y_min": 1.0, "x_max": 5.5, "y_max": 3.0}
    config = SafetyConfig.model_validate({"keepout": [door]})
    with pytest.raises(ActionRejected, match="route would enter keep-out zone wet floor"):
        envelope(config).check(NavigateTo(place="kitchen"), WORLD.places["living room"])
    envelope().check(NavigateTo(place="kitchen"), WORLD.places["living room"])


def test_a_goal_the_footprint_would_overhang_a_zone_is_rejected() -> None:
    with pytest.raises(ActionRejected, match="keep-out zone stairs"):
        envelope().check(NavigateTo(x=6.0, y=1.1), WORLD.places["hallway"])


def test_the_rejection_tells_a_speed_just_over_the_limit_from_the_limit() -> None:
    """Regression: 'linear speed 0.5 m/s exceeds 0.5 m/s' for 0.5000001."""
    with pytest.raises(ActionRejected) as info:
        envelope().check(Move(linear=0.5000001, duration=1), WORLD.places["living room"])
    assert info.value.reason == "linear speed 0.5000001 m/s exceeds 0.5 m/s"


@pytest.mark.parametrize(
    "action",
    [NavigateTo(place="kitchen"), LookAt(target="red cup"), Turn(degrees=90)],
    ids=["navigate_to", "look_at", "turn"],
)
def test_lowered_limits_bound_every_skill(action: Action) -> None:
    """Regression: with max_linear_speed 0.2 and max_angular_speed 0.5, navigate_to drove
    at 0.4 m/s, look_at turned at 1.5 rad/s and turn at 1.0 rad/s."""
    config = load_config(
        overrides={"safety.max_linear_speed": 0.2, "safety.max_angular_speed": 0.5}
    ).safety
    start = WORLD.places["living room"]
    envelope(config).check(action, start)
    robot = sim_robot(start, config)
    assert run(robot, action)
    path = robot.last_path
    dt = 0.05
    for a, b in itertools.pairwise(path):
        # each step lasts at most STEP_S: a speed over the limit would cover more
        assert a.distance_to(b) <= 0.2 * dt + 1e-9
        assert abs(math.remainder(b.yaw - a.yaw, 2 * math.pi)) <= 0.5 * dt + 1e-9


def test_look_at_turns_within_the_default_limit() -> None:
    """Regression: with default limits look_at still turned at 1.5 rad/s against 1.0."""
    robot = sim_robot(WORLD.places["living room"])
    assert run(robot, LookAt(target="sofa"))
    turned = abs(math.remainder(robot.pose.yaw, 2 * math.pi))
    assert robot.sim_time >= turned / SafetyConfig().max_angular_speed - 1e-9


def test_a_skill_speed_over_the_limits_fails_at_start_not_at_run_time() -> None:
    with pytest.raises(ConfigError, match=r"navigate_speed 0\.4 m/s exceeds max_linear_speed 0\.2"):
        load_config(overrides={"safety.max_linear_speed": 0.2, "safety.navigate_speed": 0.4})
    with pytest.raises(ConfigError, match=r"turn_speed 1 rad/s exceeds max_angular_speed 0\.5"):
        load_config(overrides={"safety.max_angular_speed": 0.5, "safety.turn_speed": 1.0})
    slow = SafetyConfig(max_linear_speed=0.2, max_angular_speed=0.5)
    with pytest.raises(UserError, match=r"over the 0\.2 m/s limit"):
        SimRobot(WORLD, Bus(), safety=slow, kinematics=Kinematics(), camera=None)
    with pytest.raises(UserError, match="below the navigation speeds"):
        DriveBase(WORLD, WORLD.places["hallway"], Kinematics(), max_linear=0.2, max_angular=1.0)
    # an envelope handed a faster model than its limits rejects the skills it would drive
    fast = SafetyEnvelope(slow, WORLD.site_map(), Kinematics())
    for action, reason in (
        (NavigateTo(place="kitchen"), "driving speed 0.4 m/s exceeds 0.2 m/s"),
        (Turn(degrees=10), "turn speed 1 rad/s exceeds 0.5 rad/s"),
        (LookAt(target="sofa"), "turn speed 1 rad/s exceeds 0.5 rad/s"),
    ):
        with pytest.raises(ActionRejected, match=reason):
            fast.check(action, WORLD.places["living room"])


# every skill at every limit ----------------------------------------------------------

LIMITS = SafetyConfig(max_linear_speed=0.3, max_angular_speed=0.6, max_move_duration_s=4.0)
OPEN = Pose2D(x=2.5, y=2.0)
"""The middle of the living room: 2 m from any zone, so only the limits decide."""


@pytest.mark.parametrize(
    ("action", "ok"),
    [
        (Move(linear=0.3, duration=1), True),
        (Move(linear=-0.3, duration=1), True),
        (Move(linear=0.3000001, duration=1), False),
        (Move(linear=0.1, angular=0.6, duration=1), True),
        (Move(linear=0.1, angular=-0.6000001, duration=1), False),
        (Move(linear=0.1, duration=4.0), True),
        (Move(linear=0.1, duration=4.0000001), False),
        (Turn(degrees=360), True),
        (Turn(degrees=-360), True),
        (LookAt(target="sofa"), True),
        (NavigateTo(place="sofa"), True),
    ],
)
def test_every_skill_at_its_limit(action: Action, ok: bool) -> None:
    env = envelope(LIMITS)
    if not ok:
        with pytest.raises(ActionRejected, match="exceeds"):
            env.check(action, OPEN)
        return
    env.check(action, OPEN)
    robot = sim_robot(OPEN, LIMITS)
    assert run(robot, action) and robot.violations == []


# properties --------------------------------------------------------------------------


@st.composite
def start_poses(draw: st.DrawFn) -> Pose2D:
    """A pose the robot can be in: inside the rooms, footprint and margin clear."""
    env = envelope()
    room = draw(st.sampled_from([r for r in WORLD.rooms if r.name != "stairs"]))
    x = draw(st.floats(room.x_min, room.x_max))
    y = draw(st.floats(room.y_min, room.y_max))
    yaw = draw(st.floats(-math.pi, math.pi))
    pose = Pose2D(x=x, y=y, yaw=yaw)
    if env.zones.point_breach(x, y, env.kinematics.clearance) is not None:
        return draw(st.sampled_from([p for n, p in WORLD.places.items() if n != "stairs"]))
    return pose


speeds = st.floats(-0.5, 0.5)
turn_rates = st.floats(-1.0, 1.0)
actions = st.one_of(
    st.builds(Move, linear=speeds, angular=turn_rates, duration=st.floats(0.05, 6.0)),
    st.builds(Turn, degrees=st.floats(-360, 360)),
    st.builds(LookAt, target=st.sampled_from(sorted(WORLD.landmark_poses()))),
    st.builds(NavigateTo, place=st.sampled_from(sorted(WORLD.places))),
    st.builds(
        NavigateTo,
        x=st.floats(-0.5, 11.5),
        y=st.floats(-2.0, 7.5),
        yaw=st.none() | st.floats(-math.pi, math.pi),
    ),
)


def _near(path: list[Pose2D], predicted: Trajectory, tol: float) -> bool:
    """Every driven pose lies within `tol` of the predicted path."""
    if not path:
        return True
    dense = np.array([(q.x, q.y) for q in predicted.sample(0.005)])
    driven = np.array([(p.x, p.y) for p in path])
    gaps = np.sqrt(((driven[:, None, :] - dense[None, :, :]) ** 2).sum(-1)).min(axis=1)
    return bool(gaps.max() <= tol)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=start_poses(), sequence=st.lists(actions, min_size=1, max_size=4))
def test_approved_sequences_keep_the_sim_robot_clear(start: Pose2D, sequence: list[Action]) -> None:
    env = envelope()
    robot = sim_robot(start)
    for action in sequence:
        try:
            predicted = env.predict(action, robot.pose)
        except ActionRejected:
            continue
        run(robot, action)  # may stop early at a wall: then it drove a prefix
        assert robot.violations == [], (action, robot.violations)
        if predicted is not None:
            # what was driven is the predicted path (a prefix of it when a wall stopped it)
            assert _near(robot.last_path, predicted, MARGIN)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    start=start_poses(),
    sequence=st.lists(actions, min_size=1, max_size=3),
    phase=st.floats(0.0, 0.05, exclude_max=True),
)
def test_approved_sequences_keep_sim_bridges_base_clear(
    start: Pose2D, sequence: list[Action], phase: float
) -> None:
    """sim_bridge's base as the ROS graph drives it: moves and turns as velocity commands
    re-sent at 10 Hz for their duration (RosRobot), goals along the planner's route; the
    base integrates at 20 Hz with its own phase."""
    env = envelope()
    kin = env.kinematics
    base = DriveBase(WORLD, start, kin, max_linear=0.5, max_angular=1.0)
    t = 0.0
    for action in sequence:
        try:
            predicted = env.predict(action, base.pose)
        except ActionRejected:
            continue
        if predicted is None:
            continue
        before = len(base.path)
        if isinstance(action, NavigateTo):
            assert base.navigate(predicted.end, t)
            end = t + predicted.duration
        else:
            seg = predicted.segments[0] if predicted.segments else None
            end = t + (seg.duration if seg else 0.0)
            k = 0
            while seg is not None and t + k * 0.1 < end:
                base.command(seg.linear, seg.angular, t + k * 0.1)
                k += 1
            if seg is not None:
                base.command(0.0, 0.0, end)
        tick = math.floor(t / 0.05) * 0.05 + phase
        while tick < end + 0.1:
            base.step(tick)
            tick += 0.05
        base.step(end + 0.1)
        t = end + 0.1
        assert list(base.violations) == [], (action, list(base.violations))
        driven = list(base.path)[before:]
        assert _near(driven, predicted, MARGIN)
