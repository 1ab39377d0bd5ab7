"""TEST DOUBLE of InteractiveOmni's Hugging Face remote code (no weights, no network).

It is loaded the way the real model is, through `trust_remote_code` from a local folder,
and follows only the model card's documented interface: `chat(tokenizer,
generation_config, messages, max_num, frame, generate_audio=..., speaker_embedding=...)`
with media as file paths, returning text, or `(text, waveform)` at 24 kHz with
`generate_audio=True`; `default_speaker_embedding`; `extract_speaker_embedding(wav_path)`.
Like InternVL-style `chat()`, it hands `generation_config` on to decoding, so a streamer
and stopping criteria in it are honoured. Its answer is scripted by its config.
"""

import math
import os
import time

import torch
from transformers import PretrainedConfig, PreTrainedModel

SPEECH_PROMPT = (
    "You are a highly advanced multimodal conversational AI designed for human-like "
    "interaction. You can perceive auditory, visual, speech, and textual inputs, and "
    "generate text and speech."
)


class InteractiveOmniDoubleConfig(PretrainedConfig):
    model_type = "interactive_omni_double"

    def __init__(self, reply="Hello there.", json_reply=None, token_delay_s=0.0, **kwargs):
        self.reply = reply
        self.json_reply = json_reply
        self.token_delay_s = token_delay_s
        super().__init__(**kwargs)


class InteractiveOmniDouble(PreTrainedModel):
    config_class = InteractiveOmniDoubleConfig

    def __init__(self, config):
        super().__init__(config)
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.default_speaker_embedding = torch.zeros(192)
        self.calls = []

    def _init_weights(self, module):
        pass

    def extract_speaker_embedding(self, path):
        if not os.path.isfile(path):
            raise FileNotFoundError(path)
        return torch.ones(192)

    def chat(
        self,
        tokenizer,
        generation_config,
        messages,
        max_num=12,
        frame=8,
        generate_audio=False,
        speaker_embedding=None,
    ):
        for message in messages:
            if isinstance(message["content"], list):
                for part in message["content"]:
                    kind = part["type"]
                    if kind != "text" and not os.path.isfile(part[kind]):
                        raise FileNotFoundError(part[kind])
        system = messages[0]["content"] if messages[0]["role"] == "system" else ""
        if generate_audio and not system.startswith(SPEECH_PROMPT):
            raise ValueError("speech needs the documented system prompt")
        self.calls.append(
            {
                "messages": messages,
                "max_num": max_num,
                "frame": frame,
                "generate_audio": generate_audio,
                "speaker_embedding": speaker_embedding,
                "config": sorted(generation_config),
            }
        )
        last = messages[-1]["content"]
        last = (
            last
            if isinstance(last, str)
            else " ".join(p.get("text", "") for p in last if p["type"] == "text")
        )
        if last.startswith("Say exactly this and nothing else: "):
            reply = last.split(": ", 1)[1]
        elif "JSON schema" in system and self.config.json_reply:
            reply = self.config.json_reply
        else:
            reply = self.config.reply
        streamer = generation_config.get("streamer")
        stop = generation_config.get("stopping_criteria")
        ids = tokenizer(reply)["input_ids"][: generation_config.get("max_new_tokens", 1024)]
        if streamer is not None:
            streamer.put(torch.tensor([[0]]))  # the prompt, skipped by skip_prompt streamers
        out = []
        for token in ids:
            out.append(token)
            if streamer is not None:
                streamer.put(torch.tensor([token]))
            if stop is not None and bool(stop(torch.tensor([out]), None).any()):
                break
            time.sleep(self.config.token_delay_s)
        if streamer is not None:
            streamer.end()
        self.calls[-1]["emitted"] = len(out)
        text = tokenizer.decode(out, skip_special_tokens=True)
        if not generate_audio:
            return text
        seconds = 0.06 * max(1, len(text))
        t = torch.arange(int(24000 * seconds)) / 24000
        return text, 0.3 * torch.sin(2 * math.pi * 220 * t)
