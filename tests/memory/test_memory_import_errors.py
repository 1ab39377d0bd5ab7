"""Every bad import file ends `memory import` with one line, exit 2, and nothing imported.

A file a researcher hands over may hold anything: bytes that are not UTF-8, a time that is
no date, a lone surrogate, JSON nested past any turn, or a media path pointing at a
system file. None of them may leave a traceback, a half-written store, or a copied file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from memory_testkit import is_postgres

from memory.backends import open_store
from memory.cli import main

GOOD = {"id": "g1", "speaker": "user", "person": "ana", "time": 1.7e9, "text": "Hello there."}


def _line(**changes: object) -> bytes:
    return json.dumps({**GOOD, "id": "bad", **changes}).encode()


def _file(tmp: Path, body: bytes) -> Path:
    # A good line first: a bad second line must also keep the first out of the store.
    path = tmp / "in.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + body + b"\n")
    return path


def _outside(tmp: Path) -> Path:
    secret = tmp / "elsewhere" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("not for the store")
    folder = tmp / "corpus"
    folder.mkdir()
    path = folder / "in.jsonl"
    path.write_bytes(_line(image_path=str(secret)) + b"\n")
    return path


def _symlink_out(tmp: Path) -> Path:
    folder = tmp / "corpus"
    folder.mkdir()
    (folder / "frame.jpg").symlink_to("/etc/hostname")
    path = folder / "in.jsonl"
    path.write_bytes(_line(image_path="frame.jpg") + b"\n")
    return path


def _dotdot(tmp: Path) -> Path:
    folder = tmp / "corpus"
    folder.mkdir()
    path = folder / "in.jsonl"
    path.write_bytes(_line(audio_path="../../../../../../etc/hostname") + b"\n")
    return path


def _directory(tmp: Path) -> Path:
    (tmp / "a-folder").mkdir()
    return tmp / "a-folder"


CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "bad utf-8": (lambda t: _file(t, b'{"id": "x", "text": "caf\xe9"}'), "in.jsonl:2: not UTF-8"),
    "empty id": (lambda t: _file(t, _line(id="")), "in.jsonl:2: id:"),
    "NaN time": (lambda t: _file(t, _line().replace(b"1700000000.0", b"NaN")), "in.jsonl:2: time:"),
    "Infinity time": (
        lambda t: _file(t, _line().replace(b"1700000000.0", b"Infinity")),
        "in.jsonl:2: time:",
    ),
    "year past 9999": (lambda t: _file(t, _line(time=2.6e11)), "years 1 and 9999"),
    "ISO year past 9999": (lambda t: _file(t, _line(time="10000-01-01T00:00:00")), "time:"),
    "NaN in the pose": (
        lambda t: _file(t, _line(pose={"x": 1.0, "y": 2.0}).replace(b"2.0", b"NaN")),
        "in.jsonl:2: pose",
    ),
    "lone surrogate": (
        lambda t: _file(t, _line(text="PLACEHOLDER").replace(b"PLACEHOLDER", b"\\udc00")),
        "lone surrogate",
    ),
    "deep nesting": (lambda t: _file(t, b"[" * 100_000 + b"]" * 100_000), "nested too deeply"),
    "missing file": (lambda t: t / "nope.jsonl", "nope.jsonl: no such file"),
    "a directory": (_directory, "is a directory"),
    "media outside the folder": (_outside, "outside the allowed media folder"),
    "media symlink out of the folder": (_symlink_out, "outside the allowed media folder"),
    "media path with ..": (_dotdot, "outside the allowed media folder"),
    "turn time missing, no session date": (
        lambda t: _file(t, _line(time=None).replace(b', "time": null', b"")),
        "time: missing",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_a_bad_import_file_is_one_line_exit_2_and_nothing_imported(
    case: str, backend_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make, expected = CASES[case]
    src = make(tmp_path)
    code = main(["memory", "--db", backend_db, "import", str(src)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and err.startswith("python -m memory: error: ")
    assert expected in err and "nothing was imported" in err
    if is_postgres(backend_db):
        store = open_store(backend_db)
        assert store.stats()["turns"] == 0
        store.close()
    else:  # the file is checked before the database is opened: no store, no copied media
        assert not Path(backend_db).exists() and not (tmp_path / "robot.media").exists()


def test_media_inside_a_named_media_root_is_imported_and_copied(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # SQLite only: it copies media into its folder (a fleet's database keeps references).
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "mug.jpg").write_bytes(b"a mug")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    src = corpus / "in.jsonl"
    src.write_bytes(_line(image_path=str(frames / "mug.jpg"), image_caption="a mug") + b"\n")
    db = str(tmp_path / "robot.db")
    assert main(["memory", "--db", db, "import", str(src)]) == 2  # outside corpus/
    capsys.readouterr()
    assert main(["memory", "--db", db, "import", str(src), "--media-root", str(frames)]) == 0
    capsys.readouterr()
    assert main(["memory", "--db", db, "show", "bad"]) == 0
    stored = Path(json.loads(capsys.readouterr().out)["image_path"])
    assert stored.is_relative_to(tmp_path / "robot.media")
    assert stored.read_bytes() == b"a mug"
