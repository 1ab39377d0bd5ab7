"""Retrieval behaves the same on both backends: every test here runs on SQLite and on
PostgreSQL."""

from __future__ import annotations

from memory_testkit import turn

from memory import Memory
from memory.retrieval import PARTS


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
    assert set(top.parts) == set(PARTS)
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


def test_common_terms_are_dropped_and_rare_ones_still_match(mem: Memory) -> None:
    filler = [turn(i, f"the robot said hello number {i}") for i in range(1, 40)]
    mem.add_turns([*filler, turn(50, "hello, the Zbigniew invoice is on the desk")])
    hits = mem.store.lexical("hello Zbigniew", postings=1500, max_df=0.2)
    assert hits.dropped == ("hello",) and hits.terms == ("zbigniew",)
    top = mem.search("hello Zbigniew", person="alice", k=3)[0]
    assert top.turn_id == "t50" and top.parts["lexical"] == 1.0


def test_lexical_channel_reads_a_bounded_number_of_postings(mem: Memory) -> None:
    mem.add_turns([turn(i, f"kettle number {i}") for i in range(1, 60)])
    hits = mem.store.lexical("kettle", postings=10, max_df=1.0)
    assert len(hits.rowids) == 10
    assert sorted(hits.rowids.tolist())[0] == 50  # the most recent matches are kept


def test_lexical_candidates_of_other_people_are_never_scored(mem: Memory) -> None:
    # Bob's turns out-match Alice's lexically; none may reach her results.
    mem.add_turns(
        [turn(i, "Quetzalcoatl statue in the attic", person="bob") for i in range(1, 30)]
        + [turn(40, "a small statue", person="alice")]
    )
    got = mem.search("Quetzalcoatl statue attic", person="alice", k=10)
    assert [r.turn_id for r in got] == ["t40"]
    assert mem.search("Quetzalcoatl", person=None, k=10) == []


def test_a_name_in_a_good_result_leads_to_the_turn_the_question_needs(mem: Memory) -> None:
    # "my cousin" finds the introduction; the move is only reachable through the name.
    filler = [turn(i, f"The weather was grey again, day {i} of drizzle.") for i in range(2, 40)]
    mem.add_turns(
        [
            turn(1, "My cousin Zofia came round for dinner, she is hilarious."),
            *filler,
            turn(50, "Zofia moved to Porto last week, the flat has a balcony.", session="s2"),
        ]
    )
    plain = mem.retriever.search("Where is my cousin living now?", person="alice", k=3)
    hopped = mem.retriever.search("Where is my cousin living now?", person="alice", k=3, hops=True)
    assert "t50" in [r.turn_id for r in hopped]
    linked = next(r for r in hopped if r.turn_id == "t50")
    assert linked.parts["link"] > 0 and "linked by a name" in linked.reason
    assert "t50" not in [r.turn_id for r in plain] or plain[0].turn_id == "t1"


def test_hops_never_reach_another_persons_private_turns(mem: Memory) -> None:
    mem.add_turns(
        [
            turn(1, "My cousin Zofia came round for dinner."),
            turn(2, "Zofia moved to Porto last week.", person="bob"),
        ]
    )
    got = mem.retriever.search("Where is my cousin now?", person="alice", k=10, hops=True)
    assert [r.turn_id for r in got] == ["t1"]


def test_what_came_after_is_found_in_the_next_session(mem: Memory) -> None:
    day = 86400 / 60  # turn() spaces turns by a minute
    mem.add_turns(
        [
            turn(1, "Just got back from Lisbon, the food was unforgettable.", session="a"),
            turn(2, "Lovely weather today.", session="a"),
            turn(int(3 * day), "On Saturday I repainted the garden fence.", session="b"),
            turn(int(9 * day), "I bought new shoes.", session="c"),
        ]
    )
    q = "What did I do the weekend after the Lisbon trip?"
    got = [r.turn_id for r in mem.retriever.search(q, person="alice", k=2, sequels=True)]
    assert set(got) == {"t1", f"t{int(3 * day)}"}  # the trip and what came after it


def test_a_named_persons_turns_rank_for_a_third_person_question(mem: Memory) -> None:
    mem.add_turns(
        [
            turn(1, "I started learning the cello this spring.", person="bob", shared=True),
            turn(2, "I started learning the trumpet this spring.", person="chen", shared=True),
        ]
    )
    got = mem.search("What instrument is Bob learning?", person="alice", k=2)
    assert got[0].turn_id == "t1" and got[0].parts["named"] == 1.0


def test_a_persons_words_outrank_the_robots_generic_reply(mem: Memory) -> None:
    mem.add_turns(
        [
            turn(1, "My favourite band is Queen."),
            turn(
                2,
                "What a lovely favourite, tell me more about the music you enjoy.",
                speaker="robot",
            ),
        ]
    )
    got = mem.search("Which group do I like best?", person="alice", k=2)
    assert got[0].turn_id == "t1" and got[0].parts["speaker"] == 1.0


def test_a_restated_fact_ranks_its_newest_version_first(mem: Memory) -> None:
    mem.add_turns(
        [
            turn(1, "The garage called: the clutch needs replacing, the car is off the road."),
            turn(2, "I made a big pot of soup yesterday."),
            turn(3, "The traffic this morning was unbelievable."),
            turn(40, "The garage called: the alternator needs replacing, the car is off the road."),
        ]
    )
    question = "What is wrong with my vehicle?"
    assert [r.turn_id for r in mem.search(question, person="alice", k=2)] == ["t40", "t3"]
    # The older wording scores higher on its own; only its newer version pushes it down.
    mem.retriever.weights = mem.retriever.weights.model_copy(update={"redundancy": 0.0})
    assert mem.search(question, person="alice", k=1)[0].turn_id == "t1"


def test_a_line_said_again_and_again_leaves_room_for_other_evidence(mem: Memory) -> None:
    beach = "My friend sent me photos from her holiday, the beaches looked amazing."
    mem.add_turns(
        [
            turn(1, beach),
            turn(2, beach + " Work has been hectic."),
            turn(3, beach + " I made soup."),
            turn(4, beach),
            turn(5, "Anything above twenty-five degrees and I'm hiding indoors."),
            turn(6, beach + " The traffic was awful."),
        ]
    )
    question = "Is a beach holiday in August a good idea for me?"
    top = mem.search(question, person="alice", k=6)
    ids = [r.turn_id for r in top]
    assert ids[0] == "t6"  # the newest repeat first
    # The hint goes ahead of a repeat that outscores it.
    assert (
        ids.index("t5") < ids.index("t3")
        and top[ids.index("t3")].score > top[ids.index("t5")].score
    )
    mem.retriever.weights = mem.retriever.weights.model_copy(update={"redundancy": 0.0})
    assert mem.search(question, person="alice", k=6)[-1].turn_id == "t5"


def test_the_robots_echo_does_not_push_the_persons_own_words_down(mem: Memory) -> None:
    mem.add_turns(
        [
            turn(1, "I parked the car on level three, next to the lifts."),
            turn(
                2, "Noted: you parked the car on level three, next to the lifts.", speaker="robot"
            ),
            turn(3, "The traffic this morning was unbelievable."),
        ]
    )
    assert mem.search("Where did I park the car?", person="alice", k=1)[0].turn_id == "t1"
