"""``/healthz`` and ``/metrics`` of the collector, served on a thread of their own.

The responder is the agent's (``agent.health.HealthServer``: HTTP/1.0, GET and HEAD, ``Cache-Control:
no-store``), run on a private event loop in a daemon thread, because the collector's pipeline is threads
(paho's network loop, the group-apply loop), not asyncio. Its own thread also means a wedged pipeline
leaves the endpoint answering, with ``down`` and the reason (``collector.ops.health``), rather than silent.

The address is ``collector.http`` (``"host:port"``, ``"[::1]:9108"`` for IPv6, ``""`` for off). A bad
value or a port already in use raises ``ConfigError`` naming the key and the fix, like any config error.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from types import TracebackType

import structlog

from agent.config_load import ConfigError
from agent.health import HealthServer
from collector.ops.health import HealthLimits, assess
from collector.ops.stats import CollectorStats

log = structlog.get_logger("collector.ops.http")

#: Seconds to wait for the server thread to bind or to stop.
_START_TIMEOUT_S = 10.0


def parse_listen(value: str | None, where: str = "collector.http") -> tuple[str, int] | None:
    """``"host:port"`` → (host, port); ``""`` or None → None (off); else ``ConfigError`` naming ``where``."""
    if not value:
        return None
    host, _, port = value.rpartition(":")
    if not (host and port.isdigit() and 1 <= int(port) <= 65535):
        raise ConfigError(
            [f'{where}: {value!r} is not host:port — write e.g. http = "127.0.0.1:9108", or "" for off']
        )
    return host.strip("[]"), int(port)


class OpsServer:
    """The endpoint of one collector process: ``start()`` binds (or raises), ``close()`` stops it.

    ``config_file`` only names the file in error lines. Port 0 binds a free port (``port`` tells which).
    """

    def __init__(
        self,
        listen: str | None,
        stats: CollectorStats,
        limits: HealthLimits | None = None,
        config_file: str | Path | None = None,
    ) -> None:
        self._where = f"{config_file}: collector.http" if config_file else "collector.http"
        self.listen = listen or ""
        self.address = parse_listen(listen, self._where)
        self.stats = stats
        self.limits = limits or HealthLimits()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: HealthServer | None = None

    @property
    def port(self) -> int | None:
        return None if self._server is None else self._server.port

    def check(self) -> tuple[bool, dict[str, object]]:
        """(answers 200, /healthz document): ``down`` is 503, ``ok`` and ``degraded`` are 200."""
        status, details = assess(self.stats.snapshot(), self.limits)
        return status != "down", details

    def start(self) -> None:
        """Bind and serve on the server thread; a no-op when the endpoint is off."""
        if self.address is None:
            log.info("ops endpoint off", key=self._where)
            return
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="collector-ops-http", daemon=True)
        thread.start()
        server = HealthServer(*self.address, check=self.check, metrics=self.stats.render)
        try:
            asyncio.run_coroutine_threadsafe(server.start(), loop).result(_START_TIMEOUT_S)
        except OSError as exc:
            _stop(loop, thread)
            why = os.strerror(exc.errno) if exc.errno else str(exc)
            raise ConfigError(
                [
                    f"{self._where}: cannot listen on {self.listen!r}: {why} — pick a free"
                    ' port (another collector or agent may hold this one), or set http = "" to turn the'
                    " endpoint off"
                ]
            ) from exc
        self._loop, self._thread, self._server = loop, thread, server

    def close(self) -> None:
        if self._loop is None or self._thread is None or self._server is None:
            return
        asyncio.run_coroutine_threadsafe(self._server.close(), self._loop).result(_START_TIMEOUT_S)
        _stop(self._loop, self._thread)
        self._loop = self._thread = self._server = None

    def __enter__(self) -> OpsServer:
        self.start()
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.close()


def _stop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    loop.call_soon_threadsafe(loop.stop)
    thread.join(_START_TIMEOUT_S)
    loop.close()
