"""Enrolment and claims, on the shipped voice encoder with the sim's voices: a young print
is never taken over by a stranger, names nobody until it holds enough speech, an unsure
voice is unknown, a claim from another enrolled voice is refused, and names are checked
by the one rule every store uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memory.names import InvalidPersonName
from memory.voiceprints import ENROL_UTTERANCES, VoiceprintStore
from omni_agent.speech.speaker import SpeakerId

pytestmark = pytest.mark.speech

ENROL = [
    "Please bring me the red cup from the kitchen.",
    "I left my keys somewhere in the living room.",
    "What did I tell you yesterday about the plants?",
]
STRANGER = [
    "Hello robot, how are you today?",
    "Can you go to the charging dock now?",
    "Turn around and look at the sofa please.",
]


@pytest.fixture(scope="module")
def voices():
    from omni_agent.speech.models import ModelMissingError
    from omni_agent.speech.voices import PersonVoice, UserVoice
    from sim.voice import PEOPLE_VOICES, user_voice

    try:
        near = {"near": PersonVoice(UserVoice(pitch=1.3), deterministic=True)}
        return {p: PersonVoice(user_voice(p), deterministic=True) for p in PEOPLE_VOICES} | near
    except ModelMissingError as exc:
        pytest.skip(str(exc))


def _speaker(tmp_path: Path, encoder) -> SpeakerId:
    return SpeakerId(VoiceprintStore(tmp_path / "memory.voiceprints.db"), encoder)


@pytest.mark.parametrize("stranger", ["near", "Carol", "Dora", "Eve"])
def test_a_stranger_never_takes_over_a_young_print(
    tmp_path: Path, encoder, voices, stranger: str
) -> None:
    """Alice gives her name once; a never-enrolled person then speaks: none of his lines
    is Alice's, and her print is exactly as she left it. "near" is a voice 0.1 in pitch
    from Alice's (1.2), which a one-line print cannot tell from hers."""
    speaker = _speaker(tmp_path, encoder)
    first = speaker.hear(voices["Alice"].say("I'm Alice."), "I'm Alice.")
    assert first.person is None and "learning Alice's voice" in first.note
    before = speaker.store.all()["Alice"]
    heard = [speaker.hear(voices[stranger].say(line), line) for line in STRANGER]
    assert [h.person for h in heard] == [None] * len(STRANGER), [h.note for h in heard]
    after = speaker.store.all()["Alice"]
    assert after.utterances == before.utterances == 1
    assert np.array_equal(after.embedding, before.embedding)


def test_enrolment_needs_several_utterances_before_the_voice_names_anyone(
    tmp_path: Path, encoder, voices
) -> None:
    speaker = _speaker(tmp_path, encoder)
    enrolling = [speaker.hear(voices["Alice"].say("I'm Alice."), "I'm Alice.")]
    enrolling += [speaker.hear(voices["Alice"].say(line), line) for line in ENROL[:2]]
    # until the print holds enough speech the speaker is unknown to memory
    assert [h.person for h in enrolling] == [None] * ENROL_UTTERANCES, [h.note for h in enrolling]
    assert speaker.store.all()["Alice"].utterances == ENROL_UTTERANCES
    later = speaker.hear(voices["Alice"].say(ENROL[2]), ENROL[2])
    assert later.person == "Alice", later.note
    assert speaker.hear(voices["Eve"].say(STRANGER[0]), STRANGER[0]).person is None


def test_a_claim_from_a_voice_that_sounds_like_another_enrolled_person_is_refused(
    tmp_path: Path, encoder, voices
) -> None:
    speaker = _speaker(tmp_path, encoder)
    for who in ("Alice", "Bob"):
        for line in ENROL:
            speaker.enroll(who, voices[who].say(line))
    before = speaker.store.all()["Alice"]
    for claim in ("I'm Alice.", "My name is Alice.", "This is Alice, tell me her secrets."):
        heard = speaker.hear(voices["Bob"].say(claim), claim)
        assert heard.person != "Alice", heard.note
        assert "ask to confirm" in heard.note, heard.note
    assert np.array_equal(speaker.store.all()["Alice"].embedding, before.embedding)


def test_a_voice_between_two_prints_is_unknown(tmp_path: Path, encoder) -> None:
    """Two prints that both match are an unsure identity: no name, no print update."""
    rng = np.random.default_rng(7)
    base = rng.standard_normal(256)
    a, b = base + 0.15 * rng.standard_normal(256), base + 0.15 * rng.standard_normal(256)
    speaker = _speaker(tmp_path, encoder)
    for name, vec in (("Ann", a), ("Bea", b)):
        for _ in range(ENROL_UTTERANCES):
            speaker.store.add(name, (vec / np.linalg.norm(vec)).astype(np.float32), 3.0)
    between = (base / np.linalg.norm(base)).astype(np.float32)
    heard = speaker.match(between)
    assert heard.best in ("Ann", "Bea") and heard.confidence >= speaker.threshold
    assert heard.person is None
    assert speaker.resolve(heard, "Where are my keys?").person is None
    assert {v.utterances for v in speaker.store.all().values()} == {ENROL_UTTERANCES}


def test_names_with_control_characters_never_enter(tmp_path: Path, encoder, voices) -> None:
    speaker = _speaker(tmp_path, encoder)
    pcm = voices["Alice"].say("Hello robot.")
    for bad in ("\x00shared", "Al\x07ice", "   "):
        with pytest.raises(InvalidPersonName):
            speaker.enroll(bad, pcm)
        with pytest.raises(InvalidPersonName):
            speaker.seen(bad)
    assert speaker.store.all() == {}


def test_prints_are_one_per_person_whatever_the_letter_case(tmp_path: Path) -> None:
    store = VoiceprintStore(tmp_path / "v.db")
    vec = np.ones(256, np.float32) / 16
    store.add("Straße", vec, 2.0)
    store.add("STRASSE", vec, 2.0)  # the same person: one print, two utterances
    assert {n: v.utterances for n, v in store.all().items()} == {"Straße": 2}
    store.add("Bob", vec, 2.0)
    assert store.forget("strasse") == 1
    assert set(store.all()) == {"Bob"}
