"""End of turn through the real listener: a pause inside a sentence is not the end, a short
complete answer still ends, and the hard cap ends a turn the model thinks unfinished.

Real piper audio, the real Smart Turn model, fed faster than real time: every decision
is made on the audio's own samples, so nothing here depends on how busy the machine is.
Each test ends with a second line ("Thank you."): once its utterance is out, every
utterance before it is too, and their number says where the turns were cut.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from omni_agent.config import EndpointingConfig
from omni_agent.messages import AUDIO_SAMPLE_RATE, UserUtterance, VoiceActivity
from omni_agent.speech.asr import WhisperAsr
from omni_agent.speech.listener import Listener, ListenerConfig
from omni_agent.speech.models import ModelMissingError
from omni_agent.speech.pcm import read_wav
from omni_agent.speech.turn import (
    EndOfTurn,
    SmartTurn,
    TurnConfig,
    shared_smart_turn,
    sounds_unfinished,
)
from omni_agent.speech.vad import VadConfig
from omni_agent.speech.voices import feed_mic, silence
from omni_agent.transport import USER_TEXT, VOICE, Bus

pytestmark = pytest.mark.speech

MARKER = "Thank you."


@pytest.fixture(scope="module")
def smart_turn():
    try:
        return shared_smart_turn()
    except ModelMissingError as exc:
        pytest.skip(str(exc))


async def utterances_of(
    clip: bytes, marker: bytes, vad: VadConfig, asr: WhisperAsr
) -> list[UserUtterance]:
    """Every utterance the listener makes of `clip`, up to the one of the marker line."""
    bus = Bus()
    out = bus.subscribe(USER_TEXT)
    heard: list[UserUtterance] = []
    async with Listener(bus, vad, asr, ListenerConfig(person="ana")):
        t = await feed_mic(bus, silence(0.5) + clip, speed=None, t0=10.0)
        # more silence than the cap after the marker: its turn ends whatever the model says
        cap_s = vad.turn.max_wait_ms / 1000 if vad.turn is not None else 0.3
        await feed_mic(bus, marker + silence(cap_s + 0.5), speed=None, t0=t)
        while not heard or "thank" not in heard[-1].text.lower():
            heard.append(await asyncio.wait_for(out.get(), 60))
    return heard


def seconds(pcm: bytes) -> float:
    return len(pcm) / 2 / AUDIO_SAMPLE_RATE


def seconds_of(utterance: UserUtterance) -> float:
    pcm, _ = read_wav(utterance.audio_wav)
    return seconds(pcm)


def model_policy() -> VadConfig:
    return EndpointingConfig(policy="model").vad_config()


@pytest.mark.parametrize("policy", ["model", "model+text"])
async def test_a_pause_inside_a_sentence_does_not_cut_it(policy, person, asr, smart_turn) -> None:
    first, second = person.say("I want to go to the, um,"), person.say("kitchen, please.")
    clip = first + silence(0.6) + second + silence(2.0)
    marker = person.say(MARKER)
    vad = EndpointingConfig(policy=policy).vad_config()
    heard = await utterances_of(clip, marker, vad, asr)
    assert len(heard) == 2, [u.text for u in heard]
    assert "kitchen" in heard[0].text.lower() and "go to" in heard[0].text.lower()
    assert seconds_of(heard[0]) >= seconds(first) + 0.6 + seconds(second)
    # the old endpointing (300 ms of silence) cuts the same audio in two
    cut = await utterances_of(clip, marker, VadConfig(), asr)
    assert len(cut) >= 3, [u.text for u in cut]


async def test_a_short_complete_answer_ends_before_the_cap(person, asr, smart_turn) -> None:
    # one second of silence, less than the cap: only the model can end "Yes." there
    answer = person.say("Yes.")
    vad = model_policy()
    assert vad.turn is not None and vad.turn.max_wait_ms > 1000
    heard = await utterances_of(answer + silence(1.0), person.say(MARKER), vad, asr)
    assert len(heard) == 2, [u.text for u in heard]


async def test_the_hard_cap_ends_a_turn_the_model_thinks_unfinished(
    person, asr, smart_turn
) -> None:
    unfinished = person.say("So yesterday I went to the doctor and")
    pcm = silence(0.3) + unfinished + silence(0.4)
    assert smart_turn.probability(pcm) < 0.5  # the model would keep listening
    cap = 1200
    vad = VadConfig(turn=TurnConfig(policy="model", max_wait_ms=cap))
    clip, marker = unfinished + silence(cap / 1000 + 0.3), person.say(MARKER)
    heard = await utterances_of(clip, marker, vad, asr)
    assert len(heard) == 2, [u.text for u in heard]
    # without a cap within that silence, the next line joins the same turn
    vad = VadConfig(turn=TurnConfig(policy="model", max_wait_ms=3000))
    joined = await utterances_of(clip, marker, vad, asr)
    assert len(joined) == 1, [u.text for u in joined]


def test_the_model_s_done_waits_for_the_pause_s_words(smart_turn) -> None:
    words_first = TurnConfig(policy="model+text", threshold=0.01, alone_threshold=None)
    turn = EndOfTurn(words_first, smart_turn)
    pcm = silence(1.0)
    assert not turn.is_done(pcm, voiced_bytes=100, silence_ms=200)  # no words back yet
    turn.hear(100, "I want to go to the")
    assert not turn.is_done(pcm, voiced_bytes=100, silence_ms=400)
    turn.hear(100, "I want to go to the kitchen.")
    assert turn.is_done(pcm, voiced_bytes=100, silence_ms=600)
    # the words of an earlier pause say nothing about this one
    assert not turn.is_done(pcm, voiced_bytes=200, silence_ms=200)
    # a listener with no ASR has no words to wait for: the model alone decides
    turn.transcripts_expected = False
    assert turn.is_done(pcm, voiced_bytes=200, silence_ms=200)


def test_a_sure_model_ends_the_turn_before_the_words_but_not_against_them(smart_turn) -> None:
    turn = EndOfTurn(
        TurnConfig(policy="model+text", threshold=0.99, alone_threshold=0.01), smart_turn
    )
    pcm = silence(1.0)
    assert turn.is_done(pcm, voiced_bytes=100, silence_ms=200)  # words not back: the model
    turn.hear(100, "My phone number is five five five,")
    assert not turn.is_done(pcm, voiced_bytes=100, silence_ms=400)  # an open list waits


def test_a_pause_s_lean_is_the_model_s_answer_with_finished_words_and_zero_without(
    smart_turn,
) -> None:
    turn = EndOfTurn(TurnConfig(policy="model+text", threshold=0.99), smart_turn)
    pcm = silence(0.3) + silence(0.2)
    assert turn.lean(100) is None  # the model has not heard the pause
    assert not turn.is_done(pcm, voiced_bytes=100, silence_ms=200)  # asked, decides nothing
    heard = turn.last_probability
    assert heard is not None and turn.lean(100) == heard and turn.lean(200) is None
    turn.hear(100, "Go to the")
    assert turn.lean(100) == 0.0 and not turn.done_on_words(100)
    turn.hear(100, "Go to the kitchen.")
    assert turn.lean(100) == heard
    # the check's answer with the words that came after it: "done" only at the threshold
    assert turn.done_on_words(100) is (heard >= 0.99)
    sure = EndOfTurn(TurnConfig(policy="model+text", threshold=min(heard, 0.5)), smart_turn)
    sure.is_done(pcm, voiced_bytes=100, silence_ms=200)
    assert not sure.done_on_words(100)  # no words yet
    sure.hear(100, "Go to the kitchen.")
    assert sure.done_on_words(100)
    # without early judging the model waits for the words, and there is no lean yet
    late = EndOfTurn(TurnConfig(policy="model+text", judge_early=False), smart_turn)
    late.is_done(pcm, voiced_bytes=100, silence_ms=200)
    assert late.lean(100) is None and late.last_probability is None


@pytest.mark.parametrize(
    ("text", "unfinished"),
    [
        ("I want to go to the", True),
        ("So yesterday I went to the doctor and", True),
        ("Could you, um,", True),
        ("We had lunch and then...", True),
        ("We had lunch and then.", True),
        ("Go to the kitchen.", False),
        ("Thank you.", False),
        ("Turn it on", False),
        ("I need milk, eggs,", True),
        ("My phone number is 555", True),
        ("The code is four seven.", True),
        ("Bring me the blue one.", False),
        ("", False),
    ],
)
def test_unfinished_words(text: str, unfinished: bool) -> None:
    assert sounds_unfinished(text) is unfinished


def test_the_endpointing_section_picks_the_policy() -> None:
    silence = EndpointingConfig(policy="silence", silence_ms=600).vad_config()
    assert silence.turn is None and silence.trailing_silence_ms == 600
    turn = EndpointingConfig(threshold=0.7, max_wait_ms=900).vad_config().turn
    assert turn == TurnConfig(policy="model+text", threshold=0.7, max_wait_ms=900)
    # the section's defaults are the library's
    assert EndpointingConfig().vad_config().turn == TurnConfig()


class HeldModel:
    """The real Smart Turn, held at the door of each call until the test lets it in."""

    def __init__(self, model: SmartTurn, log: list[str]) -> None:
        self.model, self.log = model, log
        self.entered, self.release = threading.Event(), threading.Event()

    def probability(self, pcm: bytes) -> float:
        self.log.append("model deciding")
        self.entered.set()
        self.release.wait(60)
        self.log.append("model decided")
        return self.model.probability(pcm)


async def test_the_loop_keeps_serving_while_the_turn_model_decides(person, smart_turn) -> None:
    log: list[str] = []
    held = HeldModel(smart_turn, log)
    vad = VadConfig(turn=TurnConfig(policy="model", threshold=0.5, max_wait_ms=3000))
    bus = Bus()
    voice, out = bus.subscribe(VOICE), bus.subscribe(USER_TEXT)
    async with Listener(bus, vad, asr=None, config=ListenerConfig(person="ana")) as listener:
        listener.endpointer.turn = EndOfTurn(vad.turn, held)  # type: ignore[arg-type]
        await feed_mic(bus, silence(0.3) + person.say("Yes.") + silence(1.0), speed=None)
        assert (await asyncio.wait_for(voice.get(), 30)).speaking
        await asyncio.wait_for(asyncio.to_thread(held.entered.wait, 60), 90)
        # another voice on the bus (a barge-in) while the model decides: it is delivered
        bus.publish(VOICE, VoiceActivity(speaking=True, speech_start=1.0))
        assert (await asyncio.wait_for(voice.get(), 30)).speech_start == 1.0
        log.append("loop served")
        held.release.set()
        utterance = await asyncio.wait_for(out.get(), 60)
    assert log[:3] == ["model deciding", "loop served", "model decided"], log
    # the turn still ended at the model's "done", not at the 3 s cap
    assert seconds_of(utterance) < 0.3 + seconds(person.say("Yes.")) + 1.0


@pytest.mark.parametrize("chunk_ms", [20, 100, 330])
def test_a_deferred_endpointer_ends_turns_where_a_direct_one_does(
    chunk_ms, person, smart_turn
) -> None:
    """The listener's endpointer holds the audio behind each check until it is answered:
    whatever the chunking, it cuts the same turns at the same samples as one that asks
    the model itself."""
    from omni_agent.speech.vad import Endpointer, SpeechEnded, TurnCheck

    clip = (
        silence(0.3) + person.say("Yes.") + silence(1.0)
        + person.say("So yesterday I went to the doctor and") + silence(0.6)
        + person.say("she said my knee is fine.") + silence(2.0)
    )  # fmt: skip
    config = TurnConfig(policy="model", threshold=0.5, max_wait_ms=1400)

    def ends(deferred: bool, step_ms: int) -> list[tuple[int, int]]:
        turn = EndOfTurn(config, smart_turn)
        endpointer = Endpointer(VadConfig(turn=config), turn=turn, deferred=deferred)
        step = AUDIO_SAMPLE_RATE * step_ms // 1000 * 2
        out: list[tuple[int, int]] = []
        for offset in range(0, len(clip), step):
            piece = clip[offset : offset + step]
            events = endpointer.feed(piece, (offset + len(piece)) / 2 / AUDIO_SAMPLE_RATE)
            while events:
                event = events.pop(0)
                if isinstance(event, TurnCheck):  # answered later, as the listener does
                    done = turn.is_done(event.pcm, event.voiced_bytes, event.silence_ms)
                    events += endpointer.resolve(event, done)
                elif isinstance(event, SpeechEnded):
                    out.append((event.voiced_bytes, len(event.pcm)))
        return out

    direct = ends(deferred=False, step_ms=20)
    assert len(direct) >= 2  # "Yes." ends on its own
    assert ends(deferred=True, step_ms=chunk_ms) == direct


class GatedAsr:
    """The real whisper, whose passes wait until the test opens the gate (the words come
    back late, after the pause's checks, as on a busy machine)."""

    def __init__(self, asr: WhisperAsr) -> None:
        self.asr, self.gate = asr, threading.Event()

    def transcribe(self, pcm: bytes) -> object:
        self.gate.wait(60)
        return self.asr.transcribe(pcm)


async def test_a_turn_the_model_called_done_ends_as_soon_as_its_words_are_back(
    person, asr, smart_turn
) -> None:
    from omni_agent.messages import AudioChunk

    gated = GatedAsr(asr)
    vad = VadConfig(turn=TurnConfig(threshold=0.01, max_wait_ms=3000))
    bus = Bus()
    out = bus.subscribe(USER_TEXT)
    async with Listener(bus, vad, gated, ListenerConfig(person="ana")) as listener:  # type: ignore[arg-type]
        clip = silence(0.3) + person.say("Go to the kitchen.") + silence(1.0)
        step = AUDIO_SAMPLE_RATE // 50 * 2
        for i in range(0, len(clip), step):  # straight into the listener, chunk by chunk
            listener.feed(
                AudioChunk(pcm=clip[i : i + step], stamp=10.0 + i / 2 / AUDIO_SAMPLE_RATE)
            )
        # the pause's checks come and go without the words: each asks the model and
        # decides nothing; wait until the last one is answered and no audio is held
        deadline = asyncio.get_running_loop().time() + 60
        while listener.endpointer.check is not None:
            assert asyncio.get_running_loop().time() < deadline, "a check was never answered"
            await asyncio.sleep(0.01)
        turn = listener.endpointer.turn
        assert turn is not None and turn.judged is not None  # the model heard the pause
        assert out.get_nowait() is None  # no words yet: the turn is still open
        gated.gate.set()
        # no more audio, so no more checks: the words alone end the turn
        utterance = await asyncio.wait_for(out.get(), 60)
    assert "kitchen" in utterance.text.lower()
