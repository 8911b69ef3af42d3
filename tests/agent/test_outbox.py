"""The durable outbox: order, persistence across reopen and kill -9, monotonic seq, bounded drop-oldest."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent import outbox as outbox_module
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


def test_age_bound_walks_oldest_first_and_counts_by_reason(tmp_path: Path) -> None:
    """A long outage: hour-old batches go by age, then the size bound trims what is left; both counted."""
    box = Outbox(tmp_path / "o.db", max_bytes=2000, max_age_s=3600)
    for i in range(5):
        box.append(lambda seq: bytes([seq]) * 300, now=1000.0 + i)  # 1000..1004
    assert box.dropped == 0 and len(box) == 5 and box.oldest_created() == 1000.0
    box.append(lambda seq: bytes([seq]) * 300, now=4601.5)  # 1000, 1001 are over an hour old; 1002 is not
    assert [e.seq for e in box.pending()] == [2, 3, 4, 5]
    assert box.dropped_by_reason() == {"max_bytes": 0, "max_age": 2}
    for _ in range(4):
        box.append(lambda seq: bytes([seq]) * 300, now=4602.0)
    # 8 × 300 bytes against 2000: the oldest two (seq 2 and 3) make room, by size this time.
    assert [e.seq for e in box.pending()] == [4, 5, 6, 7, 8, 9]
    assert box.dropped_by_reason() == {"max_bytes": 2, "max_age": 2} and box.dropped == 4
    assert (len(box), box.bytes, box.oldest_created()) == (6, 1800, 1004.0)
    box.close()
    again = Outbox(tmp_path / "o.db")
    assert again.dropped_by_reason() == {"max_bytes": 2, "max_age": 2} and again.dropped == 4
    assert (len(again), again.bytes) == (6, 1800)  # counts rebuilt from the file
    again.close()


def test_the_newest_batch_is_kept_even_when_too_old_or_too_big(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_bytes=1024, max_age_s=10)
    box.append(lambda seq: b"x" * 5000, now=0.0)  # alone above max_bytes
    assert [e.seq for e in box.pending()] == [0]
    box.append(payload, now=100.0)  # seq 0 is too old and too big: it goes, the new one stays
    assert [e.seq for e in box.pending()] == [1] and box.dropped == 1
    box.ack(1)
    assert len(box) == 0 and box.bytes == 0 and box.oldest_created() is None
    box.close()


def test_bounds_can_change_while_open(tmp_path: Path) -> None:
    """A config reload lowers the bounds on the live outbox; they apply at the next append."""
    box = Outbox(tmp_path / "o.db")
    for _ in range(10):
        box.append(lambda seq: b"y" * 500)
    box.max_bytes = 1024
    box.append(lambda seq: b"y" * 500)
    assert [e.seq for e in box.pending()] == [9, 10] and box.dropped_by_reason()["max_bytes"] == 9
    box.close()


class Warnings(list):
    """Stands in for the outbox's logger: records warnings, whatever structlog's configuration."""

    def warning(self, event: str, **fields: object) -> None:
        self.append({"event": event, **fields})


def test_drop_warnings_are_summed_up_not_one_per_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At the bound every append drops one batch; the log gets one warning, then a sum per minute."""
    warnings = Warnings()
    monkeypatch.setattr(outbox_module, "log", warnings)
    box = Outbox(tmp_path / "o.db", max_bytes=1024)
    for _ in range(20):
        box.append(lambda seq: b"z" * 300)
    box.close()  # closing reports what is not yet logged
    assert [(w["count"], w["first_seq"], w["last_seq"]) for w in warnings] == [(1, 0, 0), (16, 1, 16)]
    assert warnings[-1]["dropped_total"] == 17 and warnings[-1]["reason"] == "max_bytes"
    assert {w["event"] for w in warnings} == {"outbox full: dropped oldest batches"}
