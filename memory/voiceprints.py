"""Voiceprints: one per person, in their own SQLite file beside the memory database.

They are the most personal thing the robot keeps about someone, so they live with the
rest of a person's memory: `omni-agent memory forget --person` deletes them with the
turns, by the same name rule (`memory.names`). Who a voice is (matching, enrolment,
claims) is decided by omni_agent.speech.speaker; this module only stores prints.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from memory.names import person_key, person_name

ENROL_SECONDS = 3.0
ENROL_UTTERANCES = 3
"""A print names its person only once it holds this much speech, over this many
utterances: one short "I'm Alice" is too little to tell Alice from the next voice."""
MAX_PRINT_SECONDS = 60.0
"""A print is the speech-weighted mean of its utterances, this many seconds at most: it
keeps following a voice that changes slowly."""


@dataclass(frozen=True)
class Voiceprint:
    """One person's print and how much speech it was made from."""

    embedding: np.ndarray = field(repr=False)
    seconds: float
    utterances: int

    @property
    def enrolled(self) -> bool:
        """Enough speech to name its person (else provisional: names nobody yet)."""
        return self.seconds >= ENROL_SECONDS and self.utterances >= ENROL_UTTERANCES


class VoiceprintStore:
    """One voiceprint per person, in its own SQLite file (next to the memory database).

    Names are accepted by `person_name` and compared by `person_key`, as in the memory
    stores: "alice" and "Alice" are one print, and forgetting one forgets the other."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False)
        # each heard utterance refines a print: commits must stay cheap (no fsync each)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS voiceprints (person TEXT PRIMARY KEY, "
            "embedding BLOB NOT NULL, utterances INTEGER NOT NULL, seconds REAL NOT NULL, "
            "updated REAL NOT NULL)"
        )
        self._db.commit()

    @staticmethod
    def beside(memory_db: Path) -> Path:
        """Where the voiceprints of the memory at `memory_db` live."""
        return memory_db.with_name(memory_db.stem + ".voiceprints.db")

    def all(self) -> dict[str, Voiceprint]:
        """Each person's print, by the name it was enrolled with."""
        with self._lock:
            rows = self._db.execute(
                "SELECT person, embedding, seconds, utterances FROM voiceprints"
            )
            return {p: Voiceprint(np.frombuffer(e, np.float32), sec, n) for p, e, sec, n in rows}

    def _stored_name(self, person: str) -> str | None:
        key = person_key(person)
        names = [r[0] for r in self._db.execute("SELECT person FROM voiceprints")]
        return next((n for n in names if person_key(n) == key), None)

    def find(self, person: str) -> tuple[str, Voiceprint] | None:
        """The print of `person` (any letter case) and the name it is stored under."""
        prints = self.all()
        key = person_key(person)
        return next(((n, v) for n, v in prints.items() if person_key(n) == key), None)

    def add(self, person: str, embedding: np.ndarray, seconds: float) -> Voiceprint:
        """Fold one utterance of `seconds` of speech into the person's print (a new print
        if they have none). Raises InvalidPersonName for a name no store accepts."""
        name = person_name(person)
        with self._lock:
            stored = self._stored_name(name)
            row = self._db.execute(
                "SELECT embedding, utterances, seconds FROM voiceprints WHERE person = ?",
                (stored,),
            ).fetchone()
            if row is None:
                mean, n, total = embedding, 1, seconds
            else:
                name = stored or name
                old, n, total = np.frombuffer(row[0], np.float32), row[1] + 1, row[2]
                w = min(total, MAX_PRINT_SECONDS)
                mean = old * w + embedding * seconds
                total += seconds
            mean = (mean / np.linalg.norm(mean)).astype(np.float32)
            self._db.execute(
                "INSERT INTO voiceprints VALUES (?, ?, ?, ?, ?) ON CONFLICT(person) DO UPDATE "
                "SET embedding=excluded.embedding, utterances=excluded.utterances, "
                "seconds=excluded.seconds, updated=excluded.updated",
                (name, mean.tobytes(), n, total, time.time()),
            )
            self._db.commit()
            return Voiceprint(mean, total, n)

    def forget(self, person: str) -> int:
        """Delete the person's voiceprint (any letter case); returns how many were deleted."""
        with self._lock:
            key = person_key(person)
            names = [r[0] for r in self._db.execute("SELECT person FROM voiceprints")]
            gone = [(n,) for n in names if person_key(n) == key]
            self._db.executemany("DELETE FROM voiceprints WHERE person = ?", gone)
            self._db.commit()
            return len(gone)

    def close(self) -> None:
        with self._lock:
            self._db.close()
