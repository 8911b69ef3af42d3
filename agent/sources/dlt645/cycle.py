"""One poll of one meter: read each point's data identifier, decode it, and keep track of refused points.

A DL/T 645 read asks for one data identifier, so a cycle is one request per identifier (points that share
an identifier share its read). At 2400 bit/s a request and its reply take about 0.2 s on the line plus the
meter's own answer time, which is what sets how many points a meter can have per interval.

Outcomes, per point:

* value bytes that decode: GOOD, value × scale × the CT/PT ratios the point applies;
* bytes that do not decode (not BCD, e.g. FF FF for "not available", or the wrong length for the layout):
  BAD with no value; the meter answered, so the cycle goes on. Logged when the set of such points changes;
* an abnormal reply saying "no requested data" (error word bit 1): the meter has no such identifier, like
  Modbus exception 02. The point is *refused*: logged once, named in /healthz (``SourceStatus``), counted in
  ``kilnwatch_points_refused``, BAD with no value every cycle, and read again only after the meter's
  ``refused_retry`` seconds, the pause doubling after each further refusal up to ``MAX_RETRY_FACTOR`` times
  that. At most ``RETRIES_PER_CYCLE`` refused points are retried in one cycle;
* another abnormal reply (e.g. "password error or not authorised"): BAD for this cycle, logged on change;
* a transport failure after the meter's retries (no answer, garbled reply, connection lost): the cycle
  ends, and its points not yet read are BAD with no value. The caller backs the meter off.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog

from agent import metrics
from agent.sources.base import SourceStatus
from agent.sources.dlt645.config import Dlt645Meter, Dlt645Point
from agent.sources.dlt645.frame import AbnormalReply
from agent.sources.dlt645.identifiers import decode_value
from agent.sources.dlt645.link import Link, TransportError
from agent.sources.reading import Reading, now_ms
from agent.wire import Quality

log = structlog.get_logger("agent.dlt645")

#: The pause before retrying a refused point grows to at most this many times ``refused_retry``.
MAX_RETRY_FACTOR = 6
#: Refused points read again in one cycle at most: a retry lengthens the cycle by one request.
RETRIES_PER_CYCLE = 1


@dataclass
class Refusal:
    """A point the meter refused: why, since when, and when to read it again (loop time, seconds)."""

    reason: str
    since: float
    pause: float
    retry_at: float


async def read_value(link: Link, meter: Dlt645Meter, di: int) -> bytes:
    """``di``'s value bytes, with the meter's retries after transport failures (not abnormal replies)."""
    attempt = 0
    while True:
        try:
            return await link.read(meter.address, di, meter.timeout, meter.preamble)
        except TransportError as exc:
            attempt += 1
            if attempt > meter.retries:
                raise
            log.debug("request failed", meter=meter.name, di=f"{di:08X}", attempt=attempt, error=str(exc))


def point_value(meter: Dlt645Meter, point: Dlt645Point, raw: bytes) -> float:
    """The published value; ValueError if ``raw`` does not decode by the point's layout."""
    number = decode_value(raw, point.value_layout, point.signed)
    return number * point.scale * meter.ratio_factor(point)


class MeterCycle:
    """A meter's points and what it refused; ``run()`` polls it once."""

    def __init__(self, meter: Dlt645Meter, status: SourceStatus) -> None:
        self.meter = meter
        self.refused: dict[str, Refusal] = {}
        self._status = status
        self._problems: list[str] = []  # the last cycle's undecodable values and other abnormal replies

    async def run(self, link: Link) -> tuple[list[Reading], str | None]:
        """One poll: ``(readings, error)``, a reading for every point; ``error`` if the transport failed."""
        now = asyncio.get_running_loop().time()
        due = sorted((r.retry_at, name) for name, r in self.refused.items() if r.retry_at <= now)
        retried = {name for _, name in due[:RETRIES_PER_CYCLE]}
        points = [p for p in self.meter.points if p.name not in self.refused or p.name in retried]
        answers: dict[int, bytes | AbnormalReply] = {}
        readings: list[Reading] = []
        problems: list[str] = []
        error: str | None = None
        for point in points:
            if point.identifier not in answers:
                try:
                    answers[point.identifier] = await read_value(link, self.meter, point.identifier)
                except AbnormalReply as exc:
                    answers[point.identifier] = exc
                except TransportError as exc:
                    error = str(exc)
                    break
            reading = self._reading(point, answers[point.identifier], problems)
            if reading is not None:
                readings.append(reading)
        self._log_problems(problems)
        t_ms, seen = now_ms(), {r.channel for r in readings}
        # Refused points not retried this cycle, and points a transport failure left unread.
        missing = [Reading(p.name, t_ms, None, Quality.BAD) for p in self.meter.points if p.name not in seen]
        return readings + missing, error

    def _reading(
        self, point: Dlt645Point, answer: bytes | AbnormalReply, problems: list[str]
    ) -> Reading | None:
        """The point's reading from its identifier's answer; None for a refused point (reported missing)."""
        t_ms = now_ms()
        if isinstance(answer, AbnormalReply):
            if answer.no_data:
                self._refuse(point, str(answer))
                return None
            problems.append(f"{point.label}: {answer}")
            return Reading(point.name, t_ms, None, Quality.BAD)
        if point.name in self.refused:
            self._recover(point)
        try:
            return Reading(point.name, t_ms, point_value(self.meter, point, answer), Quality.GOOD)
        except ValueError as exc:
            problems.append(f"{point.label}: {exc}")
            return Reading(point.name, t_ms, None, Quality.BAD)

    def _refuse(self, point: Dlt645Point, reason: str) -> None:
        now = asyncio.get_running_loop().time()
        refusal = self.refused.get(point.name)
        if refusal is not None:  # a retry refused again: wait longer next time
            refusal.pause = min(2 * refusal.pause, MAX_RETRY_FACTOR * self.meter.refused_retry)
            refusal.retry_at = now + refusal.pause
            log.debug("refused point still refused", meter=self.meter.name, point=point.name,
                      retry_in_s=refusal.pause)  # fmt: skip
            return
        pause = self.meter.refused_retry
        self.refused[point.name] = Refusal(reason, now, pause, now + pause)
        self._status.set_refused(self.meter.name, point.name, reason)
        log.warning("point refused by the meter", meter=self.meter.name, point=point.name, di=point.di,
                    reason=reason, retry_in_s=pause)  # fmt: skip
        self._count()

    def _recover(self, point: Dlt645Point) -> None:
        refusal = self.refused.pop(point.name)
        self._status.set_refused(self.meter.name, point.name, None)
        refused_for = asyncio.get_running_loop().time() - refusal.since
        log.info("point answering again", meter=self.meter.name, point=point.name,
                 refused_for_s=round(refused_for, 1))  # fmt: skip
        self._count()

    def _count(self) -> None:
        metrics.POINTS_REFUSED.set(len(self.refused), device=self.meter.name)

    def _log_problems(self, problems: list[str]) -> None:
        """A meter that answers FF FF every cycle logs once, not every cycle."""
        if problems == self._problems:
            return
        if problems:
            log.warning("points not read", meter=self.meter.name, problems=problems)
        else:
            log.info("points read again", meter=self.meter.name, previous=self._problems)
        self._problems = problems
