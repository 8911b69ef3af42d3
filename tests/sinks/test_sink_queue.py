"""SqliteSinkQueue: order, durability across reopen, the row bound, dead letters."""

from __future__ import annotations

import sqlite3

import pytest

from collector.sinks.sink_queue import SqliteSinkQueue


def test_lines_come_out_oldest_first_until_removed(tmp_path):
    queue = SqliteSinkQueue(tmp_path / "q.sqlite")
    queue.append([f"m v={i}.0 {i}" for i in range(10)])
    first = queue.peek(4)
    assert [line for _, line in first] == ["m v=0.0 0", "m v=1.0 1", "m v=2.0 2", "m v=3.0 3"]
    assert queue.peek(4) == first  # peek does not consume
    queue.remove([item_id for item_id, _ in first])
    assert [line for _, line in queue.peek(100)] == [f"m v={i}.0 {i}" for i in range(4, 10)]
    assert queue.depth() == 6


def test_queue_survives_reopen(tmp_path):
    path = tmp_path / "q.sqlite"
    queue = SqliteSinkQueue(path)
    queue.append(["a v=1.0 1", "b v=2.0 2", "c v=3.0 3"])
    queue.remove([queue.peek(1)[0][0]])
    queue.close()
    reopened = SqliteSinkQueue(path)
    assert (reopened.depth(), [line for _, line in reopened.peek(10)]) == (2, ["b v=2.0 2", "c v=3.0 3"])


def test_bound_drops_oldest_and_counts(tmp_path):
    queue = SqliteSinkQueue(tmp_path / "q.sqlite", max_rows=10)
    for start, stop in ((0, 8), (8, 16), (16, 25)):
        queue.append([f"m v=1.0 {i}" for i in range(start, stop)])
    assert queue.dropped == 15
    assert queue.depth() == 10
    assert [line for _, line in queue.peek(100)] == [f"m v=1.0 {i}" for i in range(15, 25)]


def test_dead_letters_leave_the_queue_with_their_reason(tmp_path):
    queue = SqliteSinkQueue(tmp_path / "q.sqlite")
    queue.append(["good v=1.0 1", "bad v=x 2", "good v=2.0 3"])
    bad = queue.peek(3)[1]
    queue.dead_letter([bad], "HTTP 400: unable to parse")
    assert queue.depth() == 2
    letters = queue.dead_letters()
    assert [(d.id, d.line, d.reason) for d in letters] == [(bad[0], "bad v=x 2", "HTTP 400: unable to parse")]


def test_removing_many_and_vanished_ids_keeps_depth_right(tmp_path):
    queue = SqliteSinkQueue(tmp_path / "q.sqlite", max_rows=20_000)
    queue.append([f"m v=1.0 {i}" for i in range(15_000)])
    ids = [item_id for item_id, _ in queue.peek(12_000)]
    queue.remove(ids)
    queue.remove(ids[:10])  # already gone: nothing more to subtract
    assert queue.depth() == 3_000
    assert queue.peek(1)[0][1] == "m v=1.0 12000"


def test_a_partly_delivered_group_keeps_its_place_across_a_restart(tmp_path):
    """One append is one stored chunk; what was removed of it stays removed after a reopen."""
    path = tmp_path / "spill.sqlite"
    queue = SqliteSinkQueue(path)
    queue.append([f"m v={i}.0 {i}" for i in range(6)])
    queue.append(["n v=1.0 1"])
    taken = queue.peek(4)
    queue.remove([taken[0][0], taken[2][0]])  # lines 0 and 2 delivered, 1 and 3 not (a bisected write)
    queue.close()
    reopened = SqliteSinkQueue(path)
    # 7 appended − 2 removed = 5 waiting, oldest first.
    assert reopened.depth() == 5
    assert [line for _, line in reopened.peek(10)] == [
        "m v=1.0 1", "m v=3.0 3", "m v=4.0 4", "m v=5.0 5", "n v=1.0 1",
    ]  # fmt: skip
    reopened.remove([item_id for item_id, _ in reopened.peek(4)])
    assert [line for _, line in reopened.peek(10)] == ["n v=1.0 1"]  # the first chunk is gone


def test_a_queue_file_of_one_row_per_line_is_adopted_in_order(tmp_path):
    """The layout before chunks: its waiting lines are delivered, none lost."""
    path = tmp_path / "spill.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE pending (id INTEGER PRIMARY KEY AUTOINCREMENT, line TEXT NOT NULL)")
    db.executemany("INSERT INTO pending (line) VALUES (?)", [("a v=1.0 1",), ("b v=2.0 2",)])
    db.commit()
    db.close()
    queue = SqliteSinkQueue(path)
    queue.append(["c v=3.0 3"])
    assert [line for _, line in queue.peek(10)] == ["a v=1.0 1", "b v=2.0 2", "c v=3.0 3"]


def test_a_line_with_a_newline_is_refused(tmp_path):
    queue = SqliteSinkQueue(tmp_path / "spill.sqlite")
    with pytest.raises(ValueError, match="newline"):
        queue.append(["m v=1.0 1\nm v=2.0 2"])
    assert queue.depth() == 0
