"""A tiny, randomly initialised Qwen2.5-Omni, built locally with nothing downloaded.

It has every part of the real model (vision and audio encoders, thinker, talker, DiT and
BigVGAN vocoder, processor, chat template, speaker table) at a few MB, so the serving
path runs the real transformers code on a CPU in tests and in `bench serve`. Its words
are random; its shapes, formats and timings per token are the real thing's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VOICE = "Chelsie"
SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|AUDIO|>",
    "<|audio_bos|>",
    "<|audio_eos|>",
    "<|vision_bos|>",
    "<|vision_eos|>",
    "<|IMAGE|>",
    "<|VIDEO|>",
    "<|tts_pad|>",
    "<|tts_bos|>",
    "<|tts_eos|>",
]
# The placeholders the real checkpoint's chat template writes for each part.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n"
    "{% if m.content is string %}{{ m.content }}{% else %}{% for p in m.content %}"
    "{% if p.type == 'text' %}{{ p.text }}"
    "{% elif p.type == 'image' %}<|vision_bos|><|IMAGE|><|vision_eos|>"
    "{% elif p.type == 'audio' %}<|audio_bos|><|AUDIO|><|audio_eos|>"
    "{% elif p.type == 'video' %}<|vision_bos|><|VIDEO|><|vision_eos|>"
    "{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def byte_tokenizer() -> Any:
    """A byte-level tokenizer (256 bytes + the Omni special tokens), as transformers' class."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import Qwen2TokenizerFast

    vocab = {c: i for i, c in enumerate(pre_tokenizers.ByteLevel.alphabet())}
    raw = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.add_special_tokens(SPECIALS)
    return Qwen2TokenizerFast(
        tokenizer_object=raw,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens={
            "image_token": "<|IMAGE|>",
            "audio_token": "<|AUDIO|>",
            "video_token": "<|VIDEO|>",
            "vision_bos_token": "<|vision_bos|>",
            "vision_eos_token": "<|vision_eos|>",
            "audio_bos_token": "<|audio_bos|>",
            "audio_eos_token": "<|audio_eos|>",
        },
    )


def build(path: Path, seed: int = 0, hidden: int = 32) -> Path:
    """Write the tiny model to `path` in the layout of a real checkpoint; returns `path`."""
    import torch
    from transformers import (
        Qwen2_5OmniConfig,
        Qwen2_5OmniForConditionalGeneration,
        Qwen2_5OmniProcessor,
        Qwen2VLImageProcessor,
        WhisperFeatureExtractor,
    )
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    torch.manual_seed(seed)
    tokenizer = byte_tokenizer()
    ids = {s: tokenizer.convert_tokens_to_ids(s) for s in SPECIALS}
    media_ids = {
        "audio_token_index": ids["<|AUDIO|>"],
        "image_token_index": ids["<|IMAGE|>"],
        "video_token_index": ids["<|VIDEO|>"],
        "audio_start_token_id": ids["<|audio_bos|>"],
        "audio_end_token_id": ids["<|audio_eos|>"],
    }
    vision_ids = {
        "vision_start_token_id": ids["<|vision_bos|>"],
        "vision_end_token_id": ids["<|vision_eos|>"],
    }
    rope = {"type": "default", "mrope_section": [1, 1, 2]}  # head_dim 8 -> 4 frequencies
    small_llm = {
        "hidden_size": hidden,
        "intermediate_size": 2 * hidden,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "rope_scaling": rope,
    }
    config = Qwen2_5OmniConfig(
        thinker_config={
            **media_ids,
            **vision_ids,
            "user_token_id": ids["<|im_start|>"],
            "audio_config": {
                "num_mel_bins": 128,
                "encoder_layers": 1,
                "encoder_attention_heads": 2,
                "encoder_ffn_dim": 32,
                "d_model": 16,
                "output_dim": hidden,
            },
            "vision_config": {
                "depth": 2,
                "hidden_size": 16,
                "intermediate_size": 32,
                "num_heads": 2,
                "out_hidden_size": hidden,
                "fullatt_block_indexes": [1],
            },
            "text_config": {
                **small_llm,
                "vocab_size": len(tokenizer),
                "eos_token_id": ids["<|im_end|>"],
                "pad_token_id": ids["<|endoftext|>"],
            },
        },
        talker_config={
            **media_ids,
            **vision_ids,
            **small_llm,
            "vocab_size": 8448,
            "embedding_size": hidden,
            "head_dim": hidden // 4,
            "tts_text_start_token_id": ids["<|tts_bos|>"],
            "tts_text_end_token_id": ids["<|tts_eos|>"],
            "tts_text_pad_token_id": ids["<|tts_pad|>"],
        },
        token2wav_config={
            "dit_config": {
                "num_embeds": 8448,  # random talkers emit any codec id
                "hidden_size": 32,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "head_dim": 16,
                "emb_dim": 16,
                "enc_emb_dim": 16,
                "enc_dim": 16,
                "enc_channels": [16, 16, 16, 16, 48],
                "enc_attention_channels": 8,
                "enc_se_channels": 8,
                "look_ahead_layers": [1],
                "look_backward_layers": [0],
            },
            "bigvgan_config": {
                "upsample_initial_channel": 128,
                "resblock_kernel_sizes": [3],
                "resblock_dilation_sizes": [[1, 3, 5]],
            },
        },
    )
    model = Qwen2_5OmniForConditionalGeneration(config).eval()
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    speakers = {
        VOICE: {
            "bos_token": ids["<|tts_bos|>"],
            "cond": torch.randn(1, 16),
            "ref_mel": torch.randn(1, 30, 80),
        }
    }
    torch.save(speakers, path / "spk_dict.pt")
    image_processor = Qwen2VLImageProcessor()
    feature_extractor = WhisperFeatureExtractor(feature_size=128)
    processor = Qwen2_5OmniProcessor(
        image_processor=image_processor,
        video_processor=Qwen2VLVideoProcessor(),
        feature_extractor=feature_extractor,
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(path)
    # As in the real checkpoint, the image processor and the audio feature extractor share
    # one preprocessor_config.json.
    merged = {
        **image_processor.to_dict(),
        **feature_extractor.to_dict(),
        "processor_class": "Qwen2_5OmniProcessor",
    }
    (path / "preprocessor_config.json").write_text(json.dumps(merged, indent=2))
    return path
