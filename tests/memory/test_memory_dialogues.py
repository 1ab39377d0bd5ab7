"""The benchmark generator: probes have the evidence the bench says they have."""

from __future__ import annotations

import re

from memory.dialogues import generate


def test_probes_expect_the_newest_statement_and_images_hide_the_object() -> None:
    d = generate(n_turns=1200)
    by_id = {t.id: (i, t) for i, t in enumerate(d.turns)}
    assert {p.kind for p in d.probes} == {"text", "image", "person", "place"}
    assert max(p.distance for p in d.probes) >= 500
    assert any(p.updated for p in d.probes) and any(not p.updated for p in d.probes)
    for p in d.probes:
        index, ev = by_id[p.evidence_id]
        assert ev.person == p.person and ev.speaker == "user"
        assert p.ask_index - index == p.distance >= 1
        if p.kind == "image":
            obj = p.question.split(" the ")[1].split(" ")[0]
            assert ev.image_caption and obj in ev.image_caption
            assert obj not in re.findall(r"\w+", ev.text.lower())  # only the caption names it
    # Same question, asked again after an update, expects the newer statement.
    firsts: dict[tuple[str, str], str] = {}
    changed = 0
    for p in d.probes:
        key = (p.person, p.question)
        changed += key in firsts and firsts[key] != p.evidence_id
        firsts.setdefault(key, p.evidence_id)
    assert changed > 0


def test_generator_is_deterministic() -> None:
    assert generate(n_turns=300) == generate(n_turns=300)
