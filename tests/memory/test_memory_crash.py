"""A writer SIGKILLed mid-write leaves a database that opens with every committed turn, on
both backends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from memory_testkit import is_postgres

from memory import Memory
from memory.embeddings import Embedder

WRITER = textwrap.dedent(
    """
    import sys
    from memory import Memory, MemoryTurn
    mem = Memory.open(sys.argv[1])
    i = 0
    while True:
        mem.add_turns([MemoryTurn(id=f"c{i}-{j}", speaker="user", person="alice",
                                  time=1.0e9 + i, text=f"turn {i} part {j} " * 20)
                       for j in range(3)])
        # Printed only after add_turns returned, i.e. after the commit.
        print(f"c{i}", flush=True)
        i += 1
    """
)


def test_sigkill_mid_write_keeps_every_committed_turn(backend_db: str, embedder: Embedder) -> None:
    db = backend_db
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root))
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, db], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    committed = []
    for line in proc.stdout:
        committed.append(line.strip())
        if len(committed) >= 25:
            break
    proc.send_signal(signal.SIGKILL)  # while it is writing the next batch
    proc.wait()
    committed += [line.strip() for line in proc.stdout if line.strip()]

    with Memory.open(db, embedder=embedder) as mem:
        ids = {st.turn.id for st in mem.store.iter_turns()}
        for batch in committed:
            assert {f"{batch}-{j}" for j in range(3)} <= ids
        # Whole batches or nothing: a transaction is never half there.
        batches = {i.rsplit("-", 1)[0] for i in ids}
        assert all({f"{b}-{j}" for j in range(3)} <= ids for b in batches)
        if not is_postgres(db):
            check = mem.store._db.execute("PRAGMA integrity_check")  # type: ignore[attr-defined]
            assert check.fetchone()[0] == "ok"
        assert len(mem.index) == mem.store.stats()["vectors"] == len(ids)
