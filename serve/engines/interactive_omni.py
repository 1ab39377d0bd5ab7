"""InteractiveOmni (arXiv 2510.13747) through its Hugging Face remote code.

The model publishes one call, `model.chat(tokenizer, generation_config, messages, max_num,
frame, generate_audio=..., speaker_embedding=...)`, which takes media as file paths and
returns the whole answer (and with `generate_audio=True`, `(text, waveform)` at 24 kHz).
`generation_config` is handed on to `generate`, so a text streamer and a stopping criterion
ride along in it: text streams while it is decoded, and a hang-up stops decoding. Speech
comes when the answer is complete, sent in one-second chunks.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from omni_agent.speech.pcm import wav_bytes
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
    AUDIO_RATE,
    AudioPart,
    Generation,
    ImagePart,
    RequestError,
    TextPart,
    VideoPart,
    pcm16,
)

SPEECH_SYSTEM_PROMPT = (
    "You are a highly advanced multimodal conversational AI designed for human-like "
    "interaction. You can perceive auditory, visual, speech, and textual inputs, and "
    "generate text and speech."
)
"""The model speaks only under this exact system prompt (its model card)."""

MAX_TILES = 12  # 448x448 image tiles per image (the model card's value)
VIDEO_FRAMES = 8
DEFAULT_VOICE = "default"


class InteractiveOmniEngine:
    name = "interactive-omni"
    max_concurrency = 1

    def __init__(self, path: Path, device: str = "auto", dtype: str = "auto") -> None:
        from transformers import AutoModel, AutoTokenizer

        self.device = pick_device(device)
        self.model = AutoModel.from_pretrained(
            path, dtype=torch_dtype(dtype, self.device), trust_remote_code=True
        )
        self.model.to(self.device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True, use_fast=True)
        self.model_id = path.name
        # Extra voices: WAV clips in <model>/voices/, turned into speaker embeddings.
        self.voice_clips = {p.stem: p for p in sorted((path / "voices").glob("*.wav"))}
        self.voices = [DEFAULT_VOICE, *self.voice_clips]
        self._embeddings: dict[str, Any] = {}

    def generate(self, request: Generation, cancel: threading.Event) -> Iterator[Piece]:
        voice = self._speaker(request) if request.audio_out else None
        speak_reply = request.audio_out and request.json_schema is None
        with tempfile.TemporaryDirectory(prefix="omni-media-") as media_dir:
            messages = self._messages(request, Path(media_dir), speech=speak_reply)
            text, wav, tokens = yield from self._chat(messages, request, cancel, voice, speak_reply)
            if request.audio_out and not speak_reply and not cancel.is_set():
                say = spoken_text(text, request.json_schema)
                if say:
                    again = [
                        {"role": "system", "content": SPEECH_SYSTEM_PROMPT},
                        {"role": "user", "content": say_exactly(say)},
                    ]
                    _, wav, _ = yield from self._chat(
                        again, request, cancel, voice, True, stream_text=False
                    )
        # chat() does not report its prompt's length
        yield from ending(wav, cancel, 0, tokens, request.max_tokens)

    def _speaker(self, request: Generation) -> Any:
        name = request.voice or DEFAULT_VOICE
        if name == DEFAULT_VOICE:
            return self.model.default_speaker_embedding
        if name not in self.voice_clips:
            raise RequestError(f"unknown voice {name!r} (voices: {', '.join(self.voices)})")
        if name not in self._embeddings:
            self._embeddings[name] = self.model.extract_speaker_embedding(
                str(self.voice_clips[name])
            )
        return self._embeddings[name]

    def _chat(
        self,
        messages: list[dict[str, Any]],
        request: Generation,
        cancel: threading.Event,
        speaker: Any,
        audio: bool,
        stream_text: bool = True,
    ) -> Generator[Piece, None, tuple[str, Any, int]]:
        """Run `chat()` in a helper thread, streaming its text; returns (text, wav, tokens)."""
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        config: dict[str, Any] = {
            "max_new_tokens": request.max_tokens,
            "do_sample": request.temperature > 0,
            "stopping_criteria": StoppingCriteriaList([StopOnCancel(cancel)]),
            "streamer": streamer,
        }
        if request.temperature > 0:
            config |= {"temperature": request.temperature, "top_p": request.top_p}
        result: dict[str, Any] = {}

        def work() -> None:
            try:
                extra = {"speaker_embedding": speaker} if audio else {}
                result["out"] = self.model.chat(
                    self.tokenizer,
                    config,
                    messages,
                    MAX_TILES,  # positional: reported to fail as a keyword
                    VIDEO_FRAMES,
                    generate_audio=audio,
                    **extra,
                )
            except BaseException as exc:  # handed to the serving thread below
                result["error"] = exc
            finally:
                streamer.end()  # also ends the stream if chat() never used the streamer

        worker = threading.Thread(target=work, name="interactive-omni-chat", daemon=True)
        worker.start()
        streamed = []
        for piece in streamer:
            if piece and stream_text and not cancel.is_set():
                streamed.append(piece)
                yield TextPiece(piece)
        worker.join()
        if "error" in result:
            raise result["error"]
        text, wav = result["out"] if audio else (result["out"], None)
        if stream_text and not streamed and text and not cancel.is_set():
            yield TextPiece(text)
        return text, wav, len(self.tokenizer(text)["input_ids"]) if text else 0

    def _messages(self, request: Generation, media_dir: Path, speech: bool) -> list[dict[str, Any]]:
        system = instructions(request, SPEECH_SYSTEM_PROMPT if speech else None)
        out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
        for i, message in enumerate(m for m in request.messages if m.role != "system"):
            parts = [_part(p, media_dir / f"{i}-{j}") for j, p in enumerate(message.parts)]
            out.append({"role": message.role, "content": parts})
        return out


def _part(part: TextPart | ImagePart | AudioPart | VideoPart, stem: Path) -> dict[str, Any]:
    """A content part in the model's own format: media as files it reads itself."""
    import cv2

    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, ImagePart):
        path = stem.with_suffix(".png")
        cv2.imwrite(str(path), part.rgb[:, :, ::-1])
        return {"type": "image", "image": str(path)}
    if isinstance(part, AudioPart):
        path = stem.with_suffix(".wav")
        path.write_bytes(wav_bytes(pcm16(part.samples), AUDIO_RATE))
        return {"type": "audio", "audio": str(path)}
    path = stem.with_suffix(".mp4")
    height, width = part.frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 2.0, (width, height))
    for frame in part.frames:
        writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
    writer.release()
    return {"type": "video", "video": str(path)}
