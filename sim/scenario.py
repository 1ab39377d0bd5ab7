"""Scenarios: a world, scripted user lines, and expectations checked after the episode."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from omni_agent.errors import UserError

SCENARIOS_DIR = Path(__file__).parent / "scenarios"
DEFAULT_SCENARIO = SCENARIOS_DIR / "default.yaml"


class ScenarioError(UserError):
    pass


class Line(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1)
    person: str | None = None
    """Who speaks; defaults to the scenario's person."""


class _Expectation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    turn: int | None = Field(None, ge=1)
    """1-based turn the expectation is about; unset means any turn / the whole episode."""


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


Expectation = Annotated[
    RobotEndsIn | ReplyMentions | ActionExecuted | NoMotion, Field(discriminator="type")
]


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    world: Path | None = None
    """World YAML, relative to the scenario file; unset uses the default home."""
    person: str = "Alice"
    start: str | None = None
    """Named place the robot starts at; unset uses the world's start."""
    lines: list[Line] = Field(min_length=1)
    expect: list[Expectation] = Field(default_factory=list)

    @classmethod
    def load(cls, path: Path = DEFAULT_SCENARIO) -> Scenario:
        try:
            scenario = cls.model_validate(yaml.safe_load(Path(path).read_text()))
        except FileNotFoundError:
            raise ScenarioError(f"scenario file not found: {path}") from None
        except yaml.YAMLError:
            raise ScenarioError(f"scenario {path} is not valid YAML") from None
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ScenarioError(f"scenario {path}: {where}: {first['msg']}") from None
        if scenario.world is not None and not scenario.world.is_absolute():
            scenario.world = Path(path).parent / scenario.world
        return scenario
