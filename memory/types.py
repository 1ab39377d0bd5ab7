"""Boundary models of the memory package: what callers hand in and get back."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Speaker = Literal["user", "robot"]


class Pose(BaseModel):
    """Robot pose in the map frame when the turn happened (metres, radians)."""

    x: float
    y: float
    yaw: float = 0.0


class MemoryTurn(BaseModel):
    """One spoken turn as memory keeps it.

    `person` owns the turn: unless `shared` is set, only that person is ever offered it.
    A turn with no person (robot narration, unknown speaker) is visible to everyone.
    """

    id: str = Field(min_length=1)
    session: str | None = None
    speaker: Speaker
    person: str | None = None
    time: float
    place: str | None = None
    text: str
    transcript: str | None = None
    image_caption: str | None = None
    image_path: str | None = None
    audio_path: str | None = None
    pose: Pose | None = None
    interrupted: bool = False
    shared: bool = False


class SearchResult(BaseModel):
    """A retrieved turn with the parts of its score and why it was chosen."""

    turn_id: str
    score: float
    parts: dict[str, float]
    reason: str
    turn: MemoryTurn


class ContextItem(BaseModel):
    kind: Literal["recent", "evidence", "summary"]
    turn_id: str | None
    text: str
    image_path: str | None = None
    score: float | None = None
    reason: str


class Context(BaseModel):
    items: list[ContextItem]
    tokens: int
    budget: int

    def render(self) -> str:
        """The context as plain text, one item per line, in order."""
        return "\n".join(item.text for item in self.items)
