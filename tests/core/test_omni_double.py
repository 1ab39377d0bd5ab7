"""The omni double: it hears a request's audio, answers by its script and speaks at 24 kHz."""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from omni_agent.config import ModelConfig
from omni_agent.media import read_wav, wav_bytes
from omni_agent.messages import AUDIO_SAMPLE_RATE
from omni_agent.model.client import AudioDelta, ModelClient, TextDelta, ToolCallDelta
from omni_agent.model.profiles import get_profile
from omni_agent.model.request import UserInput, build_request
from omni_agent.prompt import user_message
from omni_agent.speech.models import ModelMissingError
from omni_agent.speech.voices import PersonVoice
from omni_agent.speech.wer import word_error_rate
from sim.brains.omni_double import (
    SPEECH_RATE,
    OmniDouble,
    as_heard,
    shared_asr,
    shared_voice,
)
from sim.brains.scripted import ScriptedReply, last_user_text

SITUATION = "You are in the living room. You see: sofa (2 m)."


def audio_request(text_part: str | None) -> dict[str, Any]:
    content: list[dict[str, Any]] = [
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
    ]
    if text_part is not None:
        content.append({"type": "text", "text": text_part})
    return {
        "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": content}]
    }


def test_the_heard_words_replace_the_speaker_line_and_keep_the_memory() -> None:
    text = user_message(SITUATION, "Alice", None, "[day 1] Alice: my keys are on the table")
    body = as_heard(audio_request(text), "Where are my keys?")
    assert last_user_text(body) == (
        f'[{SITUATION}]\nAlice says: "Where are my keys?"\n'
        "[You remember:\n[day 1] Alice: my keys are on the table]"
    )
    assert body["messages"][-1]["content"][0]["type"] == "input_audio"


@pytest.mark.parametrize(
    ("text_part", "expected"),
    [
        # an agent that still quotes its own (maybe empty) transcript: the double's hearing wins
        (f'[{SITUATION}]\nBob says: ""', f'[{SITUATION}]\nBob says: "Hello there."'),
        (f'[{SITUATION}]\nBob says: "hello the"', f'[{SITUATION}]\nBob says: "Hello there."'),
        (f"[{SITUATION}]", f'[{SITUATION}]\nPerson says: "Hello there."'),
        (None, 'Person says: "Hello there."'),
    ],
)
def test_every_form_of_an_audio_turn_is_read_as_heard(text_part: str | None, expected: str) -> None:
    assert last_user_text(as_heard(audio_request(text_part), "Hello there.")) == expected


def script(body: dict[str, Any]) -> ScriptedReply:
    if "kitchen" in last_user_text(body).lower():
        return ScriptedReply(
            "Sure. I am going to the kitchen now.", [{"skill": "navigate_to", "place": "kitchen"}]
        )
    return ScriptedReply("Okay.")


@dataclass
class Rig:
    double: OmniDouble
    person: PersonVoice

    def request(self, profile: str, words: str) -> dict[str, Any]:
        """What the agent sends for a spoken turn on `profile`."""
        audio = wav_bytes(self.person.say(words), AUDIO_SAMPLE_RATE)
        user = UserInput(text=user_message(SITUATION, "Alice", None), audio_wav=audio)
        return build_request(get_profile(profile), ModelConfig(), "sys", [], user, ["navigate_to"])


@pytest.fixture(scope="module")
def rig() -> Rig:
    try:
        asr, voice = shared_asr(), shared_voice()
        person = PersonVoice(deterministic=True)
    except ModelMissingError as exc:
        pytest.skip(str(exc))
    return Rig(OmniDouble(script, asr=asr, voice=voice), person)


@pytest.mark.speech
async def test_the_double_hears_answers_in_json_and_speaks_at_24_khz(rig: Rig) -> None:
    double, body = rig.double, rig.request("vllm-omni", "Please go to the kitchen.")
    client = ModelClient("http://omni-double/v1", ModelConfig(), transport=double)
    events = [e async for e in client.stream(body)]
    await client.aclose()

    entry = double.log[-1]
    assert entry.body == body and entry.spoke
    assert (
        entry.heard is not None and word_error_rate("Please go to the kitchen.", entry.heard) < 0.2
    )
    reply = json.loads("".join(e.text for e in events if isinstance(e, TextDelta)))
    assert reply["actions"] == [{"skill": "navigate_to", "place": "kitchen"}]
    audio = [e for e in events if isinstance(e, AudioDelta)]
    assert audio and {a.sample_rate for a in audio} == {SPEECH_RATE}
    seconds = sum(len(a.pcm) for a in audio) / 2 / SPEECH_RATE
    assert 1.0 < seconds < 6.0  # two short sentences of speech
    # text streams first, as the thinker's tokens come before the talker's audio
    kinds = [type(e) for e in events if isinstance(e, TextDelta | AudioDelta)]
    assert kinds.index(AudioDelta) > kinds.index(TextDelta)


@pytest.mark.speech
async def test_the_streamed_speech_carries_its_transcript(rig: Rig) -> None:
    double, body = rig.double, rig.request("omni-agent-serve", "Please go to the kitchen.")
    async with httpx.AsyncClient(transport=double, base_url="http://omni-double/v1") as http:
        resp = await http.post("/chat/completions", json=body)
    chunks = [json.loads(line[5:]) for line in resp.text.splitlines() if line.startswith("data: {")]
    audio = [c["choices"][0]["delta"]["audio"] for c in chunks if c["modality"] == "audio"]
    assert "".join(a["transcript"] for a in audio).strip() == "Sure. I am going to the kitchen now."
    for part in audio:
        assert part["format"] == "wav"
        assert read_wav(base64.b64decode(part["data"]))[1] == SPEECH_RATE


@pytest.mark.speech
async def test_a_text_out_profile_gets_no_speech_and_its_actions_as_tool_calls(rig: Rig) -> None:
    double, body = rig.double, rig.request("vllm-omni-thinker", "Please go to the kitchen.")
    client = ModelClient("http://omni-double/v1", ModelConfig(), transport=double)
    events = [e async for e in client.stream(body)]
    await client.aclose()
    assert not double.log[-1].spoke
    assert not [e for e in events if isinstance(e, AudioDelta)]
    assert "tools" in body and any(isinstance(e, ToolCallDelta) for e in events)


async def test_a_warm_up_of_one_token_is_cut_short_and_unspoken() -> None:
    """Without audio nothing is transcribed, and a one-token reply has nothing to say."""
    double = OmniDouble(lambda body: ScriptedReply("A long answer that a warm-up never hears."))
    body = {
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "max_tokens": 1,
        "modalities": ["text", "audio"],
        "response_format": {"type": "json_schema"},
    }
    client = ModelClient("http://omni-double/v1", ModelConfig(), transport=double)
    events = [e async for e in client.stream(body)]
    await client.aclose()
    assert double.log[-1].heard is None
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == '{"sa'
    assert not [e for e in events if isinstance(e, AudioDelta)]


@pytest.mark.speech
async def test_a_barge_in_cancels_the_speech_after_the_first_sentence(rig: Rig) -> None:
    """The agent cancels its streaming task on a barge-in: the double stops speaking."""
    double, body = rig.double, rig.request("vllm-omni", "Please go to the kitchen.")
    cancelled = double.cancelled
    client = ModelClient("http://omni-double/v1", ModelConfig(), transport=double)
    first_audio = asyncio.Event()
    audio: list[AudioDelta] = []

    async def listen() -> None:
        async for event in client.stream(body):
            if isinstance(event, AudioDelta):
                audio.append(event)
                first_audio.set()

    task = asyncio.create_task(listen())
    await first_audio.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await client.aclose()
    assert double.cancelled == cancelled + 1
    assert len(audio) == 1  # "Sure." was spoken; the second sentence never was
