from __future__ import annotations

from memory_testkit import turn

from memory import Memory


def test_semantic_match_ranks_first_with_parts_and_reason(mem: Memory) -> None:
    mem.add_turns(
        [
            turn(1, "I left my keys on the kitchen table."),
            turn(2, "The weather is lovely today."),
            turn(3, "My favourite band is Queen."),
        ]
    )
    results = mem.search("where did I put my keys?", person="alice", k=3)
    top = results[0]
    assert top.turn_id == "t1"
    assert set(top.parts) == {"semantic", "lexical", "recency", "person", "place"}
    w = mem.retriever.weights
    assert abs(top.score - sum(getattr(w, p) * v for p, v in top.parts.items())) < 1e-4
    assert "keys" in top.reason and "alice's own turn" in top.reason


def test_lexical_match_finds_rare_names_semantics_miss(mem: Memory) -> None:
    mem.add_turns(
        [
            turn(1, "Contact Zbigniew about the invoice."),
            turn(2, "We should pay the bills soon."),
        ]
    )
    results = mem.search("Zbigniew", person="alice")
    assert results[0].turn_id == "t1"
    assert results[0].parts["lexical"] == 1.0


def test_place_named_in_query_boosts_turns_there(mem: Memory) -> None:
    mem.add_turns(
        [
            turn(1, "Please remember the spare fuse is kept here.", place="garage"),
            turn(2, "Please remember the spare fuse is kept here.", place="office"),
        ]
    )
    results = mem.search("what is kept in the garage?", person="alice")
    assert results[0].turn_id == "t1"
    assert results[0].parts["place"] == 1.0 and results[1].parts["place"] == 0.0


def test_place_and_time_filters_are_hard(mem: Memory) -> None:
    mem.add_turns(
        [
            turn(1, "The drill is on the bench.", place="garage"),
            turn(2, "The drill is on the bench.", place="office"),
            turn(30, "The drill is on the bench.", place="garage"),
        ]
    )
    got = mem.search("drill", person="alice", place="garage", until=turn(10, "").time)
    assert [r.turn_id for r in got] == ["t1"]


def test_ties_break_deterministically(mem: Memory) -> None:
    mem.add_turns([turn(i, "same words here") for i in range(5)])
    a = [r.turn_id for r in mem.search("same words", person="alice")]
    b = [r.turn_id for r in mem.search("same words", person="alice")]
    assert a == b
