"""The collector's /metrics and /healthz over real HTTP on a free loopback port.

The stats are fed by hand with a test clock, so every expected figure below is worked out from the inputs
(arithmetic in the comments), not read back from the code. The metrics text is parsed by a small parser of
the exposition format that un-escapes label values, so escaping is checked in both directions.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config_load import ConfigError
from collector.ops.health import HealthLimits
from collector.ops.http import OpsServer, parse_listen
from collector.ops.stats import CollectorStats
from tests.servers import free_port

T0 = 1_800_000_000.0  # a whole second, so slot arithmetic below is plain

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = re.compile(r'([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"(?:,|$)')
SAMPLE = re.compile(rf"^({NAME})(\{{.*\}})? (-?[0-9.e+-]+|\+Inf|-Inf|NaN)$")


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def parse(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Exposition text → {(name, labels): value}; asserts the format: HELP then TYPE before each family's
    samples, every sample line well formed, label values escaped."""
    values: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    typed: dict[str, str] = {}
    helped: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert re.fullmatch(NAME, name) and name not in helped, line
            helped.add(name)
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name in helped and kind in ("counter", "gauge", "histogram"), line
            typed[name] = kind
            continue
        match = SAMPLE.match(line)
        assert match, f"not exposition format: {line!r}"
        name, labels_text, number = match.groups()
        family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in typed else name
        assert family in typed, f"sample before its TYPE line: {line!r}"
        labels: list[tuple[str, str]] = []
        if labels_text:
            body = labels_text[1:-1]
            pos = 0
            for m in LABEL.finditer(body):
                assert m.start() == pos, f"bad labels in {line!r}"
                labels.append((m.group(1), unescape(m.group(2))))
                pos = m.end()
            assert pos == len(body), f"bad labels in {line!r}"
        key = (name, frozenset(labels))
        assert key not in values, f"duplicate sample {line!r}"
        values[key] = float(number)
    return values


def v(values: dict, name: str, **labels: str) -> float:
    return values[(f"kilnwatch_collector_{name}", frozenset(labels.items()))]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def stats(clock: Clock) -> CollectorStats:
    return CollectorStats(clock=clock)


@pytest.fixture
def server(stats: CollectorStats) -> Iterator[OpsServer]:
    with OpsServer(f"127.0.0.1:{free_port()}", stats) as srv:
        yield srv


def metrics(server: OpsServer) -> dict:
    status, text = get(f"http://127.0.0.1:{server.port}/metrics")
    assert status == 200
    return parse(text)


def healthz(server: OpsServer) -> tuple[int, dict]:
    status, text = get(f"http://127.0.0.1:{server.port}/healthz")
    return status, json.loads(text)


def test_metrics_equal_what_was_fed(clock: Clock, stats: CollectorStats, server: OpsServer) -> None:
    # Groups (messages, readings, apply s) at the given times; each oldest message 0.25 s old at commit.
    groups = [(T0 + 3.2, 1, 60, 0.0008), (T0 + 20.0, 3, 600, 0.004), (T0 + 58.7, 40, 300, 0.03),
              (T0 + 62.4, 1000, 1200, 0.7), (T0 + 65.1, 2, 5000, 0.002)]  # fmt: skip
    for at, messages, readings, apply_s in groups:
        clock.t = at
        stats.observe_group(messages, readings, apply_s, oldest_received_s=at - 0.25)
    stats.count("duplicates", 2, site="p1")
    stats.count("duplicates", 3, site="p1")
    stats.count("rejects", reason='bad "json"\nline 2 \\ end')
    stats.count("births", site="p2")
    stats.count("birth_problems", site="p2", agent="gw1", point="kiln/kwh")
    stats.count("restatements", 4, site="p1")
    stats.count("deadletters_evicted", 7)
    stats.agent_batch("p1", "gw1", 41, reading_ms=int((T0 + 60) * 1000), received_s=T0 + 61.0)
    stats.agent_batch("p1", "gw1", 42, reading_ms=int((T0 + 62) * 1000), received_s=T0 + 63.0)
    stats.agent_batch("p2", "gw1", 7, reading_ms=int((T0 + 50) * 1000), received_s=T0 + 51.5)
    stats.gauge("deadletters", lambda: 12)
    stats.gauge("deadletter_bytes", lambda: 34_567)
    stats.gauge("sink_backlog_lines", lambda: 890)
    stats.gauge("sink_oldest_line_age_seconds", lambda: None)  # nothing queued: left out
    stats.gauge("sites_loaded", lambda: 2)
    stats.broker_connected(True)
    clock.t = T0 + 65.5
    stats.reload_result(False, "p2.toml: site.id: missing")
    got = metrics(server)

    assert v(got, "messages_total") == 1 + 3 + 40 + 1000 + 2  # 1046
    assert v(got, "readings_applied_total") == 60 + 600 + 300 + 1200 + 5000  # 7160
    # messages per group 1, 3, 40, 1000, 2: ≤1 → 1; ≤2 → 2; ≤5 → 3; ≤50 → 4; ≤1000 → 5
    expected_buckets = {"1": 1, "2": 2, "5": 3, "10": 3, "20": 3, "50": 4, "100": 4, "200": 4, "500": 4,
                        "1000": 5, "2000": 5, "5000": 5, "10000": 5, "100000": 5, "+Inf": 5}  # fmt: skip
    for le, n in expected_buckets.items():
        assert v(got, "group_messages_bucket", le=le) == n, le
    assert v(got, "group_messages_count") == 5
    assert v(got, "group_messages_sum") == 1046
    # apply 0.0008, 0.004, 0.03, 0.7, 0.002 s: ≤0.001 → 1; ≤0.0025 → 2; ≤0.005 → 3; ≤0.05 → 4; ≤1 → 5
    for le, n in {
        "0.001": 1,
        "0.0025": 2,
        "0.005": 3,
        "0.01": 3,
        "0.025": 3,
        "0.05": 4,
        "0.5": 4,
        "1": 5,
    }.items():
        assert v(got, "group_apply_seconds_bucket", le=le) == n, le
    assert v(got, "group_apply_seconds_sum") == pytest.approx(0.0008 + 0.004 + 0.03 + 0.7 + 0.002)
    # now T0+65.5: the current second (65, holding 5000) is left out; 10 s = seconds 55..64 → 300 + 1200;
    # 60 s = seconds 5..64 → 600 + 300 + 1200 (the 60 at 3.2 s is older)
    assert v(got, "ingest_readings_per_second", window="10s") == (300 + 1200) / 10  # 150
    assert v(got, "ingest_readings_per_second", window="60s") == (600 + 300 + 1200) / 60  # 35
    assert v(got, "lag_seconds") == 0.25
    assert v(got, "newest_reading_age_seconds") == pytest.approx(65.5 - 62)
    assert v(got, "duplicates_total", site="p1") == 2 + 3
    assert v(got, "rejects_total", reason='bad "json"\nline 2 \\ end') == 1
    assert v(got, "births_total", site="p2") == 1
    assert v(got, "birth_problems_total", site="p2", agent="gw1", point="kiln/kwh") == 1
    assert v(got, "restatements_total", site="p1") == 4
    assert v(got, "deadletters_evicted_total") == 7
    assert v(got, "batches_applied_total", site="p1") == 2
    assert v(got, "batches_applied_total", site="p2") == 1
    assert v(got, "agent_last_seq", site="p1", agent="gw1") == 42
    assert v(got, "agent_last_batch_timestamp_seconds", site="p1", agent="gw1") == T0 + 63.0
    assert v(got, "agent_last_reading_timestamp_seconds", site="p1", agent="gw1") == T0 + 62
    assert v(got, "agent_last_seq", site="p2", agent="gw1") == 7
    assert v(got, "deadletters") == 12
    assert v(got, "deadletter_bytes") == 34_567
    assert v(got, "sink_backlog_lines") == 890
    assert ("kilnwatch_collector_sink_oldest_line_age_seconds", frozenset()) not in got
    assert v(got, "sites_loaded") == 2
    assert v(got, "broker_connected") == 1
    assert v(got, "broker_last_change_timestamp_seconds") == T0 + 65.1  # the clock when it connected
    assert v(got, "last_reload_ok") == 0
    assert v(got, "last_reload_timestamp_seconds") == T0 + 65.5
    assert v(got, "reloads_total", result="error") == 1
    assert v(got, "problems") == 0
    assert v(got, "start_timestamp_seconds") == T0


def test_escaped_label_text_on_the_wire(stats: CollectorStats, server: OpsServer) -> None:
    """Quotes, backslashes and newlines in label values are escaped as the text format requires."""
    stats.count("rejects", reason='say "hi"\nback\\slash')
    _, text = get(f"http://127.0.0.1:{server.port}/metrics")
    assert 'kilnwatch_collector_rejects_total{reason="say \\"hi\\"\\nback\\\\slash"} 1\n' in text


def test_lag_grows_while_a_group_is_applied(clock: Clock, stats: CollectorStats, server: OpsServer) -> None:
    clock.t = T0 + 10
    stats.group_started(oldest_received_s=T0 + 8.5)
    clock.t = T0 + 14
    assert v(metrics(server), "lag_seconds") == 14 - 8.5
    stats.observe_group(5, 50, 4.0, oldest_received_s=T0 + 8.5)
    clock.t = T0 + 14 + 9.9  # between groups the lag stays the last group's at its commit...
    assert v(metrics(server), "lag_seconds") == 14 - 8.5
    clock.t = T0 + 14 + 10  # ...until 10 s pass without a group: nothing waited, the collector caught up
    assert v(metrics(server), "lag_seconds") == 0


def test_a_slow_last_group_is_not_lag_forever(clock: Clock, stats: CollectorStats, server: OpsServer) -> None:
    stats.broker_connected(True)
    stats.observe_group(1000, 1000, 2.0, oldest_received_s=clock.t - 75)  # a backlog, drained at last
    assert reasons(server)[2] == ["75 s behind the broker (allowed 60 s)"]
    clock.t += 10  # no group since: idle, so caught up
    assert reasons(server) == (200, "ok", [])


def reasons(server: OpsServer) -> tuple[int, str, list[str]]:
    code, doc = healthz(server)
    return code, doc["status"], doc["reasons"]


def test_healthz_degraded_for_each_reason_and_back(
    clock: Clock, stats: CollectorStats, server: OpsServer
) -> None:
    limits = HealthLimits()
    sink_age: list[float | None] = [None]
    stats.gauge("sink_oldest_line_age_seconds", lambda: sink_age[0])
    stats.broker_connected(True)
    stats.agent_batch("p1", "gw1", 1, int(T0 * 1000))
    assert reasons(server) == (200, "ok", [])

    # broker: allowed broker_grace_s (30 s) disconnected
    stats.broker_connected(False)
    clock.t += limits.broker_grace_s - 1
    assert reasons(server)[1] == "ok"
    clock.t += 2
    code, status, why = reasons(server)
    assert (code, status) == (200, "degraded") and "broker disconnected for 31 s" in why[0]
    stats.broker_connected(True)
    assert reasons(server)[1] == "ok"

    # sink backlog older than sink_backlog_s (300 s)
    sink_age[0] = 301.0
    code, status, why = reasons(server)
    assert status == "degraded" and why == [
        "sink backlog: the oldest queued line is 301 s old (allowed 300 s)"
        " — is InfluxDB up and accepting writes?"
    ]
    sink_age[0] = 5.0
    assert reasons(server)[1] == "ok"

    # a birth problem named by the pipeline
    stats.problem("birth/p1/gw1/kiln/kwh", "birth p1/gw1: point kiln/kwh is not in the site model")
    assert reasons(server)[1:] == ("degraded", ["birth p1/gw1: point kiln/kwh is not in the site model"])
    assert healthz(server)[1]["problems"] == {
        "birth/p1/gw1/kiln/kwh": "birth p1/gw1: point kiln/kwh is not in the site model"
    }
    stats.clear_problem("birth/p1/gw1/kiln/kwh")
    assert reasons(server)[1] == "ok"

    # an agent silent past its stale limit (the default 300 s); a new batch brings it back
    stats.agent_batch("p1", "gw1", 2, int(clock.t * 1000))
    clock.t += 301
    code, status, why = reasons(server)
    assert status == "degraded" and why[0].startswith("agent p1/gw1: last batch 301 s ago (allowed 300 s)")
    agent = healthz(server)[1]["agents"][0]
    assert (agent["status"], agent["seq"], agent["received_age_s"]) == ("stale", 2, 301.0)
    stats.agent_batch("p1", "gw1", 3, int(clock.t * 1000))
    assert reasons(server)[1] == "ok"

    # an agent the site model names that never sends: stale after its own limit from the time it was named
    stats.watch_agents("p1", ["gw1", "gw2"], stale_after_s=20)
    clock.t += 21
    stats.agent_batch("p1", "gw1", 4, int(clock.t * 1000))  # gw1 is heard from; gw2 never
    assert reasons(server)[2] == [
        "agent p1/gw2: no batch in the 21 s since it was expected (allowed 20 s)"
        " — is the agent running and connected to this broker?"
    ]
    stats.watch_agents("p1", ["gw1"])  # a reload without gw2
    assert reasons(server)[1] == "ok"

    # more than lag_s (60 s) behind the broker
    stats.group_started(oldest_received_s=clock.t - 61)
    assert reasons(server)[1:] == ("degraded", ["61 s behind the broker (allowed 60 s)"])
    stats.observe_group(1, 1, 0.001, oldest_received_s=clock.t - 0.5)
    assert reasons(server)[1] == "ok"

    # a refused reload, until a good one
    stats.reload_result(False, "sites/p2.toml: site.timezone: unknown zone 'Asia/Beijing'")
    why = reasons(server)[2]
    assert len(why) == 1 and "refused, the old site models kept: sites/p2.toml: site.timezone" in why[0]
    stats.reload_result(True)
    assert reasons(server)[1] == "ok"


def test_healthz_down_503_while_an_apply_hangs(
    clock: Clock, stats: CollectorStats, server: OpsServer
) -> None:
    stats.broker_connected(True)
    stats.group_started(oldest_received_s=clock.t)
    clock.t += 119
    assert reasons(server)[:2] == (200, "degraded")  # 119 s behind, but the apply limit is 120 s
    clock.t += 2
    code, status, why = reasons(server)
    assert (code, status) == (503, "down")
    assert (
        why[0] == "a group has been applying for 121 s (allowed 120 s): the ledger is locked or not writable"
    )
    stats.observe_group(10, 10, 121.0, oldest_received_s=clock.t)
    assert reasons(server) == (200, "ok", [])


def test_a_failing_gauge_callback_leaves_the_scrape_whole(stats: CollectorStats, server: OpsServer) -> None:
    def broken() -> float:
        raise RuntimeError("queue closed")

    stats.gauge("sink_backlog_lines", broken)
    stats.gauge("sites_loaded", lambda: 3)
    got = metrics(server)
    assert v(got, "sites_loaded") == 3
    assert ("kilnwatch_collector_sink_backlog_lines", frozenset()) not in got
    assert healthz(server)[1]["gauges"] == {"sink_backlog_lines": None, "sites_loaded": 3.0}


def test_wrong_names_are_refused(stats: CollectorStats) -> None:
    with pytest.raises(ValueError, match="no counter 'reject'"):
        stats.count("reject", reason="x")
    with pytest.raises(ValueError, match="takes labels"):
        stats.count("rejects", site="p1")
    with pytest.raises(ValueError, match="needs a help text"):
        stats.gauge("queue_depth", lambda: 1)
    with pytest.raises(ValueError, match="lower-case"):
        stats.gauge("Queue-Depth", lambda: 1, "Depth.")
    for own in ("problems", "rejects_total", "group_messages"):  # would give a metric two TYPE lines
        with pytest.raises(ValueError, match="one of the collector's own metrics"):
            stats.gauge(own, lambda: 1, "Mine.")


def test_port_in_use_names_the_key(stats: CollectorStats) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ops = OpsServer(f"127.0.0.1:{port}", stats, config_file="/etc/kilnwatch/collector.toml")
        with pytest.raises(ConfigError) as err:
            ops.start()
    assert str(err.value) == (
        f"/etc/kilnwatch/collector.toml: collector.http: cannot listen on '127.0.0.1:{port}': Address already"
        ' in use — pick a free port (another collector or agent may hold this one), or set http = "" to turn'
        " the endpoint off"
    )
    assert not [t for t in threading.enumerate() if t.name == "collector-ops-http"]  # its thread is gone


def test_listen_values(stats: CollectorStats) -> None:
    assert parse_listen("127.0.0.1:9108") == ("127.0.0.1", 9108)
    assert parse_listen("[::1]:9108") == ("::1", 9108)
    assert parse_listen("") is None and parse_listen(None) is None
    for bad in ("localhost", "127.0.0.1:", ":9108", "127.0.0.1:70000", "127.0.0.1:http"):
        with pytest.raises(ConfigError, match=r"^collector.http: .* is not host:port — write e.g. http ="):
            parse_listen(bad)
    off = OpsServer("", stats)
    off.start()
    assert off.port is None
    off.close()


def test_threads_write_while_http_reads(stats: CollectorStats, server: OpsServer) -> None:
    """Four pipeline threads and a scraper at once: nothing lost, every scrape parses."""
    groups, writers = 5000, 4

    def write(agent: str) -> None:
        for seq in range(groups):
            stats.observe_group(3, 30, 0.001, oldest_received_s=T0)
            stats.agent_batch("p1", agent, seq, int(T0 * 1000))
            stats.count("duplicates", site="p1")

    threads = [threading.Thread(target=write, args=(f"gw{i}",)) for i in range(writers)]
    for t in threads:
        t.start()
    scrapes = 0
    while any(t.is_alive() for t in threads) or scrapes == 0:
        metrics(server)
        scrapes += 1
    for t in threads:
        t.join()
    got = metrics(server)
    assert v(got, "messages_total") == 3 * groups * writers
    assert v(got, "readings_applied_total") == 30 * groups * writers
    assert v(got, "duplicates_total", site="p1") == groups * writers
    assert v(got, "batches_applied_total", site="p1") == groups * writers
    assert all(v(got, "agent_last_seq", site="p1", agent=f"gw{i}") == groups - 1 for i in range(writers))


def test_per_group_cost_is_microseconds() -> None:
    """One group of ten batches: observe_group, ten agent_batch, two counts. About 20 µs on the 2-core CI
    machine; the bound leaves room for a loaded box but fails on per-reading work (300 readings here)."""
    stats = CollectorStats()
    n = 2000
    start = time.perf_counter()
    for seq in range(n):
        stats.group_started(T0)
        stats.observe_group(10, 300, 0.004, T0)
        stats.count("duplicates", site="p1")
        stats.count("restatements", site="p1")
        for agent in range(10):
            stats.agent_batch("p1", f"gw{agent}", seq, 1_000_000)
    per_group = (time.perf_counter() - start) / n
    assert per_group < 500e-6, f"{per_group * 1e6:.0f} µs per group"


def test_every_metric_is_in_the_docs(clock: Clock, stats: CollectorStats) -> None:
    """docs/collector.md lists every metric a fully fed collector exports."""
    stats.observe_group(1, 1, 0.001, T0)
    stats.agent_batch("p1", "gw1", 1, int(T0 * 1000))
    stats.reload_result(True)
    for name in ("deadletters", "deadletter_bytes", "sink_backlog_lines", "sink_oldest_line_age_seconds",
                 "sites_loaded"):  # fmt: skip
        stats.gauge(name, lambda: 1)
    names = {line.split(" ")[2] for line in stats.render().splitlines() if line.startswith("# TYPE ")}
    doc = (Path(__file__).resolve().parents[2] / "docs" / "collector.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`((?:kilnwatch_collector|process)_[a-z_]+)`", doc))
    # 9 counters (messages, readings, the 6 of COUNTERS, reloads) + 2 histograms + 19 read at scrape time
    # (batches by site, rate, lag, newest age, 3 per agent, 2 broker, 2 reload, problems, 5 gauges,
    # start time, rss)
    assert len(names) == 9 + 2 + 19
    assert names - documented == set()
