"""Retrieval options for real conversations (docs/memory.md, real corpus): questions about
the robot's own words, questions that name several things, and the embedder's batch path
that a bulk import relies on."""

from __future__ import annotations

import numpy as np
from memory_testkit import turn

from memory import Memory
from memory.embeddings import Embedder, bulk_embedder
from memory.retrieval import clauses


def _options(mem: Memory, **update: object) -> None:
    mem.retriever.weights = mem.retriever.weights.model_copy(update=update)


def test_a_question_about_what_the_robot_said_finds_the_robots_reply(mem: Memory) -> None:
    mem.add_turns(
        [
            turn(1, "I'm setting up a little cocktail bar at home, mostly for gin drinks."),
            turn(
                2,
                "For the widest range of gin cocktails buy five bottles: a London dry gin, "
                "sweet vermouth, dry vermouth, Campari and an orange liqueur.",
                speaker="robot",
            ),
            turn(3, "I bought five bottles for my gin cocktails last week, and a shaker."),
        ]
    )
    question = "You recommended five bottles for gin cocktails. What was the fifth bottle?"
    _options(mem, robot_words=True)
    top = mem.search(question, person="alice", k=3)
    assert top[0].turn_id == "t2" and top[0].parts["speaker"] == 1.0
    # A question about the person's own life still favours the person's words.
    own = mem.search("Which bottles did I buy for my bar?", person="alice", k=3)
    assert own[0].turn_id == "t3" and own[0].parts["speaker"] == 1.0
    _options(mem, robot_words=False)
    assert mem.search(question, person="alice", k=3)[0].turn_id != "t2"


def test_a_question_naming_two_things_is_split_into_its_clauses() -> None:
    assert clauses("Which event happened first, the meeting with Rachel or the pride parade?") == [
        "Which event happened first, the meeting with Rachel",
        "the pride parade",
    ]
    assert clauses("I'd like a cocktail for a party, but which one? Any suggestions?") == []
    assert clauses("How many weddings have I attended this year?") == []
    assert clauses("Did I meet Rachel and Tom?") == []  # one content word a side: one thing


def test_each_clause_of_a_question_scores_the_turn_it_is_about(mem: Memory) -> None:
    mem.add_turns(
        [
            turn(1, "I finally repainted the garden fence a dark green."),
            turn(2, "Should I paint the bedroom or the hall first?"),
            turn(3, "We brought a tiny ginger kitten home from the shelter."),
        ]
    )
    question = "Which did I do first, paint the fence or adopt the cat?"
    kitten = mem.embedder.embed_one("We brought a tiny ginger kitten home from the shelter.")
    alike = [float(kitten @ mem.embedder.embed_one(q)) for q in [question, *clauses(question)]]
    _options(mem, subqueries=1.0)
    with_clauses = {r.turn_id: r for r in mem.search(question, person="alice", k=3)}
    # The turn about the second thing scores by the clause that names it, not by the
    # whole question (which is mostly about the fence).
    assert abs(with_clauses["t3"].parts["semantic"] - max(alike)) < 1e-4
    assert max(alike) > alike[0] + 0.02
    _options(mem, subqueries=0.0)
    alone = {r.turn_id: r for r in mem.search(question, person="alice", k=3)}
    assert abs(alone["t3"].parts["semantic"] - alike[0]) < 1e-4


def test_a_batch_embeds_each_text_as_it_would_alone(embedder: Embedder) -> None:
    long_reply = " ".join(["The recipe needs flour, butter, sugar and two eggs."] * 60)
    texts = ["I left my keys on the kitchen table.", long_reply, "", "Queen is my favourite band."]
    batch = embedder.embed(texts)
    alone = np.stack([embedder.embed_one(t) for t in texts])
    assert np.allclose(batch, alone, atol=1e-5)
    # The import's embedder (every core) gives the same vectors as the live one.
    assert np.allclose(bulk_embedder().embed(texts), batch, atol=1e-4)
