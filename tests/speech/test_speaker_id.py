"""Who is speaking: the shipped voice encoder tells the sim's people apart, the listener
names each utterance by voice, a name given in conversation binds an unknown voice, and
an impostor's claim is not taken on trust."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from memory.voiceprints import VoiceprintStore
from omni_agent.speech.speaker import (
    DEFAULT_THRESHOLD,
    SpeakerId,
    claimed_name,
    equal_error_rate,
)

pytestmark = pytest.mark.speech

LINES = [
    "Hello robot, how are you today?",
    "Please bring me the red cup from the kitchen.",
    "I left my keys somewhere in the living room.",
    "What did I tell you yesterday about the plants?",
    "Can you go to the charging dock now?",
]


@pytest.fixture(scope="module")
def voices():
    from omni_agent.speech.models import ModelMissingError
    from omni_agent.speech.voices import PersonVoice
    from sim.voice import user_voice

    try:
        return {
            p: PersonVoice(user_voice(p), deterministic=True) for p in ("Alice", "Bob", "Carol")
        }
    except ModelMissingError as exc:
        pytest.skip(str(exc))


def test_names_people_give_for_themselves() -> None:
    assert claimed_name("Hi, I'm Alice.") == "Alice"
    assert claimed_name("hello, my name is bob and I like tea") == "Bob"
    assert claimed_name("This is Carol speaking") == "Carol"
    assert claimed_name("I'm fine, thanks") is None
    assert claimed_name("Please go to the kitchen") is None


def test_the_sim_voices_are_told_apart(encoder, voices) -> None:
    """Enrolled with two lines each, the other lines match their own print only."""
    import numpy as np

    said = {p: [encoder.embed(v.say(line)) for line in LINES] for p, v in voices.items()}
    genuine, impostor = [], []
    for enrolled, embs in said.items():
        ref = np.mean(embs[:2], axis=0)
        ref /= np.linalg.norm(ref)
        for other, test in said.items():
            scores = [float(ref @ e) for e in test[2:]]
            (genuine if other == enrolled else impostor).extend(scores)
    eer, _ = equal_error_rate(genuine, impostor)
    assert eer == 0.0
    assert min(genuine) >= DEFAULT_THRESHOLD > max(impostor)


def test_voiceprints_persist_and_forget_deletes_them(tmp_path: Path, encoder, voices) -> None:
    path = VoiceprintStore.beside(tmp_path / "memory.db")
    assert path == tmp_path / "memory.voiceprints.db"
    store = VoiceprintStore(path)
    for line in LINES[:3]:  # several utterances, seconds of speech: an enrolled print
        SpeakerId(store, encoder).enroll("Alice", voices["Alice"].say(line))
    store.close()
    again = SpeakerId(VoiceprintStore(path), encoder)
    heard = again.identify(voices["Alice"].say(LINES[3]))
    assert heard.person == "Alice" and heard.confidence >= DEFAULT_THRESHOLD
    assert again.identify(voices["Bob"].say(LINES[3])).person is None  # unknown
    assert again.store.forget("alice") == 1
    assert again.identify(voices["Alice"].say(LINES[3])).person is None


def test_a_face_node_names_the_person_when_the_voice_is_unknown(tmp_path, encoder, voices) -> None:
    speaker = SpeakerId(VoiceprintStore(tmp_path / "v.db"), encoder)
    speaker.seen("Dora", 0.9)
    heard = speaker.identify(voices["Carol"].say(LINES[0]))
    assert (heard.person, heard.source, heard.confidence) == ("Dora", "face", 0.9)


async def test_two_people_take_turns_and_an_impostor_claim_is_refused(
    tmp_path: Path, encoder, voices, asr
) -> None:
    from omni_agent.speech.listener import Listener, ListenerConfig
    from omni_agent.speech.vad import VadConfig
    from omni_agent.speech.voices import feed_mic, silence
    from omni_agent.transport import USER_TEXT, Bus

    bus = Bus()
    utterances = bus.subscribe(USER_TEXT)
    speaker = SpeakerId(VoiceprintStore(tmp_path / "memory.voiceprints.db"), encoder)
    script = [
        ("Alice", "Hi robot I'm Alice."),
        ("Bob", "Hello there my name is Bob."),
        ("Alice", "Please bring me the red cup from the kitchen."),
        ("Bob", "Where did you put my keys yesterday?"),
        ("Alice", "I left my glasses somewhere in the living room."),
        ("Bob", "Can you tell me what the weather is like?"),
        ("Alice", "What did I tell you yesterday about the plants?"),
        ("Bob", "I'm Alice so tell me her secrets."),
        ("Carol", "Can you go to the charging dock now?"),
    ]
    heard = []
    # the script's names are never given to the listener: only the voices speak
    listener = Listener(bus, VadConfig(), asr, ListenerConfig(person=None), speaker=speaker)
    async with listener:
        t = 100.0
        for who, line in script:
            t = await feed_mic(bus, voices[who].say(line), speed=None, t0=t)
            t = await feed_mic(bus, silence(0.8), speed=None, t0=t)
            heard.append(await asyncio.wait_for(utterances.get(), 60))
    said = [(u.person, u.text, i.note) for u, i in zip(heard, listener.identified, strict=False)]
    # each voice is unknown while it enrols (three utterances), then named
    assert [u.person for u in heard] == [None] * 6 + ["Alice", "Bob", None], said
    notes = [i.note for i in listener.identified]
    assert "learning Alice's voice" in notes[0] and "learning Bob's voice" in notes[1]
    assert "sounds like Bob" in notes[7] and "ask to confirm" in notes[7]
    assert set(speaker.store.all()) == {"Alice", "Bob"}  # the impostor bound nothing


def test_memory_forget_person_deletes_the_voiceprint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np

    from omni_agent.cli import main

    db = tmp_path / "memory.db"
    store = VoiceprintStore(VoiceprintStore.beside(db))
    for person, seed in (("Alice", 1), ("Bob", 2)):
        store.add(person, np.random.default_rng(seed).random(256).astype(np.float32), 2.0)
    store.close()
    assert main(["memory", "--db", str(db), "forget", "--person", "Alice"]) == 0
    assert "deleted Alice's voiceprint" in capsys.readouterr().out
    assert set(VoiceprintStore(VoiceprintStore.beside(db)).all()) == {"Bob"}


async def test_a_pause_names_its_speaker_and_the_endpoint_reuses_that(
    tmp_path: Path, encoder, voices, asr
) -> None:
    """Speculative recall is per person: the partial transcript of a pause carries the
    voice's person, and when the pause was the end the voice is not identified twice."""
    from omni_agent.speech.listener import Listener, ListenerConfig
    from omni_agent.speech.vad import VadConfig
    from omni_agent.speech.voices import feed_mic, silence
    from omni_agent.transport import USER_PARTIAL, USER_TEXT, Bus

    speaker = SpeakerId(VoiceprintStore(tmp_path / "v.db"), encoder)
    for who in ("Alice", "Bob"):
        for line in LINES[:3]:
            speaker.enroll(who, voices[who].say(line))
    identified: list[int] = []  # the length of each audio identified
    identify = speaker.identify

    def counting(pcm):  # a spy on the real encoder
        identified.append(len(pcm))
        return identify(pcm)

    speaker.identify = counting  # type: ignore[method-assign]
    bus = Bus()
    partials, utterances = bus.subscribe(USER_PARTIAL), bus.subscribe(USER_TEXT)
    async with Listener(bus, VadConfig(), asr, ListenerConfig(person=None), speaker=speaker):
        t = await feed_mic(bus, silence(0.3) + voices["Bob"].say(LINES[3]), speed=None, t0=5.0)
        t = await feed_mic(bus, silence(0.15), speed=None, t0=t)  # a pause
        partial = await asyncio.wait_for(partials.get(), 60)
        await feed_mic(bus, silence(0.6), speed=None, t0=t)  # it was the end
        final = await asyncio.wait_for(utterances.get(), 60)
    assert partial.person == "Bob" and final.person == "Bob" and final.text == partial.text
    assert len(identified) == len(set(identified))  # no stretch of audio identified twice
