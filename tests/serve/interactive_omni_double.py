"""Builds a model folder holding the InteractiveOmni TEST DOUBLE (see its code file)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

CODE = Path(__file__).with_name("interactive_omni_double_code.py")


def build_double(
    path: Path, reply: str = "Hello there.", json_reply: str | None = None, delay_s: float = 0.0
) -> Path:
    import torch
    from safetensors.torch import save_file

    from serve.tiny_model import byte_tokenizer

    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(CODE, path / "modeling_double.py")
    config = {
        "model_type": "interactive_omni_double",
        "architectures": ["InteractiveOmniDouble"],
        "auto_map": {
            "AutoConfig": "modeling_double.InteractiveOmniDoubleConfig",
            "AutoModel": "modeling_double.InteractiveOmniDouble",
        },
        "reply": reply,
        "json_reply": json_reply,
        "token_delay_s": delay_s,
    }
    (path / "config.json").write_text(json.dumps(config))
    save_file({"anchor": torch.zeros(1)}, path / "model.safetensors", metadata={"format": "pt"})
    tokenizer = byte_tokenizer()
    tokenizer.save_pretrained(path)
    return path
