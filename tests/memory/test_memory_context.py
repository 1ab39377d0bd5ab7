from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from memory_testkit import BACKENDS, T0, backend_location, turn

from memory import Memory, count_tokens
from memory.context import IMAGE_TOKENS, SHARES, STRATEGIES, BudgetedStrategy
from memory.embeddings import Embedder


@pytest.fixture(scope="module", params=BACKENDS)
def filled(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, embedder: Embedder
) -> Iterator[Memory]:
    path = backend_location(request, request.param, tmp_path_factory.mktemp("ctx"))
    mem = Memory.open(path, embedder=embedder)
    words = [
        "keys",
        "kitchen",
        "garden",
        "mug",
        "passport",
        "sister",
        "lasagne",
        "garage",
        "fuse",
        "drawer",
    ]
    mem.add_turns(
        [
            turn(
                i,
                " ".join(words[(i * 7 + j) % len(words)] for j in range(3 + i % 25)),
                person="alice" if i % 3 else "bob",
                place="kitchen" if i % 2 else None,
                image_caption="a red mug" if i % 11 == 0 else None,
                image_path=f"frames/{i}.jpg" if i % 11 == 0 else None,
            )
            for i in range(120)
        ]
    )
    asyncio.run(mem.consolidate())
    yield mem
    mem.close()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    budget=st.integers(min_value=0, max_value=1500),
    strategy=st.sampled_from(sorted(STRATEGIES)),
    images=st.booleans(),
    query=st.text(min_size=0, max_size=40),
    person=st.sampled_from(["alice", "bob", None]),
)
def test_context_never_exceeds_budget(
    filled: Memory, budget: int, strategy: str, images: bool, query: str, person: str | None
) -> None:
    filled.strategy = STRATEGIES[strategy](filled.store, filled.retriever)
    ctx = filled.build_context(query, person=person, budget_tokens=budget, images=images)
    cost = sum(count_tokens(i.text) + (IMAGE_TOKENS if i.image_path else 0) for i in ctx.items)
    assert cost == ctx.tokens <= budget


def test_hybrid_orders_summary_evidence_recent(filled: Memory) -> None:
    filled.strategy = STRATEGIES["hybrid"](filled.store, filled.retriever)
    ctx = filled.build_context(
        "passport sister", person="alice", budget_tokens=800, now=T0 + 60 * 200
    )
    kinds = [i.kind for i in ctx.items]
    assert kinds[0] == "summary"
    assert kinds == sorted(kinds, key=["summary", "evidence", "recent"].index)
    recent = [i for i in ctx.items if i.kind == "recent"]
    assert recent[-1].turn_id == "t119"  # most recent last
    ids = [i.turn_id for i in ctx.items if i.turn_id]
    assert len(ids) == len(set(ids))
    again = filled.build_context(
        "passport sister", person="alice", budget_tokens=800, now=T0 + 60 * 200
    )
    assert again == ctx  # deterministic


def test_window_is_the_last_turns_that_fit(filled: Memory) -> None:
    filled.strategy = STRATEGIES["window"](filled.store, filled.retriever)
    ctx = filled.build_context("anything", person="alice", budget_tokens=300)
    assert {i.kind for i in ctx.items} == {"recent"}
    assert ctx.items[-1].turn_id == "t119"


def test_unknown_strategy_is_a_one_line_error(tmp_path: Path, embedder: Embedder) -> None:
    with pytest.raises(ValueError, match="unknown memory strategy 'nope': choose one of"):
        Memory.open(tmp_path / "x.db", strategy="nope", embedder=embedder)


async def test_add_turn_async_does_not_block_the_loop(mem: Memory) -> None:
    started, release = threading.Event(), threading.Event()
    real_add = mem.store.add_turns

    def slow_add(*args: object, **kw: object) -> list[int]:
        started.set()
        release.wait(5)  # the write is stuck until the loop proves it is still running
        return real_add(*args, **kw)  # type: ignore[arg-type]

    mem.store.add_turns = slow_add  # type: ignore[method-assign]
    task = asyncio.create_task(mem.add_turn_async(turn(1, "stored off the loop")))
    await asyncio.to_thread(started.wait, 5)
    ticks = 0
    for _ in range(5):
        await asyncio.sleep(0)
        ticks += 1
    assert not task.done() and ticks == 5  # the loop ran while the write was blocked
    release.set()
    await task
    assert mem.store.get_turn("t1") is not None


async def test_consolidation_failure_loses_no_turn(backend_db: str, embedder: Embedder) -> None:
    async def broken(text: str) -> str:
        raise RuntimeError("model down")

    with Memory.open(backend_db, embedder=embedder, summarizer=broken) as mem:
        for i in range(5):
            await mem.add_turn_async(turn(i, f"fact number {i}"))
        assert await mem.consolidate() == 0
        assert mem.store.stats()["turns"] == 5 and mem.store.stats()["summaries"] == 0
        mem.consolidator.summarizer = lambda text: _const(text)
        assert await mem.consolidate() == 1
        assert mem.store.latest_summary("alice") is not None


async def _const(text: str) -> str:
    return "summary of " + str(len(text.split())) + " words"


def test_turns_the_model_already_sees_are_excluded_before_the_budget_is_spent(
    filled: Memory,
) -> None:
    # The conversation window shows the last 6 turns; the budget must go to others.
    filled.strategy = STRATEGIES["hybrid"](filled.store, filled.retriever)
    window = {f"t{i}" for i in range(114, 120)}
    budget = 1000  # its recent share (5%) holds a few of the window's turns
    plain = filled.build_context("passport sister", person="alice", budget_tokens=budget)
    ctx = filled.build_context(
        "passport sister", person="alice", budget_tokens=budget, exclude=window
    )
    ids = {i.turn_id for i in ctx.items}
    assert not ids & window
    assert {i.turn_id for i in plain.items} & window  # they would have been chosen
    # Filtering afterwards would leave the window's share unused; excluding first spends it.
    filtered = sum(count_tokens(i.text) for i in plain.items if i.turn_id not in window)
    assert ctx.tokens > filtered
    assert budget - ctx.tokens < 40  # nearly full: no more than one turn's worth left


def test_a_precomputed_query_vector_gives_the_same_context(filled: Memory) -> None:
    filled.strategy = STRATEGIES["hybrid"](filled.store, filled.retriever)
    args = {"person": "alice", "budget_tokens": 600, "now": T0 + 60 * 200}
    vector = filled.embed_query("where is the passport")
    assert filled.build_context("where is the passport", **args) == filled.build_context(
        "where is the passport", query_vector=vector, **args
    )


def test_compact_evidence_names_each_session_once(mem: Memory) -> None:
    mem.add_turns(
        [turn(i, f"the blue kettle story part {i}", place="kitchen") for i in range(5)]
        + [
            turn(i, f"the blue kettle story part {i}", session="s2", place="garden")
            for i in range(10, 13)
        ]
    )
    shares = dataclasses.replace(SHARES["retrieval"], compact=True)  # evidence only
    mem.strategy = BudgetedStrategy(mem.store, mem.retriever, shares)
    ctx = mem.build_context("blue kettle story", person="alice", budget_tokens=300)
    evidence = [i.text for i in ctx.items if i.kind == "evidence"]
    headed = [t for t in evidence if t.startswith("[")]
    assert len(evidence) == 8
    assert [h.split("] ")[0] for h in headed] == [
        "[Thu 2026-01-01, kitchen",
        "[Thu 2026-01-01, garden",
    ]
    assert all(t.startswith("alice: ") for t in evidence if not t.startswith("["))
