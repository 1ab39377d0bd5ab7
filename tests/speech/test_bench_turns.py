"""The turn benchmark's scoring: a policy that ends a turn in a pause inside it is a cut-off,
one that waits is scored by its delay after the true end, and the curve keeps only the
points no other point beats."""

from __future__ import annotations

from bench.turns import Clip, Pause, Policy, frontier, score

# one turn: "I want to go to the ... kitchen, please." ending at 3.0 s, a 0.8 s pause at 1.5 s
TURN = Clip("hesitation", "I want to go to the, um, kitchen, please.", "Alice", 1.0, None, b"",
            [(1.5, 2.3)], 3.0)  # fmt: skip
INSIDE = Pause(1.5, 800, {200: 0.9, 400: 0.2, 600: 0.1}, "I want to go to the...", 350.0)
FINAL = Pause(3.0, 2200, {200: 0.97, 400: 0.99}, "I want to go to the kitchen, please.", 300.0)
PROBED = [(TURN, [INSIDE, FINAL])]


def test_a_silence_shorter_than_the_pause_cuts_the_turn() -> None:
    assert score(Policy("silence", silence_ms=300), PROBED)["cutoff_rate"] == 1.0
    waited = score(Policy("silence", silence_ms=900), PROBED)
    assert waited["cutoff_rate"] == 0.0 and waited["delay_ms"]["median"] == 900


def test_the_model_cuts_where_it_is_fooled_and_the_words_hold_the_turn() -> None:
    # P(done) 0.9 at 200 ms inside the pause: the model alone answers half a sentence
    assert score(Policy("model", threshold=0.5), PROBED)["cutoff_rate"] == 1.0
    # the words are back at 350 ms and end on "the...": the turn is held, then ends at
    # the first check after the words of the final pause are back (400 ms)
    held = score(Policy("model+text", threshold=0.5), PROBED)
    assert held["cutoff_rate"] == 0.0 and held["delay_ms"]["median"] == 400


def test_the_hard_cap_ends_a_turn_the_model_never_calls_done() -> None:
    unsure = Pause(3.0, 2200, {t: 0.1 for t in range(200, 1600, 200)}, "kitchen please", 300.0)
    capped = score(Policy("model", threshold=0.5, cap_ms=1200), [(TURN, [unsure])])
    assert capped["delay_ms"]["median"] == 1200


def test_the_curve_drops_points_another_point_beats() -> None:
    def point(cut: float, delay: float) -> dict:
        return {"policy": f"{cut}/{delay}", "cutoff_rate": cut, "delay_ms": {"median": delay}}

    curve = frontier([point(0.5, 300), point(0.6, 400), point(0.2, 600), point(0.3, 700)])
    assert [p["policy"] for p in curve] == ["0.5/300", "0.2/600"]


def test_a_sure_model_ends_before_the_words_and_a_lower_bar_cuts() -> None:
    # the final pause's P(done) 0.97 at 200 ms, before its words (300 ms): ended there
    sure = score(Policy("model+text", threshold=0.5, alone=0.95), PROBED)
    assert sure["cutoff_rate"] == 0.0 and sure["delay_ms"]["median"] == 200
    # a bar the fooled model clears (0.9 at 200 ms inside the pause) cuts the turn
    assert score(Policy("model+text", threshold=0.5, alone=0.85), PROBED)["cutoff_rate"] == 1.0


def test_an_open_list_holds_the_turn_where_finished_words_would_not() -> None:
    listing = Pause(1.5, 800, {200: 0.1, 400: 0.99, 600: 0.99}, "I need milk, eggs,", 300.0)
    probed = [(TURN, [listing, FINAL])]
    assert score(Policy("model+text", threshold=0.5), probed)["cutoff_rate"] == 0.0
    assert score(Policy("model+text", threshold=0.5, lists=False), probed)["cutoff_rate"] == 1.0


def test_a_check_that_leaned_done_ends_the_turn_when_its_words_arrive() -> None:
    # the final pause: 0.97 at 200 ms, words back (finished) at 300 ms: the listener that
    # judges early ends the turn at 300 ms instead of the next check (400 ms)
    early = score(Policy("model+text", threshold=0.5, early=True), PROBED)
    assert early["cutoff_rate"] == 0.0 and early["delay_ms"]["median"] == 300
    # inside the pause the model leaned done (0.9 at 200 ms), but the words ("the...")
    # are unfinished: ending on the words never cuts a sentence the words hold open
    late_words = Pause(3.0, 2200, {200: 0.2, 400: 0.99}, "I want to go to the kitchen.", 300.0)
    unsure = score(Policy("model+text", threshold=0.5, early=True), [(TURN, [INSIDE, late_words])])
    assert unsure["delay_ms"]["median"] == 400  # the check before the words leaned "not done"
