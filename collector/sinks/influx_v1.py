"""InfluxDB 1.x HTTP API (``POST /write``, ``POST /query``) with the standard library only.

Debian's InfluxDB 1.6.7 has no ``/api/v2`` endpoints, so influxdb-client cannot talk to it (stack notes);
the v1 API is two plain POSTs, which ``urllib`` does without another dependency.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from urllib.parse import urlencode

from collector.sinks.config import InfluxConfig
from collector.sinks.errors import SinkError, describe_rejection

#: gzip level 1: most of the size gain at a fraction of the CPU of level 6 (line protocol is repetitive).
_GZIP_LEVEL = 1


class InfluxV1Writer:
    """Writes line protocol to ``{url}/write?db=&rp=&precision=ms`` in batches of ``batch_lines``.

    A failed batch raises ``SinkError`` at once; earlier batches of the same call stay written, which is
    harmless because a rewrite of the same series and timestamp overwrites (idempotent writes).
    """

    def __init__(self, config: InfluxConfig) -> None:
        if config.api != "v1":
            raise ValueError(f"InfluxV1Writer needs api = 'v1', got {config.api!r}")
        self._config = config
        params = {"db": config.database, "precision": "ms"}
        if config.retention_policy:
            params["rp"] = config.retention_policy
        self._write_url = f"{config.url}/write?{urlencode(params)}"
        self._query_url = f"{config.url}/query"
        self._auth: dict[str, str] = {}
        if config.username is not None and config.password is not None:
            credentials = f"{config.username}:{config.password.get_secret_value()}".encode()
            self._auth["Authorization"] = "Basic " + base64.b64encode(credentials).decode("ascii")

    def write(self, lines: list[str]) -> None:
        size = self._config.batch_lines
        for start in range(0, len(lines), size):
            self._write_batch(lines[start : start + size])

    def ensure_database(self) -> None:
        """``CREATE DATABASE`` (a no-op when it exists, so safe on every start)."""
        name = self._config.database or ""
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        body = urlencode({"q": f'CREATE DATABASE "{quoted}"'}).encode()
        answer = self._post(
            self._query_url, body, {"Content-Type": "application/x-www-form-urlencoded"}, lines=()
        )
        errors = [result["error"] for result in json.loads(answer).get("results", []) if "error" in result]
        if errors:
            raise SinkError(False, f"CREATE DATABASE {name!r} failed: {'; '.join(errors)}")

    def close(self) -> None:
        """Nothing to release: every request opens and closes its own connection."""

    def _write_batch(self, batch: list[str]) -> None:
        body = "\n".join(batch).encode()
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self._config.gzip:
            body = gzip.compress(body, compresslevel=_GZIP_LEVEL)
            headers["Content-Encoding"] = "gzip"
        try:
            self._post(self._write_url, body, headers, lines=batch)
        except SinkError as error:
            # The server was down when the collector started (or lost its data): create the database
            # here, or every queued line would wait on a 404 until the next restart.
            if "database not found" not in error.detail:
                raise
            try:
                self.ensure_database()
            except SinkError:
                raise error from None  # no right to create it: still the lines are fine, keep them queued
            self._post(self._write_url, body, headers, lines=batch)

    def _post(self, url: str, body: bytes, headers: dict[str, str], lines: Sequence[str]) -> bytes:
        request = urllib.request.Request(url, data=body, headers=headers | self._auth, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self._config.timeout_s) as response:
                return response.read()
        except urllib.error.HTTPError as error:
            raise describe_rejection(error.code, _server_message(error), lines) from error
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            reason = getattr(error, "reason", None) or error
            raise SinkError(True, f"{self._config.url} unreachable: {reason}") from error


def _server_message(error: urllib.error.HTTPError) -> str:
    """InfluxDB answers ``{"error": "..."}``; fall back to the raw body for proxies and other servers."""
    try:
        raw = error.read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        return error.reason or ""
    try:
        return str(json.loads(raw)["error"])
    except (ValueError, KeyError, TypeError):
        return raw or str(error.reason)
