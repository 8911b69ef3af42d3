"""The collector's ``/healthz`` verdict (``ok``, ``degraded`` or ``down``) with reasons to act on.

Judged from a ``Snapshot`` (``collector.ops.stats``) by a pure function, so every rule is testable without a
broker. The HTTP server runs on its own thread, so a wedged pipeline does not silence the endpoint; the
verdict has to come from what the pipeline last did:

- ``down`` (HTTP 503): a group's ledger transaction has run longer than ``apply_stall_s`` (a locked or
  unwritable ledger): nothing is applied or acknowledged, and a restart may help;
- ``degraded`` (HTTP 200): the broker has been disconnected longer than ``broker_grace_s``; the oldest line
  queued for the sink is older than ``sink_backlog_s`` (InfluxDB down or refusing); the collector is more
  than ``lag_s`` behind the broker; an agent sent no batch for longer than its stale limit; the last reload
  was refused; or the pipeline named a problem (e.g. a birth listing a point the site model lacks). None of
  these is cured by a restart, so none of them should make an orchestrator kill the process.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from collector.ops.stats import SINK_OLDEST_AGE, Snapshot


@dataclass(frozen=True)
class HealthLimits:
    """Seconds each rule allows; the defaults suit a plant collector scraped every 15-60 s."""

    #: disconnected from the broker this long → degraded (paho reconnects within 1-30 s)
    broker_grace_s: float = 30.0
    #: oldest line queued for the sink this old → degraded (the spill file holds it, nothing is lost yet)
    sink_backlog_s: float = 300.0
    #: an agent's stale limit unless ``watch_agents`` gives its own (agents publish every few seconds)
    stale_after_s: float = 300.0
    #: the group being applied holds a message received this long ago → degraded (falling behind)
    lag_s: float = 60.0
    #: one group's apply running this long → down
    apply_stall_s: float = 120.0


def assess(snap: Snapshot, limits: HealthLimits) -> tuple[str, dict[str, object]]:
    """``(status, details)``: ``details`` is the /healthz document, ``status`` one of ok, degraded, down."""
    down: list[str] = []
    degraded: list[str] = []
    if snap.applying is not None and snap.now - snap.applying[0] > limits.apply_stall_s:
        down.append(
            f"a group has been applying for {snap.now - snap.applying[0]:.0f} s (allowed"
            f" {limits.apply_stall_s:.0f} s): the ledger is locked or not writable"
        )
    broker_for = snap.now - snap.broker_since
    if not snap.broker_connected and broker_for > limits.broker_grace_s:
        degraded.append(
            f"broker disconnected for {broker_for:.0f} s (allowed {limits.broker_grace_s:.0f} s)"
            " — see the mqtt.cannot_connect log line for why"
        )
    sink_age = snap.gauges.get(SINK_OLDEST_AGE)
    if sink_age is not None and sink_age > limits.sink_backlog_s:
        degraded.append(
            f"sink backlog: the oldest queued line is {sink_age:.0f} s old (allowed"
            f" {limits.sink_backlog_s:.0f} s) — is InfluxDB up and accepting writes?"
        )
    lag = snap.lag_s
    if lag is not None and lag > limits.lag_s:
        degraded.append(f"{lag:.0f} s behind the broker (allowed {limits.lag_s:.0f} s)")
    if snap.reload is not None and not snap.reload.ok:
        degraded.append(
            f"reload at {_iso(snap.reload.at_s)} refused, the old site models kept: {snap.reload.error}"
            " — fix the file and reload again"
        )
    degraded += [snap.problems[key] for key in sorted(snap.problems)]
    agents = []
    for a in snap.agents:
        limit = limits.stale_after_s if a.stale_after_s is None else a.stale_after_s
        silent = snap.now - (a.received_s if a.received_s is not None else a.watched_since)
        stale = silent > limit
        if stale:
            what = (
                f"no batch in the {silent:.0f} s since it was expected"
                if a.received_s is None
                else f"last batch {silent:.0f} s ago"
            )
            degraded.append(
                f"agent {a.site}/{a.agent}: {what} (allowed {limit:.0f} s)"
                " — is the agent running and connected to this broker?"
            )
        agents.append(
            {
                "site": a.site,
                "agent": a.agent,
                "status": "stale" if stale else "ok",
                "seq": a.seq,
                "received_age_s": _age(snap.now, a.received_s),
                "newest_reading_age_s": _age(snap.now, a.reading_s),
                "stale_after_s": limit,
            }
        )
    status = "down" if down else "degraded" if degraded else "ok"
    details: dict[str, object] = {
        "status": status,
        "reasons": down + degraded,
        "uptime_s": round(snap.now - snap.started, 3),
        "broker": {"connected": snap.broker_connected, "for_s": round(broker_for, 3)},
        "lag_s": None if lag is None else round(lag, 3),
        "applying_for_s": _age(snap.now, None if snap.applying is None else snap.applying[0]),
        "newest_reading_age_s": _age(snap.now, snap.newest_reading_s),
        "ingest_readings_per_s": {"10s": round(snap.rate_10s, 3), "60s": round(snap.rate_60s, 3)},
        "gauges": snap.gauges,
        "last_reload": None
        if snap.reload is None
        else {"ok": snap.reload.ok, "at": _iso(snap.reload.at_s), "error": snap.reload.error},
        "problems": dict(sorted(snap.problems.items())),
        "agents": agents,
    }
    return status, details


def _age(now: float, then: float | None) -> float | None:
    return None if then is None else round(now - then, 3)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")
