"""A background thread that drains a ``SinkQueue`` into a ``Writer``.

Ingest only appends to the durable queue, so a sink outage never blocks it; lines leave the queue only
once the sink has accepted them, so an outage never loses them. Retryable failures back off
exponentially (with jitter, capped at ``backoff_max_s``). A batch the sink rejects as bad data is split
until the bad lines are alone: those go to the dead-letter store with the server's reason, everything
else is written. Writes are idempotent, so lines written by a batch that later failed are harmless.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass

import structlog

from collector.sinks.errors import SinkError
from collector.sinks.sink_queue import SinkQueue
from collector.sinks.writer import Writer

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class DispatcherStats:
    """A consistent snapshot of the dispatcher's counters (lines, not requests, except ``retries``)."""

    written: int
    retries: int
    dead_lettered: int
    queue_depth: int
    last_error: str | None
    last_success_ts: float | None


class SinkDispatcher:
    """Drains ``queue`` into ``writer`` on its own thread: ``start()``, then ``flush()``/``stop()``."""

    def __init__(
        self,
        queue: SinkQueue,
        writer: Writer,
        *,
        name: str = "influx",
        batch_lines: int = 5000,
        idle_poll_s: float = 0.5,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
    ) -> None:
        self._queue = queue
        self._writer = writer
        self._batch_lines = batch_lines
        self._idle_poll_s = idle_poll_s
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._log = log.bind(sink=name)
        self._stopping = threading.Event()
        self._wakeup = threading.Event()
        self._progress = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"sink-{name}", daemon=True)
        self._written = self._retries = self._dead_lettered = 0
        self._last_error: str | None = None
        self._last_success_ts: float | None = None

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Look at the queue now instead of at the next idle poll (call after appending)."""
        self._wakeup.set()

    def flush(self, timeout: float) -> bool:
        """Wait until the queue is empty; ``False`` if it is not after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        self.wake()
        with self._progress:
            while self._queue.depth() > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._progress.wait(min(remaining, self._idle_poll_s))
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """End the thread after the request in flight; queued lines stay queued for the next start."""
        self._stopping.set()
        self._wakeup.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def stats(self) -> DispatcherStats:
        with self._progress:
            return DispatcherStats(
                written=self._written,
                retries=self._retries,
                dead_lettered=self._dead_lettered,
                queue_depth=self._queue.depth(),
                last_error=self._last_error,
                last_success_ts=self._last_success_ts,
            )

    def _run(self) -> None:
        delay = self._backoff_initial_s
        failing = False
        while not self._stopping.is_set():
            try:
                batch = self._queue.peek(self._batch_lines)
                if not batch:
                    self._wakeup.wait(self._idle_poll_s)
                    self._wakeup.clear()
                    continue
                self._deliver(batch)
            except Exception as error:  # a sink or queue failure must never end the thread
                expected = isinstance(error, SinkError)
                detail = error.detail if expected else f"{type(error).__name__}: {error}"
                pause = delay * random.uniform(0.5, 1.0)
                with self._progress:
                    self._retries += 1
                    self._last_error = detail
                self._log.warning(
                    "sink_write_failed", error=detail, retry_in_s=round(pause, 3), exc_info=not expected
                )
                failing = True
                self._stopping.wait(pause)
                delay = min(delay * 2, self._backoff_max_s)
            else:
                if failing:
                    self._log.info("sink_recovered", retries=self._retries)
                failing = False
                delay = self._backoff_initial_s

    def _deliver(self, batch: list[tuple[int, str]]) -> None:
        """Write ``batch``; split around lines rejected as bad data. Retryable errors propagate."""
        chunks = [batch]
        while chunks:
            chunk = chunks.pop()
            try:
                self._writer.write([line for _, line in chunk])
            except SinkError as error:
                if error.retryable:
                    raise
                named = set(error.offending)
                if len(chunk) == 1 or all(line in named for _, line in chunk):
                    self._reject(chunk, error)
                else:
                    chunks.extend(reversed(_split(chunk, named)))
                continue
            self._queue.remove([item_id for item_id, _ in chunk])
            with self._progress:
                self._written += len(chunk)
                self._last_success_ts = time.time()
                self._progress.notify_all()

    def _reject(self, chunk: list[tuple[int, str]], error: SinkError) -> None:
        self._queue.dead_letter(chunk, error.detail)
        with self._progress:
            self._dead_lettered += len(chunk)
            self._last_error = error.detail
            self._progress.notify_all()
        self._log.error("sink_dead_lettered", lines=len(chunk), first_line=chunk[0][1], error=error.detail)


def _split(chunk: list[tuple[int, str]], named: set[str]) -> list[list[tuple[int, str]]]:
    """The parts to retry, in order: the lines the server did not name, then those it did; else halves."""
    suspects = [item for item in chunk if item[1] in named]
    if suspects and len(suspects) < len(chunk):
        return [[item for item in chunk if item[1] not in named], suspects]
    middle = len(chunk) // 2
    return [chunk[:middle], chunk[middle:]]
