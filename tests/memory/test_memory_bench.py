"""The memory bench's BM25 baseline plays by the same rules as our builder: the asker's
visibility, the budget, and the exclusions."""

from __future__ import annotations

from memory_testkit import T0, turn

from bench.memory import BM25Turns
from memory import Memory, count_tokens
from memory.context import ContextRequest


def test_bm25_baseline_sees_what_the_asker_may_see_within_budget(mem: Memory) -> None:
    mem.add_turns(
        [
            turn(1, "The walnut cabinet key is in the teapot."),
            turn(2, "The walnut cabinet key is with Bob.", person="bob"),
            turn(3, "Walnut cabinet, everyone: key under the mat.", person="bob", shared=True),
            turn(4, "Walnut cabinet walnut cabinet, the second key."),
        ]
    )
    bm25 = BM25Turns(mem.store)
    ask = ContextRequest("walnut cabinet key", "alice", 40, T0 + 3600, False)
    ctx = bm25.build(ask)
    ids = [i.turn_id for i in ctx.items]
    assert "t2" not in ids and set(ids) <= {"t1", "t3", "t4"}
    assert ctx.tokens == sum(count_tokens(i.text) for i in ctx.items) <= 40
    ask = ContextRequest("walnut cabinet key", "alice", 400, T0 + 3600, False, frozenset({"t1"}))
    assert [i.turn_id for i in bm25.build(ask).items] == ["t3", "t4"]
