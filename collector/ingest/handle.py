"""A group of MQTT messages → validated batches → one ledger transaction; births checked, bad input kept.

Bad input never stops the collector: each reject is counted by reason, logged and kept in the bounded
dead-letter store, and the rest of the group is applied. Topics name the site, so one collector serves
every site in its site models; a message for a site or agent no model names is a reject, not a crash.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog

from agent import wire
from collector.ingest.apply import ChannelMetas, GroupResult, apply_group, release
from collector.ingest.births import BirthProblem, birth_problems
from collector.ingest.deadletters import DeadLetters, Reject
from collector.ledger.sql import Ledger
from collector.ops.stats import CollectorStats
from collector.sites import Sites

log = structlog.get_logger("collector.ingest")

#: Result counters logged as warnings when a group has any (each is also in /metrics).
WARN_COUNTS = ("unmapped", "held", "late", "rollovers", "resets", "flagged", "exchanges")


@dataclass(slots=True)
class Message:
    topic: str
    payload: bytes
    received_s: float = field(default_factory=time.time)
    mid: int = 0
    qos: int = 1


class Ingest:
    """Validates and applies groups of messages. ``on_accepted`` sees every valid batch of a group before
    the group is applied (the sinks' raw readings), ``on_applied`` each group's result (which KPI periods
    changed, which were restated)."""

    def __init__(
        self,
        sites: Sites,
        ledger: Ledger,
        deadletters: DeadLetters,
        *,
        max_future_s: float = 300.0,
        max_payload_bytes: int = wire.MAX_PAYLOAD_BYTES,
        on_accepted: Callable[[list[tuple[str, wire.Batch]]], None] | None = None,
        on_applied: Callable[[GroupResult], None] | None = None,
        stats: CollectorStats | None = None,
    ) -> None:
        self.ledger = ledger
        self.stats = stats or CollectorStats()
        self.deadletters = deadletters
        self.max_future_ms = int(max_future_s * 1000)
        self.max_payload_bytes = max_payload_bytes
        self.on_accepted = on_accepted
        self.on_applied = on_applied
        self.counters: Counter[str] = Counter()
        #: channel key ``<site>/<agent>/<point>`` → the birth problem holding it
        self.problems: dict[str, BirthProblem] = {}
        #: (site, agent) → last status state ("online", "offline", ...) and when it came
        self.status: dict[tuple[str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()
        self.sites = sites
        self.metas = ChannelMetas(ledger, sites)

    # -- site models ---------------------------------------------------------------------------------------
    def use_sites(self, sites: Sites) -> GroupResult:
        """Switch to reloaded site models; births are checked again, and channels they no longer hold are
        counted from their raw readings."""
        self.sites = sites
        self.metas = ChannelMetas(self.ledger, sites)
        return self.recheck_births()

    def recheck_births(self) -> GroupResult:
        problems: dict[str, BirthProblem] = {}
        for (site_id, agent), doc in self.ledger.births().items():
            site = self.sites.get(site_id)
            if site is not None and agent in self.sites.agents(site_id):
                problems.update({p.channel: p for p in birth_problems(site, agent, doc)})
        return self._set_problems(problems, scope=None)

    def _set_problems(self, problems: dict[str, BirthProblem], scope: tuple[str, str] | None) -> GroupResult:
        """Replace the problems (all, or one agent's when ``scope`` is given); release what cleared.

        Which channels are held is kept in the ledger too, so a collector restarted after the site model
        was fixed still counts what an earlier run held.
        """
        with self._lock:
            old = {k: p for k, p in self.problems.items() if scope is None or (p.site, p.agent) == scope}
            for key in old:
                self.problems.pop(key)
            self.problems.update(problems)
        was_held = {
            f"{site}/{name}": (site, name)
            for site, name in self.ledger.held()
            if scope is None or (site, name.partition("/")[0]) == scope
        }
        for key in problems.keys() - old.keys():
            p = problems[key]
            if key not in was_held:
                log.error("birth.mismatch", channel=key, problem=p.text())
            self.stats.count("birth_problems", site=p.site, agent=p.agent, point=p.point)
            self.stats.problem(f"birth:{key}", p.text())
        self.ledger.set_held(((p.site, f"{p.agent}/{p.point}") for p in problems.values()), on=True)
        cleared = [was_held[k] for k in was_held.keys() - problems.keys()]
        cleared += [
            (p.site, f"{p.agent}/{p.point}")
            for k, p in old.items()
            if k not in problems and k not in was_held
        ]
        if not cleared:
            return GroupResult()
        for site, name in cleared:
            log.info("birth.mismatch_cleared", channel=f"{site}/{name}")
            self.stats.clear_problem(f"birth:{site}/{name}")
        result = release(self.ledger, self.metas, cleared)
        self.ledger.set_held(cleared, on=False)
        if self.on_applied is not None:
            self.on_applied(result)
        return result

    # -- messages ------------------------------------------------------------------------------------------
    def handle_group(self, messages: Sequence[Message]) -> GroupResult:
        """Process a group completely. Never raises for bad input; raises if the ledger fails (then nothing
        of the group is applied and none of it may be acknowledged)."""
        batches: list[tuple[str, wire.Batch]] = []
        rejects: list[tuple[Message, str, str]] = []
        limit = int(time.time() * 1000) + self.max_future_ms
        for m in messages:
            try:
                batch = self._one(m, limit)
            except wire.WireError as exc:
                rejects.append((m, exc.reason, exc.detail))
                continue
            if batch is not None:
                batches.append(batch)
        result = GroupResult()
        if batches:
            if self.on_accepted is not None:
                # Before the ledger commit: a crash in between redelivers the group, which the ledger then
                # skips as duplicates, so the raw readings must already be queued for the sinks (writes are
                # idempotent, a second copy overwrites the first).
                self.on_accepted(batches)
            held = frozenset(self.problems)
            result = apply_group(self.ledger, self.metas, batches, held)
        if rejects:
            self.reject_many(rejects)
        self._count_result(result)
        if result.batches and self.on_applied is not None:
            self.on_applied(result)
        return result

    def _one(self, m: Message, limit_ms: int) -> tuple[str, wire.Batch] | None:
        site_id, agent, kind = wire.parse_topic(m.topic)
        if site_id not in self.sites:
            raise wire.WireError("unknown_site", f"site {site_id!r} is in no site model of this collector")
        if agent not in self.sites.agents(site_id):
            raise wire.WireError("unknown_agent", f"agent {agent!r} is not in the site model of {site_id!r}")
        if kind == "data":
            batch = wire.decode_batch(m.payload, self.max_payload_bytes)
            if batch.site != site_id or batch.agent != agent:
                raise wire.WireError(
                    "spoofed", f"payload says {batch.site}/{batch.agent}, topic says {site_id}/{agent}"
                )
            future = sum(1 for t in batch.t_ms if t > limit_ms)
            if future:
                raise wire.WireError("future_timestamp", f"{future} reading(s) later than now + max_future_s")
            return site_id, batch
        doc = wire.decode_json_message(m.payload)
        if kind == "birth":
            self.ledger.put_birth(site_id, agent, doc)
            self._count("births")
            self.stats.count("births", site=site_id)
            problems = birth_problems(self.sites[site_id], agent, doc)
            self._set_problems({p.channel: p for p in problems}, scope=(site_id, agent))
        else:
            state = str(doc.get("state"))
            previous = self.status.get((site_id, agent))
            self.status[(site_id, agent)] = (state, m.received_s)
            if previous is None or previous[0] != state:
                log.info("agent.status", site=site_id, agent=agent, state=state)
            self._count("status")
        return None

    def reject_many(self, rejects: Sequence[tuple[Message, str, str]]) -> None:
        for m, reason, detail in rejects:
            self._count(f"rejected.{reason}")
            self.stats.count("rejects", reason=reason)
            log.warning(
                "message.rejected", topic=m.topic, reason=reason, detail=detail[:300], size=len(m.payload)
            )
        self.deadletters.add_many(
            [
                Reject(m.topic, reason, detail, m.payload, int(m.received_s * 1000))
                for m, reason, detail in rejects
            ]
        )

    def _count_result(self, result: GroupResult) -> None:
        for site_id, n in result.duplicate_sites.items():
            self.stats.count("duplicates", n, site=site_id)
        for site_id, agent, seq, reading_ms in result.applied:
            self.stats.agent_batch(site_id, agent, seq, reading_ms or None)
        with self._lock:
            self.counters["batches"] += result.batches
            self.counters["readings"] += result.readings
            self.counters["duplicates"] += result.duplicates
            for name in WARN_COUNTS:
                if value := getattr(result, name):
                    self.counters[name] += value
        for name in WARN_COUNTS:
            if value := getattr(result, name):
                log.warning(f"readings.{name}", count=value)

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counters[name] += n
