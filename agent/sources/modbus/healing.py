"""Requests that heal: learn which points a device answers when it refuses a coalesced read.

Meters of one family differ by model and firmware (a PM5100 lacks registers a PM5500 has), and a real meter
answers a read that touches any register it lacks with exception 02 (illegal data address), or 03 (illegal
data value) for a length it will not serve. ``coalesce`` joins many points into one request, so one missing
register used to turn every point of that request BAD, every cycle, with a warning each time.

Now a request refused with 02 or 03 is split in two at its widest hole (where a missing block most likely
sits; nearest the middle when there is none) and each half is read again, down to single points if need be:
a request of n points costs at most 2n - 1 reads, once. The pieces that answered become the poll group's
learned layout, read every cycle at full speed. A single point still refused is *refused*: it is logged once,
named in /healthz (``SourceStatus``) and counted in ``kilnwatch_points_refused``, and reported BAD with no
value every cycle, so the collector sees the gap rather than a channel that silently stopped.

A refused point is read again on its own after the device's ``refused_retry`` seconds (10 min by default),
the pause doubling after each further refusal up to ``MAX_RETRY_FACTOR`` times that (1 h). A register map
changes only when someone swaps the meter or its firmware, so a rare retry finds that soon enough, and costs
one request (20-50 ms on RS-485) per refused point per pause. At most ``RETRIES_PER_CYCLE`` refused points
are retried in one cycle, so the answering points' cycle grows by one request at most. When a refused point
answers again, the answering points are coalesced afresh (and heal again if that joins a hole).

Other exception codes (04 device failure, 06 busy, 0A/0B gateway) say nothing about the register map: that
request's points are BAD for the cycle, the request is kept as it is, and the change is logged once.
Transport failures (``TransportError``) are left to the caller: they end the cycle and back the device off.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from agent import metrics
from agent.sources.base import SourceStatus
from agent.sources.modbus.coalesce import PollGroup, Request, Span, coalesce, request_of
from agent.sources.modbus.config import ModbusDevice
from agent.sources.modbus.link import ExceptionReply, Link, TransportError
from agent.sources.reading import Reading, now_ms
from agent.wire import Quality

log = structlog.get_logger("agent.modbus")

#: Exception codes that say the device's register map lacks what was asked (Modbus spec §7).
STRUCTURAL = (2, 3)
#: The pause before retrying a refused point grows to at most this many times ``refused_retry``.
MAX_RETRY_FACTOR = 6
#: Refused points read again in one cycle at most: a retry delays the cycle by one request.
RETRIES_PER_CYCLE = 1


@dataclass(frozen=True, slots=True)
class Piece:
    """One read of ``request``: its ``registers``, or the exception reply the device gave instead."""

    request: Request
    registers: list[int] | None = None
    error: ExceptionReply | None = None

    @property
    def refusal(self) -> str | None:
        """Why the device refuses these registers (02/03), if it does; read alone, they cannot be split."""
        return self.error.reason if self.error is not None and self.error.code in STRUCTURAL else None

    def readings(self, t_ms: int) -> list[Reading]:
        """GOOD readings of the points read; BAD with no value after an exception reply."""
        if self.registers is None:
            return [Reading(s.point.name, t_ms, None, Quality.BAD) for s in self.request.spans]
        return [
            Reading(s.point.name, t_ms, s.value(self.request.registers_of(s, self.registers)), Quality.GOOD)
            for s in self.request.spans
        ]


async def read_once(link: Link, device: ModbusDevice, request: Request) -> list[int]:
    """``request``'s registers, with the device's retries after transport failures (not after exceptions)."""
    attempt = 0
    while True:
        try:
            return await link.read(
                request.function, request.address, request.count, device.unit, device.timeout,
                device.inter_frame_delay,
            )  # fmt: skip
        except TransportError as exc:
            attempt += 1
            if attempt > device.retries:
                raise
            log.debug("request failed", device=device.name, attempt=attempt, error=str(exc))


def halves(spans: Sequence[Span]) -> tuple[Sequence[Span], Sequence[Span]]:
    """``spans`` (sorted by address) cut at the widest hole between them, nearest the middle on a tie."""
    middle = len(spans) / 2
    reach = [max(s.end for s in spans[:i]) for i in range(1, len(spans))]
    cut = max(range(1, len(spans)), key=lambda i: (spans[i].address - reach[i - 1], -abs(i - middle)))
    return spans[:cut], spans[cut:]


async def read_split(link: Link, device: ModbusDevice, request: Request) -> list[Piece]:
    """Read ``request``; if the device refuses it (02/03), read its halves, down to single points.

    Raises ``TransportError`` when the device stops answering at all, whatever was read before.
    """
    try:
        return [Piece(request, await read_once(link, device, request))]
    except ExceptionReply as exc:
        # Spans that all sit on the same registers (bits of one register) gain nothing from a split.
        if exc.code not in STRUCTURAL or len({(s.address, s.count) for s in request.spans}) == 1:
            return [Piece(request, error=exc)]
    pieces: list[Piece] = []
    for half in halves(request.spans):
        pieces += await read_split(link, device, request_of(half))
    return pieces


def layout_text(requests: Sequence[Request]) -> str:
    return ", ".join(f"FC{r.function} {r.address}+{r.count}" for r in requests)


@dataclass
class Refusal:
    """A point the device refused: why, since when, and when to read it again (loop time, seconds)."""

    span: Span
    reason: str
    since: float
    pause: float
    retry_at: float


class HealingGroup:
    """One poll group of a device: its learned layout and refused points. ``cycle()`` reads it once."""

    def __init__(self, device: ModbusDevice, group: PollGroup, status: SourceStatus) -> None:
        self.device = device
        self.layout: list[Request] = list(group.requests)
        self.refused: dict[str, Refusal] = {}
        self._status = status
        self._points = list(dict.fromkeys(s.point.name for r in group.requests for s in r.spans))
        self._spans = [s for r in group.requests for s in r.spans]
        self._recoalesce = False
        self._exceptions: list[str] = []  # the non-structural replies of the last cycle, logged on change

    async def cycle(self, link: Link) -> tuple[list[Reading], str | None]:
        """One poll: ``(readings, error)``, a reading for every point; ``error`` if the transport failed."""
        readings: list[Reading] = []
        error: str | None = None
        try:
            await self._poll_layout(link, readings)
            await self._retry_refused(link, readings)
        except TransportError as exc:
            error = str(exc)
        t_ms, seen = now_ms(), {r.channel for r in readings}
        # Refused points not retried this cycle, and points the transport failure left unread.
        return readings + [Reading(p, t_ms, None, Quality.BAD) for p in self._points if p not in seen], error

    async def _poll_layout(self, link: Link, readings: list[Reading]) -> None:
        d = self.device
        if self._recoalesce:
            answering = [s for s in self._spans if s.point.name not in self.refused]
            self.layout, self._recoalesce = coalesce(answering, d.max_registers, d.max_gap), False
        learned: list[Request] = []
        exceptions: list[str] = []
        split = False
        for n, request in enumerate(self.layout):
            try:
                pieces = await read_split(link, d, request)
            except TransportError:
                self.layout = learned + self.layout[n:]  # what was learned stays; the rest is tried again
                raise
            t_ms = now_ms()
            split |= len(pieces) > 1
            for piece in pieces:
                if piece.refusal is not None:
                    self._refuse(piece.request.spans, piece.refusal)
                    continue
                learned.append(piece.request)
                readings += piece.readings(t_ms)
                if piece.error is not None:
                    exceptions.append(f"FC{request.function} {piece.request.address}: {piece.error.reason}")
        self.layout = learned
        if split:
            log.info("request layout learned", device=d.name, requests=layout_text(learned),
                     refused=sorted(self.refused))  # fmt: skip
        if exceptions != self._exceptions:  # a device busy every cycle logs once, not every cycle
            if exceptions:
                log.warning("exception reply", device=d.name, replies=exceptions)
            else:
                log.info("exception replies stopped", device=d.name, previous=self._exceptions)
            self._exceptions = exceptions

    async def _retry_refused(self, link: Link, readings: list[Reading]) -> None:
        now = asyncio.get_running_loop().time()
        due = sorted((r for r in self.refused.values() if r.retry_at <= now), key=lambda r: r.retry_at)
        for refusal in due[:RETRIES_PER_CYCLE]:
            request = request_of([refusal.span])
            try:
                registers = await read_once(link, self.device, request)
            except ExceptionReply as exc:
                if exc.code in STRUCTURAL:
                    limit = MAX_RETRY_FACTOR * self.device.refused_retry
                    refusal.pause = min(2 * refusal.pause, limit)
                refusal.retry_at = asyncio.get_running_loop().time() + refusal.pause
                log.debug(
                    "refused point still refused", device=self.device.name, point=refusal.span.point.name,
                    reason=exc.reason, retry_in_s=refusal.pause,
                )  # fmt: skip
                continue
            readings += Piece(request, registers).readings(now_ms())
            self._recover(refusal)

    def _refuse(self, spans: Sequence[Span], reason: str) -> None:
        now = asyncio.get_running_loop().time()
        pause = self.device.refused_retry
        for span in spans:
            name = span.point.name
            self.refused[name] = Refusal(span, reason, now, pause, now + pause)
            self._status.set_refused(self.device.name, name, reason)
            log.warning("point refused by the device", device=self.device.name, point=name,
                        function=span.function, address=span.address, registers=span.count,
                        reason=reason, retry_in_s=pause)  # fmt: skip
        self._count()

    def _recover(self, refusal: Refusal) -> None:
        name = refusal.span.point.name
        del self.refused[name]
        self._status.set_refused(self.device.name, name, None)
        refused_for = asyncio.get_running_loop().time() - refusal.since
        log.info("point answering again", device=self.device.name, point=name,
                 refused_for_s=round(refused_for, 1))  # fmt: skip
        self._recoalesce = True
        self._count()

    def _count(self) -> None:
        """The device's refused points (all its groups share ``SourceStatus``) for /metrics."""
        metrics.POINTS_REFUSED.set(len(self._status.refused(self.device.name)), device=self.device.name)
