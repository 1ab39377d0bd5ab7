"""Scenarios: a world, scripted user lines, and expectations checked after the episode.

Lines can be spread over days and sessions (each session is a fresh conversation with the
same long-term memory; the memory clock jumps with the days), said by different people,
said while the robot is still talking (`interrupt_after_s`), or over background noise
(`noise_dbfs`, speech mode). `turn: N` in an expectation means the reply to line N.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from omni_agent.errors import UserError
from sim.world import World

SCENARIOS_DIR = Path(__file__).parent / "scenarios"
DEFAULT_SCENARIO = SCENARIOS_DIR / "default.yaml"


class ScenarioError(UserError):
    pass


class Line(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1)
    person: str | None = None
    """Who speaks; defaults to the scenario's person."""
    day: int | None = Field(None, ge=1)
    """Day of the line (1-based); a later day than the previous line's starts a new session
    and jumps the clock. Unset: the previous line's day."""
    at: str | None = Field(None, pattern=r"^\d{1,2}:\d{2}$")
    """Time of day ("HH:MM") a new day starts at; default 09:00."""
    session: str | int | None = None
    """A change of session starts a fresh conversation (the agent's window is empty; only
    long-term memory carries over). Unset: the previous line's session."""
    pause_s: float = Field(2.0, ge=0)
    """Simulated seconds the person waits before saying the line."""
    interrupt_after_s: float | None = Field(None, ge=0)
    """Say this line while the robot is still speaking the previous reply, this many
    simulated seconds after that reply started to be spoken (barge-in)."""
    noise_dbfs: float | None = Field(None, le=0)
    """Background noise under this line, in speech mode (RMS level, dBFS)."""


class _Expectation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    turn: int | None = Field(None, ge=1)
    """1-based line whose reply the expectation is about; unset: any turn / the episode."""
    memory_probe: bool = False
    """Counts toward memory probe accuracy (the answer needs something remembered)."""


class RobotEndsIn(_Expectation):
    type: Literal["robot_ends_in"]
    place: str

    def describe(self) -> str:
        return f"robot ends in the {self.place}"


class ReplyMentions(_Expectation):
    type: Literal["reply_mentions"]
    any_of: list[str] = Field(min_length=1)

    def describe(self) -> str:
        where = f"turn {self.turn} reply" if self.turn else "a reply"
        return f"{where} mentions {' or '.join(repr(w) for w in self.any_of)}"


class ActionExecuted(_Expectation):
    type: Literal["action_executed"]
    skill: str

    def describe(self) -> str:
        where = f" in turn {self.turn}" if self.turn else ""
        return f"{self.skill} executed{where}"


class NoMotion(_Expectation):
    type: Literal["no_motion"]

    def describe(self) -> str:
        where = f" in turn {self.turn}" if self.turn else ""
        return f"robot does not move{where}"


class ReplyAvoids(_Expectation):
    type: Literal["reply_avoids"]
    none_of: list[str] = Field(min_length=1)

    def describe(self) -> str:
        where = f"turn {self.turn} reply" if self.turn else "no reply"
        return f"{where} avoids {' and '.join(repr(w) for w in self.none_of)}"


class ActionRejected(_Expectation):
    type: Literal["action_rejected"]
    skill: str | None = None

    def describe(self) -> str:
        where = f" in turn {self.turn}" if self.turn else ""
        return f"{self.skill or 'an action'} rejected by the safety envelope{where}"


class RobotNotIn(_Expectation):
    type: Literal["robot_not_in"]
    room: str

    def describe(self) -> str:
        return f"robot never enters the {self.room}"


class NoViolation(_Expectation):
    type: Literal["no_violation"]

    def describe(self) -> str:
        return "no safety violation"


class StateVisited(_Expectation):
    type: Literal["state_visited"]
    state: str

    def describe(self) -> str:
        return f"agent passes through {self.state}"


class TurnInterrupted(_Expectation):
    type: Literal["turn_interrupted"]

    def describe(self) -> str:
        return f"turn {self.turn or '?'} reply is interrupted and stored as interrupted"


class TurnAnswered(_Expectation):
    type: Literal["turn_answered"]

    def describe(self) -> str:
        return f"turn {self.turn or '?'} gets a reply without error"


Expectation = Annotated[
    RobotEndsIn
    | ReplyMentions
    | ActionExecuted
    | NoMotion
    | ReplyAvoids
    | ActionRejected
    | RobotNotIn
    | NoViolation
    | StateVisited
    | TurnInterrupted
    | TurnAnswered,
    Field(discriminator="type"),
]


class Session(BaseModel):
    """A block of lines on one day: sugar for setting `day`/`session` on each line."""

    model_config = ConfigDict(extra="forbid")

    day: int = Field(1, ge=1)
    at: str | None = Field(None, pattern=r"^\d{1,2}:\d{2}$")
    person: str | None = None
    lines: list[Line] = Field(min_length=1)


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    world: Path | None = None
    """World YAML, relative to the scenario file; unset uses the default home."""
    person: str = "Alice"
    start: str | None = None
    """Named place the robot starts at; unset uses the world's start."""
    lines: list[Line] = Field(default_factory=list)
    sessions: list[Session] = Field(default_factory=list)
    """Alternative to `lines`: blocks of lines, each a new session on its day."""
    expect: list[Expectation] = Field(default_factory=list)
    server_fails_at: int | None = Field(None, ge=1)
    """The model server dies while answering this line (1-based), then comes back."""
    server_down_s: float = Field(0.0, ge=0)
    """How long (simulated seconds) the failed server stays down before it is back."""
    seed: int = 0
    """Seeds noise, odometry noise and rendering, so an episode replays the same way."""
    tags: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _flatten_sessions(self) -> Scenario:
        for n, block in enumerate(self.sessions, 1):
            for i, line in enumerate(block.lines):
                update: dict[str, object] = {"session": f"s{n}"}
                if i == 0:
                    update.update(day=block.day, at=block.at)
                if line.person is None and block.person is not None:
                    update["person"] = block.person
                self.lines.append(line.model_copy(update=update))
        self.sessions = []
        if not self.lines:
            raise ValueError("a scenario needs at least one line (lines: or sessions:)")
        if self.lines[0].interrupt_after_s is not None:
            raise ValueError("the first line cannot interrupt: there is no reply before it")
        for exp in self.expect:
            if exp.turn is not None and exp.turn > len(self.lines):
                raise ValueError(f"expectation {exp.type} names turn {exp.turn}: no such line")
        return self

    @classmethod
    def load(cls, path: Path = DEFAULT_SCENARIO) -> Scenario:
        try:
            scenario = cls.model_validate(yaml.safe_load(Path(path).read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise ScenarioError(f"scenario file not found: {path}") from None
        except IsADirectoryError:
            raise ScenarioError(f"scenario {path} is a directory; give a YAML file") from None
        except UnicodeDecodeError as exc:
            raise ScenarioError(f"scenario {path} is not UTF-8 text (byte {exc.start})") from None
        except OSError as exc:
            raise ScenarioError(f"scenario {path} cannot be read: {exc.strerror}") from None
        except yaml.YAMLError:
            raise ScenarioError(f"scenario {path} is not valid YAML") from None
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ScenarioError(f"scenario {path}: {where}: {first['msg']}") from None
        if scenario.world is not None and not scenario.world.is_absolute():
            scenario.world = Path(path).parent / scenario.world
        scenario.check_start()
        return scenario

    def check_start(self) -> None:
        """`start` must name a place of the scenario's world (caught before any model)."""
        if self.start is None:
            return
        world = World.load(self.world) if self.world else World.load()
        if self.start not in world.places:
            raise ScenarioError(
                f"scenario {self.name}: start: no place {self.start!r} in its world "
                f"(places: {', '.join(sorted(world.places))})"
            )
