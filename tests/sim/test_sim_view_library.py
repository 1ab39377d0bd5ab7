"""`omni-agent sim --all --view` draws every episode of the library."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

import sim.library
from omni_agent.cli import main
from sim.scenario import Scenario


def test_view_with_all_writes_one_gif_per_episode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    two = [Scenario.load(Path(f"sim/scenarios/{name}.yaml")) for name in ("greeting", "navigation")]
    monkeypatch.setattr(sim.library, "load_library", lambda: two)  # the library, shortened
    code = main(["sim", "--all", "--brain", "scripted", "--view", "--out", str(tmp_path)])
    assert code == 0
    gifs = sorted(tmp_path.glob("library-*/*.gif"))
    assert [g.name for g in gifs] == ["greeting.gif", "navigation.gif"]
    frames = {}
    for gif in gifs:
        with Image.open(gif) as image:
            frames[gif.stem] = image.n_frames
    # a frame per line, reply and action: three lines each, and navigation also drives
    assert frames["greeting"] > 6 and frames["navigation"] > frames["greeting"]
