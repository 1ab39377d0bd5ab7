"""The scenario library on a real local Ray (2 CPUs): episodes in their own workers, their
logs and memory files gathered, and a broken or hung episode reported without stopping the
rest."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from omni_agent.cli import main
from omni_agent.config import Config
from omni_agent.errors import UserError
from sim.library import library_paths
from sim.ray_library import gather, library_jobs, run_jobs, start_ray


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    try:
        ray = start_ray(None, 2)
    except UserError as e:
        pytest.skip(f"Ray cannot start here: {e}")
    yield ray
    ray.shutdown()


def _scenario(name: str) -> Path:
    return next(p for p in library_paths() if p.stem == name)


def test_a_failed_and_a_hung_episode_are_reported_and_the_rest_finish(
    local_ray: Any, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: broken\nlines: 7\n")
    config = Config()
    good = [_scenario("person-memory"), _scenario("greeting")]
    jobs = library_jobs(config, [*good, broken], seeds=1, brain="scripted", speed=math.inf,
                        timeout_s=120)  # fmt: skip
    # Real time on a five-day scenario: far longer than its 3 s budget.
    hung = library_jobs(config, [_scenario("long-multiday")], seeds=1, brain="scripted",
                        speed=1.0, timeout_s=3)  # fmt: skip
    outcomes = run_jobs([*jobs, *hung], workers=2)
    assert [o.error for o in outcomes[:2]] == [None, None]
    assert outcomes[2].label == "broken" and outcomes[2].error  # the file is no scenario
    assert outcomes[3].error is not None and "timed out" in outcomes[3].error
    results = gather(outcomes, tmp_path / "out")
    assert [r.scenario for r in results] == ["person-memory", "greeting"]
    assert all(r.passed for r in results)
    assert results[0].memory_probes[0] == results[0].memory_probes[1] > 0
    for r in results:
        assert r.log_path is not None and r.log_path.parent == tmp_path / "out"
        assert r.log_path.stat().st_size > 0
    assert (tmp_path / "out" / "person-memory.memory.db").stat().st_size > 0


def test_sim_all_with_workers_runs_the_library_on_ray(
    local_ray: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["sim", "--all", "--workers", "2", "--brain", "scripted", "--strict",
                 "--out", str(tmp_path)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    n = len(library_paths())
    assert f"{n} episodes on local Ray" in out
    assert "ERROR" not in out
    logs = list(tmp_path.glob("library-*/*.jsonl"))
    assert len(logs) == n


def test_workers_without_all_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--workers", "2", "--brain", "scripted"]) == 2
    assert capsys.readouterr().err.strip() == (
        "omni-agent: error: --workers and --ray run the scenario library: add --all"
    )


def test_a_matrix_runs_each_variant_and_shows_what_memory_is_worth(
    local_ray: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text("full: {}\nno-memory: {memory.budget_tokens: 0}\n")
    args = ["sim", "--all", "--workers", "2", "--brain", "scripted", "--out", str(tmp_path)]
    assert main([*args, "--matrix", str(matrix)]) == 0
    out = capsys.readouterr().out
    full, _, no_memory = out.partition("variant no-memory")
    assert "variant full" in full and "FAIL" not in full
    assert "FAIL" in no_memory  # the memory probes need long-term memory
    n = len(library_paths())
    for name in ("full", "no-memory"):
        assert len(list(tmp_path.glob(f"library-*/{name}/*.jsonl"))) == n
    matrix.write_text("bad: {memory.budget_tokens: -1}\n")
    assert main([*args, "--matrix", str(matrix)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("omni-agent: error: matrix") and "'bad': memory.budget_tokens" in err
