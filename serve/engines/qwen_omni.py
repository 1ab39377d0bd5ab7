"""Qwen2.5-Omni through transformers' own classes: the thinker hears, sees and writes;
the talker and token2wav speak.

Text streams token by token from the thinker. transformers runs the talker once the
thinker is done, so speech follows the text as one waveform, sent in one-second chunks.
For vLLM's faster path see `serve.vllm`.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

from serve.engines import (
    Piece,
    StopOnCancel,
    TextPiece,
    ending,
    instructions,
    pick_device,
    say_exactly,
    spoken_text,
    torch_dtype,
)
from serve.protocol import (
    AudioPart,
    Generation,
    ImagePart,
    Message,
    RequestError,
    TextPart,
    VideoPart,
)

SPEECH_SYSTEM_PROMPT = (
    "You are Qwen, a virtual human developed by the Qwen Team, Alibaba Group, capable of "
    "perceiving auditory and visual inputs, as well as generating text and speech."
)
"""The talker was trained under this exact system prompt; speech needs it first."""

CODEC_HZ = 50
"""Talker codec tokens per second of speech: bounds how long one answer can speak."""


class QwenOmniEngine:
    name = "qwen2.5-omni"
    max_concurrency = 1

    def __init__(
        self, path: Path, device: str = "auto", dtype: str = "auto", max_speech_s: float = 60.0
    ) -> None:
        from transformers import Qwen2_5OmniForConditionalGeneration, Qwen2_5OmniProcessor

        self.device = pick_device(device)
        self.dtype = torch_dtype(dtype, self.device)
        self.model = Qwen2_5OmniForConditionalGeneration.from_pretrained(path, dtype=self.dtype)
        self.model.to(self.device).eval()
        self.processor = Qwen2_5OmniProcessor.from_pretrained(path)
        self.model_id = path.name
        self.voices = sorted(self.model.speaker_map) if self.model.has_talker else []
        self.max_speech_tokens = max(1, int(max_speech_s * CODEC_HZ))

    def generate(self, request: Generation, cancel: threading.Event) -> Iterator[Piece]:
        voice = self._voice(request)
        speak_reply = request.audio_out and request.json_schema is None
        sequences, wav, prompt_len = yield from self._run(
            request, cancel, return_audio=speak_reply, voice=voice
        )
        completion = int(sequences.shape[1]) - prompt_len
        if request.audio_out and not speak_reply and not cancel.is_set():
            # A JSON reply is not read out as JSON: speak its `say` field on its own.
            text = self.processor.batch_decode(sequences[:, prompt_len:], skip_special_tokens=True)[
                0
            ]
            say = spoken_text(text, request.json_schema)
            if say:
                wav = yield from self._speak(say, request, cancel, voice)
        yield from ending(wav, cancel, prompt_len, completion, request.max_tokens)

    def _voice(self, request: Generation) -> str:
        if not request.audio_out:
            return self.voices[0] if self.voices else "Chelsie"
        if not self.voices:
            raise RequestError("this model has no talker: ask for modalities ['text']")
        voice = request.voice or self.voices[0]
        if voice not in self.voices:
            raise RequestError(f"unknown voice {voice!r} (voices: {', '.join(self.voices)})")
        return voice

    def _speak(
        self, say: str, request: Generation, cancel: threading.Event, voice: str
    ) -> Generator[Piece, None, Any]:
        plain = Generation(
            messages=[Message("user", [TextPart(say_exactly(say))])],
            max_tokens=request.max_tokens,
            temperature=0.0,
            top_p=1.0,
            seed=request.seed,
            audio_out=True,
            voice=voice,
        )
        _, wav, _ = yield from self._run(
            plain, cancel, return_audio=True, voice=voice, stream_text=False
        )
        return wav

    def _run(
        self,
        request: Generation,
        cancel: threading.Event,
        return_audio: bool,
        voice: str,
        stream_text: bool = True,
    ) -> Generator[Piece, None, tuple[Any, Any, int]]:
        """Generate in a helper thread while streaming its text; returns
        (sequences, waveform or None, prompt length)."""
        import torch
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        conversation = self._conversation(request, speech=return_audio)
        prompt = self.processor.apply_chat_template(
            conversation, add_generation_prompt=True, tokenize=False
        )
        media = [p for m in request.messages for p in m.parts]
        images = [p.rgb for p in media if isinstance(p, ImagePart)]
        audios = [p.samples for p in media if isinstance(p, AudioPart)]
        videos = [list(p.frames) for p in media if isinstance(p, VideoPart)]
        inputs = self.processor(
            text=prompt,
            images=images or None,
            audio=audios or None,
            videos=videos or None,
            return_tensors="pt",
            padding=True,
        ).to(self.device)
        for key, value in inputs.items():
            if torch.is_floating_point(value):
                inputs[key] = value.to(self.dtype)
        streamer = TextIteratorStreamer(
            self.processor.tokenizer,  # type: ignore[attr-defined]
            skip_prompt=True,
            skip_special_tokens=True,
        )
        stop = StoppingCriteriaList([StopOnCancel(cancel)])
        sampling: dict[str, Any] = {"thinker_do_sample": request.temperature > 0}
        if request.temperature > 0:
            sampling |= {"thinker_temperature": request.temperature, "thinker_top_p": request.top_p}
        if request.seed is not None:
            torch.manual_seed(request.seed)
        result: dict[str, Any] = {}

        def work() -> None:
            try:
                result["out"] = self.model.generate(
                    **inputs,
                    speaker=voice,
                    return_audio=return_audio,
                    thinker_max_new_tokens=request.max_tokens,
                    thinker_streamer=streamer,
                    thinker_stopping_criteria=stop,
                    talker_stopping_criteria=stop,
                    talker_max_new_tokens=self.max_speech_tokens,
                    **sampling,
                )
            except BaseException as exc:  # handed to the serving thread below
                result["error"] = exc
                streamer.end()

        worker = threading.Thread(target=work, name="qwen-omni-generate", daemon=True)
        worker.start()
        for text in streamer:
            if text and stream_text and not cancel.is_set():
                yield TextPiece(text)
        worker.join()
        if "error" in result:
            raise result["error"]
        out = result["out"]
        sequences, wav = out if return_audio else (out, None)
        if not torch.is_tensor(sequences):
            sequences = sequences.sequences
        return sequences, wav, int(inputs["input_ids"].shape[1])

    def _conversation(self, request: Generation, speech: bool) -> list[dict[str, Any]]:
        system = instructions(request)
        conversation: list[dict[str, Any]] = []
        if speech:
            conversation.append(_text_message("system", SPEECH_SYSTEM_PROMPT))
        if system:
            conversation.append(_text_message("system", system))
        for message in request.messages:
            if message.role != "system":
                conversation.append(
                    {"role": message.role, "content": [_part(p) for p in message.parts]}
                )
        return conversation


def _text_message(role: str, text: str) -> dict[str, Any]:
    return {"role": role, "content": [{"type": "text", "text": text}]}


def _part(part: TextPart | ImagePart | AudioPart | VideoPart) -> dict[str, Any]:
    """The chat template's placeholder for a part; the media go to the processor in order."""
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, ImagePart):
        return {"type": "image"}
    if isinstance(part, AudioPart):
        return {"type": "audio"}
    return {"type": "video"}
