"""Background consolidation: rolling summaries and facts, never on the critical path.

Turns are committed before consolidation ever reads them, and a summary only advances
its watermark when it is written, so a failing summarizer (model down, timeout) loses
nothing: the same turns are summarised on the next run.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from typing import Protocol

from memory.context import render_turn
from memory.protocol import MemoryStore
from memory.sql_store import STOPWORDS, StoredTurn, key_of

log = logging.getLogger(__name__)


class Summarizer(Protocol):
    """Text in, summary out. The agent backs this with its model."""

    async def __call__(self, text: str) -> str: ...


class ExtractiveSummarizer:
    """Deterministic fallback: keeps the sentences richest in frequent content words."""

    def __init__(self, max_words: int = 120) -> None:
        self.max_words = max_words

    async def __call__(self, text: str) -> str:
        return self.summarize(text)

    def summarize(self, text: str) -> str:
        sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip()]
        words_of = [
            [w for w in re.findall(r"\w+", s.lower()) if w not in STOPWORDS and len(w) > 2]
            for s in sentences
        ]
        freq = Counter(w for ws in words_of for w in set(ws))
        ranked = sorted(
            range(len(sentences)),
            key=lambda i: (-sum(freq[w] for w in set(words_of[i])) / (1 + len(words_of[i])), i),
        )
        chosen: list[int] = []
        used = 0
        for i in ranked:
            n = len(sentences[i].split())
            if used + n > self.max_words:
                continue
            chosen.append(i)
            used += n
        return " ".join(sentences[i] for i in sorted(chosen))


_FACT = re.compile(r"\b(?:my|our) ((?:\w+ ){0,2}\w+) (?:is|are) ([^.,;!?]{2,60})", re.IGNORECASE)


def extract_facts(text: str) -> list[str]:
    """Cheap first-person facts ("my sister's name is Ana"); the model can do better."""
    return [f"{m.group(1)}: {m.group(2).strip()}" for m in _FACT.finditer(text)]


class Consolidator:
    def __init__(self, store: MemoryStore, summarizer: Summarizer, chunk_turns: int = 40) -> None:
        self.store = store
        self.summarizer = summarizer
        self.chunk_turns = chunk_turns

    def pending(self, owner: str | None) -> list[StoredTurn]:
        return self.store.turns_after(owner, self.store.summary_watermark(owner), self.chunk_turns)

    async def run_once(self, min_turns: int = 1) -> int:
        """Fold new turns of every owner into their rolling summary; returns summaries written.

        Each owner (a person, or None for unowned turns) gets its own summary so that a
        summary never carries one person's words to another.
        """
        written = 0
        for owner in sorted(self.store.people(), key=lambda p: (p is not None, p or "")):
            turns = self.pending(owner)
            if len(turns) < min_turns:
                continue
            previous = self.store.latest_summary(owner)
            prior = previous.text if previous and key_of(previous.person) == key_of(owner) else ""
            text = "\n".join([prior, *(render_turn(st.turn) for st in turns)]).strip()
            try:
                summary = (await self.summarizer(text)).strip()
            except Exception:  # a model failure must not stop the agent; turns stay stored
                log.warning("consolidation of %s failed; will retry", owner, exc_info=True)
                continue
            if not summary:
                continue
            self.store.add_summary(owner, False, summary, turns[-1].rowid, turns[-1].turn.time)
            for st in turns:
                if st.turn.speaker == "user":
                    for fact in extract_facts(st.turn.text):
                        self.store.add_fact(owner, fact, st.turn.id, st.turn.time)
            written += 1
        return written
