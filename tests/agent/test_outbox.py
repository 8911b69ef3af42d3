"""The durable outbox: order, persistence across reopen and kill -9, monotonic seq, bounded drop-oldest."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from agent.outbox import Outbox


def payload(seq: int) -> bytes:
    return f"batch-{seq}".encode()


def test_append_pending_ack_in_seq_order(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    seqs = [box.append(payload) for _ in range(5)]
    assert seqs == [0, 1, 2, 3, 4]
    assert [(e.seq, e.payload) for e in box.pending(3)] == [(0, b"batch-0"), (1, b"batch-1"), (2, b"batch-2")]
    assert [e.seq for e in box.pending(10, after=2)] == [3, 4]
    box.ack(1)
    box.ack(1)  # a duplicate PUBACK is harmless
    assert [e.seq for e in box.pending(10)] == [0, 2, 3, 4]
    assert len(box) == 4 and box.bytes == 4 * len(b"batch-0")
    box.close()


def test_reopen_keeps_epoch_order_and_seq(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    epoch = box.epoch
    for _ in range(3):
        box.append(payload)
    box.ack(0)
    box.ack(1)
    box.ack(2)
    box.append(payload)  # seq 3
    box.close()

    box = Outbox(tmp_path / "o.db")
    assert box.epoch == epoch and len(epoch) == 32
    assert [e.seq for e in box.pending()] == [3]
    assert box.append(payload) == 4  # never reuses a seq, even after everything was acked
    box.close()
    assert Outbox(tmp_path / "other.db").epoch != epoch


def test_size_bound_drops_oldest_and_counts(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_bytes=1024)
    for _ in range(10):
        box.append(lambda seq: bytes([seq]) * 300)
    # 300-byte batches under a 1024-byte bound: the newest three stay (900 bytes), seven were dropped.
    assert [e.seq for e in box.pending()] == [7, 8, 9]
    assert box.dropped == 7 and box.bytes == 900
    box.close()
    assert Outbox(tmp_path / "o.db", max_bytes=1024).dropped == 7  # the count survives a restart


def test_age_bound_drops_old_batches(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_age_s=60)
    box.append(payload, now=1000.0)
    box.append(payload, now=1030.0)
    box.append(payload, now=1100.0)  # 1000 is now 100 s old, 1030 is 70 s old: both beyond 60 s
    assert [e.seq for e in box.pending()] == [2] and box.dropped == 2
    box.close()


WRITER = """
import sys
from agent.outbox import Outbox
box = Outbox(sys.argv[1])
seq = 0
while True:
    seq = box.append(lambda s: b"x" * 200 + str(s).encode())
    print(seq, flush=True)
"""


def test_survives_kill_9(tmp_path: Path) -> None:
    """Every seq the writer reported as stored is on disk after SIGKILL, in order, and seq carries on."""
    db = tmp_path / "o.db"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True)
    reported = []
    deadline = time.monotonic() + 30
    while len(reported) < 50 and time.monotonic() < deadline:
        reported.append(int(proc.stdout.readline()))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert len(reported) == 50

    box = Outbox(db)
    stored = [e.seq for e in box.pending(10_000)]
    assert stored[: len(reported)] == reported == list(range(50))
    assert all(e.payload == b"x" * 200 + str(e.seq).encode() for e in box.pending(10_000))
    assert box.append(payload) == stored[-1] + 1
    box.close()
