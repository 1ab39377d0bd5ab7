"""A test double of an omni model server: it hears the audio, answers, and speaks.

An omni model (Qwen2.5-Omni behind vllm-omni, InteractiveOmni behind `omni-agent serve`)
needs a GPU, so CI and the simulator put this double in its place. It answers on the
real wire protocol, in vllm-omni's streaming shape, so the client and the agent run the
same code as against the real server:

- it hears: the last user message's `input_audio` part is transcribed with the project's
  whisper, and the script reads the request as if the words had been quoted in its text
  part (`<Person> says: "<what it heard>"` in place of `<Person> speaks in the audio.`);
  everything else the script knows (situation, remembered evidence, the window) must be
  in the request, as for a real model;
- it answers with a script (a function of the request, like ScriptedBackend's): text
  deltas first, JSON when the request asks for `response_format`, tool calls otherwise;
- it speaks when asked (`modalities: ["text", "audio"]`): the reply's words through the
  project's piper voice, resampled to 24 kHz, one base64 WAV per sentence in
  `delta.audio.data`, with that sentence in `delta.audio.transcript`; speech is made
  while the stream runs, as a talker follows the thinker;
- it logs every request with what it heard (`log`), for tests to inspect.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import functools
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from omni_agent.media import read_wav, wav_bytes
from omni_agent.messages import AUDIO_SAMPLE_RATE
from omni_agent.prompt import HEARD
from omni_agent.speech.pcm import resample
from sim.brains.scripted import Script, ScriptedBackend, ScriptedReply, _Stream

if TYPE_CHECKING:  # the speech models load on first use only
    from omni_agent.speech.asr import WhisperAsr
    from omni_agent.speech.tts import PiperTts

SPEECH_RATE = 24_000
"""vllm-omni's (and InteractiveOmni's) speech output rate."""
CHARS_PER_TOKEN = 4
"""A rough tokenizer: `max_tokens` cuts the reply where a real model would stop."""

_SPEAKER_LINE = re.compile(
    rf'^(?P<who>[^\n"]+?) (?:{re.escape(HEARD)}|says: "(?P<quoted>.*)")$', re.M
)
_SENTENCE = re.compile(r"[^.!?]+[.!?]*\s*")


@dataclass
class HeardRequest:
    """One request as the double received it, and what it made of it."""

    body: dict[str, Any]
    heard: str | None
    """What whisper heard in the audio part; None when the request had no audio."""
    reply: ScriptedReply
    spoke: bool
    """The request asked for speech (`modalities` with "audio")."""

    @property
    def user_content(self) -> str | list[dict[str, Any]]:
        content: str | list[dict[str, Any]] = self.body["messages"][-1]["content"]
        return content

    def parts(self, kind: str) -> list[dict[str, Any]]:
        """The last user message's content parts of one type ("input_audio", "text", ...)."""
        content = self.user_content
        return [p for p in content if p.get("type") == kind] if isinstance(content, list) else []

    @property
    def user_text(self) -> str:
        """The last user message's text (its text parts, joined)."""
        content = self.user_content
        if isinstance(content, str):
            return content
        return "\n".join(p.get("text", "") for p in self.parts("text"))


@functools.cache
def shared_asr() -> WhisperAsr:
    """One whisper for every double in the process (it is thread-safe)."""
    from omni_agent.speech.asr import WhisperAsr

    return WhisperAsr()


@functools.cache
def shared_voice() -> PiperTts:
    """One piper voice for every double; deterministic, so a reply always sounds the same."""
    from omni_agent.speech.tts import PiperTts

    return PiperTts(deterministic=True)


class OmniDouble(ScriptedBackend):
    """An omni model server that hears, answers by `script` and speaks (a test double)."""

    def __init__(
        self,
        script: Script,
        *,
        chunk_chars: int = 16,
        asr: WhisperAsr | None = None,
        voice: PiperTts | None = None,
    ) -> None:
        super().__init__(script, chunk_chars=chunk_chars)
        self._asr = asr
        self._voice = voice
        self.log: list[HeardRequest] = []
        """Every chat request received, in order, with what was heard and answered."""

    @property
    def asr(self) -> WhisperAsr:
        if self._asr is None:
            self._asr = shared_asr()
        return self._asr

    @property
    def voice(self) -> PiperTts:
        if self._voice is None:
            self._voice = shared_voice()
        return self._voice

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"object": "list", "data": [{"id": "omni-double"}]})
        body = json.loads(await request.aread())
        self.requests.append(body)
        started = time.perf_counter()
        entry = await asyncio.to_thread(self._answer, body)  # whisper: off the event loop
        self.model_time_s += time.perf_counter() - started
        self.log.append(entry)
        return httpx.Response(
            200,
            headers={"content-type": "text/event-stream"},
            stream=_Stream(self, self._omni_chunks(entry)),
        )

    def hear(self, body: dict[str, Any]) -> str | None:
        """Transcribe the last user message's audio part (None if it has none)."""
        content = body["messages"][-1]["content"]
        if isinstance(content, str):
            return None
        audio = [p for p in content if p.get("type") == "input_audio"]
        if not audio:
            return None
        pcm, rate = read_wav(base64.b64decode(audio[-1]["input_audio"]["data"]))
        return self.asr.transcribe(resample(pcm, rate, AUDIO_SAMPLE_RATE)).text

    def _answer(self, body: dict[str, Any]) -> HeardRequest:
        heard = self.hear(body)
        reply = self.script(as_heard(body, heard) if heard is not None else body)
        reply = _cut(reply, body.get("max_tokens"))
        spoke = "audio" in (body.get("modalities") or [])
        return HeardRequest(body, heard, reply, spoke)

    async def _omni_chunks(self, entry: HeardRequest) -> AsyncIterator[dict[str, Any]]:
        n = len(self.log)
        *text, finish = self._chunks(entry.body, entry.reply)
        for chunk in text:
            yield {**chunk, "modality": "text"}
        if entry.spoke:
            for sentence in _SENTENCE.findall(entry.reply.say):
                started = time.perf_counter()
                pcm = await asyncio.to_thread(self._speak, sentence.strip())
                self.model_time_s += time.perf_counter() - started
                if pcm:
                    yield _audio_chunk(f"audio-{n}", pcm, sentence)
        yield {**finish, "modality": "text"}

    def _speak(self, text: str) -> bytes:
        pcm = self.voice.synthesize(text) if text else b""
        return resample(pcm, self.voice.sample_rate, SPEECH_RATE)


def as_heard(body: dict[str, Any], heard: str) -> dict[str, Any]:
    """The request with the heard words quoted in its text part, for a text-reading script.

    `<Person> speaks in the audio.` (or a quoted transcript the agent put there) becomes
    `<Person> says: "<heard>"`; a request with no speaker line gets one after its first line.
    """
    out = copy.deepcopy(body)
    last = out["messages"][-1]
    content = last["content"]
    text = "\n".join(p.get("text", "") for p in content if p.get("type") == "text")
    said = f'says: "{heard}"'
    if m := _SPEAKER_LINE.search(text):
        text = text[: m.start()] + f"{m['who']} {said}" + text[m.end() :]
    elif text:
        first, _, rest = text.partition("\n")
        text = f"{first}\nPerson {said}" + (f"\n{rest}" if rest else "")
    else:
        text = f"Person {said}"
    last["content"] = [p for p in content if p.get("type") != "text"] + [
        {"type": "text", "text": text}
    ]
    return out


def _cut(reply: ScriptedReply, max_tokens: int | None) -> ScriptedReply:
    """What a model stopped at `max_tokens` would have said (a warm-up asks for one token)."""
    if max_tokens is None or reply.raw is not None:
        return reply
    limit = max_tokens * CHARS_PER_TOKEN
    if len(json.dumps({"say": reply.say, "actions": reply.actions})) <= limit:
        return reply
    return ScriptedReply(raw=json.dumps({"say": reply.say})[:limit])


def _audio_chunk(audio_id: str, pcm: bytes, transcript: str) -> dict[str, Any]:
    audio = {
        "id": audio_id,
        "data": base64.b64encode(wav_bytes(pcm, SPEECH_RATE)).decode(),
        "format": "wav",
        "transcript": transcript,
    }
    choice = {"index": 0, "delta": {"audio": audio}, "finish_reason": None}
    return {"object": "chat.completion.chunk", "choices": [choice], "modality": "audio"}
