"""Robot skills: typed actions the model may propose.

Each skill is a pydantic model; the registry turns them into the tool definitions or the
JSON schema a backend is given, and parses what comes back. Parsing is the first gate,
the safety envelope (safety.py) is the second: nothing reaches a robot without both.
"""

from __future__ import annotations

import functools
import json
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from omni_agent.messages import Pose2D


class ActionRejected(Exception):
    """An action that failed validation or the safety envelope; the robot did not move."""

    def __init__(self, skill: str, reason: str) -> None:
        super().__init__(f"{skill}: {reason}")
        self.skill = skill
        self.reason = reason


class Skill(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class Say(Skill):
    """Say something out loud (the reply text is spoken anyway; use for extra lines)."""

    skill: Literal["say"] = "say"
    text: str = Field(min_length=1, max_length=500)


class Move(Skill):
    """Drive with a constant velocity for a duration, then stop."""

    skill: Literal["move"] = "move"
    linear: float = Field(description="forward speed, m/s (negative: backwards)")
    angular: float = Field(0.0, description="turn rate, rad/s (positive: left)")
    duration: float = Field(gt=0, description="seconds")


class NavigateTo(Skill):
    """Go to a named place, or to a map pose."""

    skill: Literal["navigate_to"] = "navigate_to"
    place: str | None = Field(None, description="a known place name")
    x: float | None = None
    y: float | None = None
    yaw: float | None = None

    @model_validator(mode="after")
    def _one_target(self) -> NavigateTo:
        has_xy = self.x is not None and self.y is not None
        if (self.place is None) == (not has_xy):
            raise ValueError("give either place or both x and y")
        return self


class Turn(Skill):
    """Turn in place by an angle."""

    skill: Literal["turn"] = "turn"
    degrees: float = Field(ge=-360, le=360, description="positive: left")


class LookAt(Skill):
    """Turn to face a named object, person or place."""

    skill: Literal["look_at"] = "look_at"
    target: str = Field(min_length=1)


class Stop(Skill):
    """Stop moving now."""

    skill: Literal["stop"] = "stop"


Action = Annotated[Say | Move | NavigateTo | Turn | LookAt | Stop, Field(discriminator="skill")]
SKILL_TYPES: dict[str, type[Skill]] = {
    "say": Say,
    "move": Move,
    "navigate_to": NavigateTo,
    "turn": Turn,
    "look_at": LookAt,
    "stop": Stop,
}
_ACTION = TypeAdapter(Action)


def parse_action(raw: Any) -> Action:
    """Validate one proposed action (a dict, or a JSON string) into a typed skill."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ActionRejected("?", f"arguments are not valid JSON ({exc.msg})") from None
    if not isinstance(raw, dict):
        raise ActionRejected("?", f"an action must be an object, got {type(raw).__name__}")
    skill = str(raw.get("skill", "?"))
    if skill not in SKILL_TYPES:
        raise ActionRejected(skill, f"unknown skill (known: {', '.join(SKILL_TYPES)})")
    try:
        return _ACTION.validate_python(raw)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"][1:]) or "arguments"
        raise ActionRejected(skill, f"{field}: {first['msg']}") from None


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """A skill's JSON schema without titles/descriptions noise, for grammars and tools."""
    props = {
        name: {k: v for k, v in spec.items() if k not in ("title", "default")}
        for name, spec in schema.get("properties", {}).items()
    }
    return {
        "type": "object",
        "properties": props,
        "required": [*schema.get("required", [])],
        "additionalProperties": False,
    }


def skill_schema(skill: type[Skill]) -> dict[str, Any]:
    schema = _inline(skill.model_json_schema())
    schema["properties"]["skill"] = {"const": skill.model_fields["skill"].default}
    if "skill" not in schema["required"]:
        schema["required"].insert(0, "skill")
    return schema


@functools.cache
def _tool_definitions(allowed: tuple[str, ...]) -> str:
    return json.dumps(_build_tools(allowed))


def tool_definitions(allowed: list[str]) -> list[dict[str, Any]]:
    """OpenAI `tools` entries, one per allowed skill (except say: the reply is spoken)."""
    return json.loads(_tool_definitions(tuple(allowed)))  # a fresh copy per request


def _build_tools(allowed: tuple[str, ...]) -> list[dict[str, Any]]:
    tools = []
    for name in allowed:
        if name == "say":
            continue
        skill = SKILL_TYPES[name]
        params = skill_schema(skill)
        del params["properties"]["skill"]
        params["required"] = [r for r in params["required"] if r != "skill"]
        tools.append(
            {
                "type": "function",
                "function": {
                    "name": name,
                    "description": (skill.__doc__ or name).strip(),
                    "parameters": params,
                },
            }
        )
    return tools


def reply_schema(allowed: list[str]) -> dict[str, Any]:
    """JSON schema for backends that answer in JSON: what to say first, then actions.

    `say` comes first so the spoken part streams out before the actions are generated.
    """
    return json.loads(_reply_schema(tuple(allowed)))


@functools.cache
def _reply_schema(allowed: tuple[str, ...]) -> str:
    variants = [skill_schema(SKILL_TYPES[name]) for name in allowed if name != "say"]
    return json.dumps(
        {
            "type": "object",
            "properties": {
                "say": {"type": "string"},
                "actions": {"type": "array", "items": {"anyOf": variants}, "maxItems": 3},
            },
            "required": ["say", "actions"],
            "additionalProperties": False,
        }
    )


class ActionResult(BaseModel):
    action: dict[str, Any]
    ok: bool
    detail: str = ""


class Robot(Protocol):
    """What the agent drives: the simulator, or ROS 2 action execution on a robot."""

    @property
    def pose(self) -> Pose2D: ...

    async def execute(self, action: Action) -> ActionResult:
        """Run one approved skill. A robot whose pose may have changed since the agent's
        check (localization arriving, ROS) may raise ActionRejected before it moves."""
        ...

    async def halt(self) -> None:
        """Zero velocity and cancel goals now (e-stop, server failure)."""
        ...
