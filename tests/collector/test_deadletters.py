"""The dead-letter store: byte and count caps with oldest-first eviction counted by reason, cut payloads, a
flood that stays within its cap, restarts, threads and another process; and ``kilnwatch collector
deadletter list|show|purge|replay`` on a real file.

A letter's size against the byte cap is its payload kept + topic + detail (UTF-8); every expected value
below is worked out from that rule.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from typer.testing import CliRunner

from agent import wire
from agent.cli import app
from collector.ingest.deadletters import DeadLetters, Reject, store_path

REPO = Path(__file__).resolve().parents[2]
SITE = REPO / "deploy" / "demo" / "site.toml"
TOPIC = "kw/s/a/data"  # 11 bytes
ROOMY = 1 << 30  # a cap that never binds


def test_count_cap_evicts_oldest_first_and_counts_by_reason(tmp_path: Path) -> None:
    store = DeadLetters(tmp_path / "dl.sqlite", max_bytes=ROOMY, max_count=5)
    reasons = ["a", "b", "a", "c", "a", "b", "a", "c"]
    for i, reason in enumerate(reasons):
        store.add(f"t/{i}", reason, "d", b"x")
    stats = store.stats()
    # 8 letters, room for 5: letters 0, 1, 2 (a, b, a) go; 3..7 (c, a, b, a, c) stay.
    assert stats.count == 5
    assert stats.evicted == 3
    assert stats.evicted_by_reason == {"a": 2, "b": 1}
    assert stats.by_reason == {"a": 2, "b": 1, "c": 2}
    assert [d.topic for d in store.list()] == ["t/7", "t/6", "t/5", "t/4", "t/3"]  # newest first
    assert stats.bytes == 5 * (3 + 1 + 1)  # topic "t/i" 3 bytes, detail 1, payload 1
    store.close()


def test_byte_cap_evicts_only_as_many_oldest_as_needed(tmp_path: Path) -> None:
    store = DeadLetters(tmp_path / "dl.sqlite", max_bytes=400, max_count=1000)
    # Sizes: 11 (topic) + 1 (detail) + payload → 312, 62, 62, 212.
    # After 1: 312. After 2: 374. After 3: 436 > 400 → evict letter 1 → 124. After 4: 336.
    for reason, n in (("big", 300), ("small", 50), ("small", 50), ("mid", 200)):
        store.add(TOPIC, reason, "d", bytes(n))
    stats = store.stats()
    assert (stats.count, stats.bytes, stats.evicted, stats.evicted_by_reason) == (3, 336, 1, {"big": 1})
    assert [d.size for d in store.list()] == [200, 50, 50]
    store.close()


def test_a_payload_larger_than_the_cap_keeps_a_prefix_and_its_size(tmp_path: Path) -> None:
    store = DeadLetters(tmp_path / "dl.sqlite", max_bytes=1000, max_count=1000)
    store.add(TOPIC, "early", "d", b"e" * 100)
    payload = os.urandom(5000)
    store.add(TOPIC, "oversized", "0123456789", payload)
    # 1000 - 11 (topic) - 10 (detail) = 979 bytes of payload fit; the earlier letter (112) has to go.
    [letter] = store.list()
    assert (letter.size, letter.truncated, letter.kept, letter.bytes) == (5000, True, 979, 1000)
    found = store.get(letter.id)
    assert found is not None and found[1] == payload[:979]
    stats = store.stats()
    assert (stats.count, stats.bytes, stats.evicted_by_reason) == (1, 1000, {"early": 1})
    store.close()


def test_a_letter_whose_topic_and_detail_pass_the_cap_is_counted_not_kept(tmp_path: Path) -> None:
    store = DeadLetters(tmp_path / "dl.sqlite", max_bytes=16, max_count=10)
    store.add(TOPIC, "tiny", "d", b"")  # 12 bytes: kept
    store.add(TOPIC, "wordy", "0123456789", b"")  # 21 bytes alone > 16
    stats = store.stats()
    assert (stats.count, stats.evicted_by_reason) == (1, {"wordy": 1})
    assert store.list()[0].reason == "tiny"
    store.close()


def test_a_group_writes_only_what_fits_in_one_transaction(tmp_path: Path) -> None:
    store = DeadLetters(tmp_path / "dl.sqlite", max_bytes=ROOMY, max_count=4)
    store.add(TOPIC, "before", "d", b"0")
    group = [Reject(f"g/{i}", "odd" if i % 2 else "even", "d", b"1", 1_000 + i) for i in range(10)]
    store.add_many(group)
    # The group's 10 plus the 1 before, room for 4: g/6..g/9 stay; "before" and g/0..g/5 (3 even, 3 odd) go.
    stats = store.stats()
    assert stats.evicted_by_reason == {"before": 1, "even": 3, "odd": 3}
    letters = store.list()
    assert [d.topic for d in letters] == ["g/9", "g/8", "g/7", "g/6"]
    assert [d.received_ms for d in letters] == [1009, 1008, 1007, 1006]
    # g/0..g/5 were never written: the ids go on from "before" (1) with g/6 as 2.
    assert [d.id for d in letters] == [5, 4, 3, 2]
    store.close()


def file_sizes(db: Path) -> tuple[int, int]:
    """The database file's size and its WAL's."""
    wal = db.with_name(db.name + "-wal")
    return db.stat().st_size, wal.stat().st_size if wal.exists() else 0


def test_a_flood_of_2000_quarter_mebibytes_stays_within_the_cap(tmp_path: Path) -> None:
    cap = 8 * 1024 * 1024
    path = tmp_path / "dl.sqlite"
    store = DeadLetters(path, max_bytes=cap, max_count=10_000)
    junk = os.urandom(256 * 1024)
    meta = len(TOPIC) + len("not JSON")
    fit = cap // (len(junk) + meta)  # 8 MiB // (256 KiB + 19) = 31 (32 would need 608 bytes more)
    assert fit == 31
    largest_db = largest_wal = 0
    started = time.monotonic()
    with capture_logs() as logs:
        for _ in range(2000):
            store.add(TOPIC, "not_json", "not JSON", junk)
            assert store.stats().bytes <= cap
            db, wal = file_sizes(path)
            largest_db, largest_wal = max(largest_db, db), max(largest_wal, wal)
    elapsed = time.monotonic() - started
    stats = store.stats()
    assert (stats.count, stats.bytes, stats.evicted) == (fit, fit * (len(junk) + meta), 2000 - fit)
    # 500 MiB went through; the file held the cap (evicted pages are reused in place) and the WAL less
    # than one cap more (it is checkpointed every 1000 pages, 4 MiB). 256 KiB is room for the b-tree.
    assert largest_db <= cap + 256 * 1024
    assert largest_wal <= cap + 256 * 1024
    # One eviction warning per minute, not one per message.
    warnings = [e for e in logs if e["event"] == "deadletters.evicted_oldest"]
    assert 1 <= len(warnings) <= 1 + elapsed / 60
    assert warnings[0]["evicted"] == {"not_json": 1}
    store.close()


def test_a_flood_in_groups_writes_no_more_than_the_cap_per_group(tmp_path: Path) -> None:
    cap = 8 * 1024 * 1024
    path = tmp_path / "dl.sqlite"
    store = DeadLetters(path, max_bytes=cap, max_count=10_000)
    junk = os.urandom(256 * 1024)
    fit = cap // (len(junk) + len(TOPIC) + len("not JSON"))  # 31, as above
    largest_db = largest_wal = 0
    for _ in range(20):
        store.add_many([Reject(TOPIC, "not_json", "not JSON", junk)] * 100)  # 25 MiB a group
        db, wal = file_sizes(path)
        largest_db, largest_wal = max(largest_db, db), max(largest_wal, wal)
    stats = store.stats()
    assert (stats.count, stats.evicted) == (fit, 2000 - fit)
    # A group's first 69 letters are never written; its last 31 take the pages of the 31 they evict, and
    # the WAL holds one group's writes: the cap, not the group's 25 MiB.
    assert largest_db <= cap + 256 * 1024
    assert largest_wal <= cap + 256 * 1024
    store.close()


def test_a_restart_keeps_letters_and_counts(tmp_path: Path) -> None:
    path = tmp_path / "dl.sqlite"
    store = DeadLetters(path, max_bytes=ROOMY, max_count=3)
    for reason in ("a", "a", "b", "b", "c"):
        store.add(TOPIC, reason, "d", b"x")
    before = store.stats()
    store.close()
    store = DeadLetters(path, max_bytes=ROOMY, max_count=3)
    assert store.stats() == before
    assert (before.count, before.evicted_by_reason) == (3, {"a": 2})
    store.add(TOPIC, "c", "d", b"x")  # evicts the oldest left, a "b"
    after = store.stats()
    assert (after.count, after.evicted, after.evicted_by_reason) == (3, 3, {"a": 2, "b": 1})
    assert after.by_reason == {"b": 1, "c": 2}
    store.close()


def test_a_lower_cap_at_restart_evicts_down_to_it_at_the_next_add(tmp_path: Path) -> None:
    path = tmp_path / "dl.sqlite"
    store = DeadLetters(path, max_bytes=ROOMY, max_count=10)
    for _ in range(10):
        store.add(TOPIC, "a", "d", b"x")
    store.close()
    store = DeadLetters(path, max_bytes=ROOMY, max_count=4)
    store.add(TOPIC, "b", "d", b"x")  # 11 letters, room for 4: seven "a" go
    stats = store.stats()
    assert (stats.count, stats.evicted_by_reason, stats.by_reason) == (4, {"a": 7}, {"a": 3, "b": 1})
    store.close()


def test_stats_while_another_thread_adds(tmp_path: Path) -> None:
    store = DeadLetters(tmp_path / "dl.sqlite", max_bytes=ROOMY, max_count=50)
    total = 1000
    done = threading.Event()
    seen: list[tuple[int, int]] = []
    problems: list[BaseException] = []

    def write() -> None:
        try:
            for i in range(total):
                store.add(TOPIC, "odd" if i % 2 else "even", "d", b"x" * 100)
        except BaseException as exc:
            problems.append(exc)
        finally:
            done.set()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        while not done.is_set():
            s = store.stats()
            seen.append((s.count, s.evicted))
            # One committed state each time: what is kept and what was evicted add up to what was added.
            assert s.count <= 50 and s.count == sum(s.by_reason.values())
            assert s.evicted == sum(s.evicted_by_reason.values())
            assert len(store.list(limit=50)) <= 50
    finally:
        writer.join(timeout=120)
    assert not problems
    assert len(seen) > 1
    added = [c + e for c, e in seen]
    assert added == sorted(added) and added[-1] <= total
    final = store.stats()
    assert (final.count, final.evicted, final.evicted_by_reason) == (50, 950, {"even": 475, "odd": 475})
    store.close()


def test_a_purge_by_another_process_is_seen_by_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "dl.sqlite"
    collector = DeadLetters(path, max_bytes=ROOMY, max_count=5)
    for reason in ("a", "b", "a", "b", "a"):
        collector.add(TOPIC, reason, "d", b"x")
    operator = DeadLetters(path, max_bytes=ROOMY, max_count=5)  # the CLI's own connection
    assert operator.purge(reason="a") == 3
    assert collector.stats().by_reason == {"b": 2}
    for _ in range(3):
        collector.add(TOPIC, "c", "d", b"x")  # 5 letters: room for all, nothing evicted
    stats = collector.stats()
    assert (stats.count, stats.evicted, stats.by_reason) == (5, 0, {"b": 2, "c": 3})
    operator.close()
    collector.close()


def test_remove_and_purge_by_reason_and_time_and_the_space_comes_back(tmp_path: Path) -> None:
    path = tmp_path / "dl.sqlite"
    store = DeadLetters(path, max_bytes=ROOMY, max_count=100)
    for i in range(8):
        store.add(TOPIC, "old" if i < 4 else "new", "d", os.urandom(256 * 1024), received_ms=1000 * i)
    ids = store.ids()
    assert store.remove([ids[0], ids[1], 999]) == 2
    assert store.count(before_ms=3000) == 1  # received at 0, 1000, 2000 → 2000 is left
    assert store.purge(before_ms=3000) == 1
    assert store.purge(reason="old") == 1  # the one at 3000
    assert store.stats().by_reason == {"new": 4}
    assert store.purge() == 4
    stats = store.stats()
    assert (stats.count, stats.bytes, stats.evicted) == (0, 0, 0)  # purged is not evicted
    store.close()
    # 2 MiB went in; with the pages given back the file is a few pages again (the schema: under 64 KiB).
    assert path.stat().st_size < 64 * 1024


def test_store_path_is_beside_the_ledger(tmp_path: Path) -> None:
    assert store_path(tmp_path / "ledger.sqlite") == tmp_path / "ledger.sqlite.deadletters.sqlite"


def test_caps_below_one_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        DeadLetters(tmp_path / "dl.sqlite", max_bytes=0, max_count=10)


# -- the command line ------------------------------------------------------------------------------------


def write_config(tmp_path: Path, site_model: Path = SITE) -> Path:
    config = tmp_path / "collector.toml"
    config.write_text(
        f'[collector]\nsite_model = "{site_model.as_posix()}"\nledger = "var/ledger.sqlite"\n'
        "deadletter_max_bytes = 1000\ndeadletter_max_count = 100\n",
        encoding="utf-8",
    )
    return config


def store_for(tmp_path: Path) -> DeadLetters:
    """The store the commands open for ``write_config``'s file."""
    return DeadLetters(store_path(tmp_path / "var" / "ledger.sqlite"), max_bytes=1000, max_count=100)


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(app, ["collector", "deadletter", *args], input=input, env={"COLUMNS": "200"})


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def shown_time(line: str) -> datetime:
    """The receive time a ``list`` row shows (ISO with an offset), read back."""
    match = re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", line)
    assert match, line
    return datetime.fromisoformat(match.group())


def test_list_shows_the_newest_letters_and_the_totals(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    store = store_for(tmp_path)
    store.add(TOPIC, "oversized", "d", bytes(2000), ms("2026-12-01T10:00:00+00:00"))
    result = run("list", str(config))
    assert result.exit_code == 0, result.output
    # 2000 bytes, of which 1000 - 11 (topic) - 1 (detail) = 988 kept: the letter fills the byte cap.
    [row] = [line for line in result.stdout.splitlines() if "oversized" in line]
    assert "2000 (kept 988)" in row
    assert shown_time(row) == datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    assert "1 shown of 1 kept (1000 bytes); evicted 0" in result.stdout

    store.add("kilnwatch/v1/demo-plant/x/data", "unknown_agent", "agent 'x' is not in the site model", b"{}",
              ms("2026-12-01T08:00:00+00:00"))  # fmt: skip
    store.add("kilnwatch/v1/demo-plant/kiln-gw/data", "not_json", "[bold]no[/bold]", b"{",
              ms("2026-12-01T09:30:00+00:00"))  # fmt: skip
    store.close()
    result = run("list", str(config))
    lines = result.stdout.splitlines()
    # Sizes: 30 (topic) + 34 (detail) + 2 = 66 and 36 + 15 + 1 = 52. The first pushed the total to 1066, so
    # the oversized letter went; 66 + 52 = 118 bytes are kept.
    assert "2 shown of 2 kept (118 bytes); evicted 1 (oversized 1)" in result.stdout
    row_agent = next(line for line in lines if "unknown_agent" in line)
    row_json = next(line for line in lines if "not_json" in line)
    assert lines.index(row_json) < lines.index(row_agent)  # newest first: by arrival, not by stamp
    assert "[bold]no[/bold]" in row_json  # shown as written, not as markup
    assert "agent 'x' is not in the site model" in row_agent and "kilnwatch/v1/demo-plant/x/data" in row_agent
    assert shown_time(row_json) == datetime(2026, 12, 1, 9, 30, tzinfo=UTC)

    only = run("list", str(config), "--reason", "not_json")
    assert "not_json" in only.stdout and "unknown_agent" not in only.stdout and "1 shown of 2" in only.stdout
    newest = run("list", str(config), "--limit", "1")
    assert "not_json" in newest.stdout and "unknown_agent" not in newest.stdout


def test_list_without_a_store_says_so_and_creates_none(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = run("list", str(config))
    assert result.exit_code == 0
    assert "no dead letters" in result.stderr and "ledger.sqlite.deadletters.sqlite" in result.stderr
    assert run("purge", str(config), "--yes").exit_code == 0
    assert run("replay", str(config), "--all").exit_code == 0
    shown = run("show", str(config), "1")
    assert shown.exit_code == 1 and "no dead letter 1" in shown.stderr
    assert not store_path(tmp_path / "var" / "ledger.sqlite").exists()


def test_a_bad_config_names_file_and_key(tmp_path: Path) -> None:
    config = write_config(tmp_path, site_model=tmp_path / "missing.toml")
    result = run("list", str(config))
    assert result.exit_code == 2
    assert str(config) in result.stderr and "collector.site_model" in result.stderr


def test_show_prints_text_or_a_hex_dump_and_raw_writes_the_bytes(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    store = store_for(tmp_path)
    store.add(TOPIC, "schema", "missing 'rows'", '{"v": 1, "ünits": "kWh"}'.encode())
    binary = bytes(range(20))
    store.add(TOPIC, "not_json", "not UTF-8", binary)
    store.close()

    text = run("show", str(config), "1")
    assert text.exit_code == 0
    assert "reason:   schema" in text.stdout and "detail:   missing 'rows'" in text.stdout
    assert "size:     25 bytes" in text.stdout  # ü is two bytes in UTF-8: 24 characters, 25 bytes
    assert 'payload (UTF-8 text):\n{"v": 1, "ünits": "kWh"}\n' in text.stdout

    hexed = run("show", str(config), "2")
    assert "payload (binary, hex):" in hexed.stdout
    assert "00000000  00 01 02 03 04 05 06 07  08 09 0a 0b 0c 0d 0e 0f  |................|" in hexed.stdout
    assert "00000010  10 11 12 13" + " " * 39 + "|....|" in hexed.stdout  # as hexdump -C prints it

    raw = run("show", str(config), "2", "--raw")
    assert raw.stdout_bytes == binary

    cut = run("show", str(config), "1", "--max-bytes", "5")
    assert '{"v":' in cut.stdout and "… 20 more bytes" in cut.stdout


def test_show_of_a_truncated_payload_ending_inside_a_character_is_text(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    store = store_for(tmp_path)
    payload = ("é" * 1000).encode()  # 2000 bytes; 1000 - 11 - 1 = 988 kept, 494 whole characters
    store.add(TOPIC, "oversized", "d", payload)
    store.close()
    result = run("show", str(config), "1", "--max-bytes", "987")  # 493 characters and half of one
    assert "payload (UTF-8 text):\n" + "é" * 493 + "\n" in result.stdout
    assert "size:     2000 bytes; 988 kept (truncated at the byte cap)" in result.stdout


def test_show_of_an_unknown_id_exits_1(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    store_for(tmp_path).close()
    result = run("show", str(config), "7")
    assert result.exit_code == 1 and "no dead letter 7" in result.stderr


def test_purge_by_reason_and_time_asks_first(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    store = store_for(tmp_path)
    for reason, at in (("a", "2026-12-01T07:00:00+00:00"), ("a", "2026-12-01T09:00:00+00:00"),
                       ("b", "2026-12-01T07:30:00+00:00"), ("b", "2026-12-01T10:00:00+00:00")):  # fmt: skip
        store.add(TOPIC, reason, "d", b"x", ms(at))

    declined = run("purge", str(config), "--reason", "a", input="n\n")
    assert declined.exit_code == 1 and "purge 2 dead letter(s)" in declined.stdout
    assert store.count() == 4

    # Before 08:00 in UTC+8 = before 00:00 UTC: none; before 08:00 UTC: the a at 07:00 and the b at 07:30.
    assert "nothing to purge" in run("purge", str(config), "--before", "2026-12-01T08:00+08:00").stdout
    by_time = run("purge", str(config), "--before", "2026-12-01T08:00:00Z", "--yes")
    assert by_time.exit_code == 0 and "purged 2" in by_time.stdout
    assert store.stats().by_reason == {"a": 1, "b": 1}

    assert "purged 1" in run("purge", str(config), "--reason", "b", "--yes").stdout
    assert "purged 1" in run("purge", str(config), "--yes").stdout
    assert store.count() == 0
    store.close()


def test_purge_before_a_time_without_offset_is_this_machines_time(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    store = store_for(tmp_path)
    local_eight = datetime(2026, 12, 1, 8, 0).astimezone()  # the test process's zone, as the command's
    store.add(TOPIC, "a", "d", b"x", int(local_eight.timestamp() * 1000) - 1)
    store.add(TOPIC, "a", "d", b"x", int(local_eight.timestamp() * 1000))
    result = CliRunner().invoke(
        app, ["collector", "deadletter", "purge", str(config), "--before", "2026-12-01T08:00", "--yes"]
    )
    assert "purged 1" in result.stdout
    store.close()


def test_purge_with_a_bad_time_names_the_option(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    store_for(tmp_path).close()
    result = run("purge", str(config), "--before", "yesterday")
    assert result.exit_code == 2 and "--before 'yesterday'" in result.stderr


def good_batch(seq: int) -> bytes:
    batch = wire.Batch("demo-plant", "kiln-gw", "e1", seq)
    batch.add("raw_mill_kwh", int(time.time() * 1000) - 60_000, 500.0)
    return wire.encode_batch(batch)


def replay(config: Path, *args: str) -> subprocess.CompletedProcess:
    """``kilnwatch collector deadletter replay`` as a user runs it: its own process, whose logging set-up
    (the collector's, on standard error) is its own."""
    cmd = [sys.executable, "-m", "agent.cli", "collector", "deadletter", "replay", str(config), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_replay_applies_fixed_letters_and_keeps_the_rest_once(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    store = store_for(tmp_path)
    topic = wire.data_topic("demo-plant", "kiln-gw")
    batch = good_batch(1)
    # As if rejected while the site model did not name kiln-gw yet, then delivered again.
    store.add(topic, "unknown_agent", "agent 'kiln-gw' is not in the site model", batch)
    store.add(topic, "unknown_agent", "agent 'kiln-gw' is not in the site model", batch)
    store.add(topic, "not_json", "still junk", b"{not json")

    result = replay(config, "--all")
    assert result.returncode == 1, result.stderr  # one letter is still there
    assert result.stdout == "replayed 3: applied 1, duplicate 1, rejected:not_json 1\n"
    [left] = store.list()
    assert (left.id, left.reason) == (3, "not_json")  # the junk stays, and only once

    again = replay(config, "--reason", "not_json")
    assert again.returncode == 1 and again.stdout == "replayed 1: rejected:not_json 1\n"
    assert store.count() == 1
    store.close()


def test_replay_with_a_broken_site_model_names_it_and_replays_nothing(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text("[site]\nid = 3\n", encoding="utf-8")
    config = write_config(tmp_path, site_model=site)
    store = store_for(tmp_path)
    store.add(wire.data_topic("demo-plant", "kiln-gw"), "unknown_agent", "d", good_batch(1))
    result = run("replay", str(config), "--all")  # refused before the collector is built: in this process
    assert result.exit_code == 2 and str(site) in result.stderr and "site.id" in result.stderr
    assert store.count() == 1
    store.close()


def test_replay_leaves_a_truncated_letter(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    store = store_for(tmp_path)
    store.add(wire.data_topic("demo-plant", "kiln-gw"), "too_large", "d", good_batch(1) + bytes(2000))
    assert store.list()[0].truncated
    result = replay(config, "1")
    assert result.returncode == 1 and result.stdout == "replayed 1: truncated 1\n"
    assert store.count() == 1
    store.close()


def test_replay_by_id_and_its_refusals(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    store = store_for(tmp_path)
    store.add(wire.data_topic("demo-plant", "kiln-gw"), "unknown_agent", "d", good_batch(7))

    # Refused before the collector is built (or logging set up): in this process.
    nothing = run("replay", str(config))
    assert nothing.exit_code == 2 and "IDs, --reason R or --all" in nothing.stderr
    assert run("replay", str(config), "1", "--all").exit_code == 2  # two ways at once
    unknown = run("replay", str(config), "1", "9")
    assert unknown.exit_code == 2 and "no dead letter 9: nothing replayed" in unknown.stderr
    assert run("replay", str(config), "--reason", "spoofed").stdout == "nothing to replay\n"
    assert store.count() == 1

    done = replay(config, "1")
    assert done.returncode == 0 and done.stdout == "replayed 1: applied 1\n"
    assert store.count() == 0
    store.close()
