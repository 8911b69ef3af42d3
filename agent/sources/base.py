"""What a source is to the rest of the agent: the interface every ``agent/sources/<name>/`` package fills in.

The runner, ``kilnwatch agent check``, ``probe`` and the health code know sources only through this
interface and the registry (``agent.sources.registry``): a new protocol is one new folder plus one line
there. A source's package ``__init__`` must stay light (no protocol library, no poller import): it is
imported for every config validation, also by ``check`` on a machine without the protocol library.

Conventions every source's config table follows, so channel lists and duplicate-name checks are generic:
the table has a ``name`` (the device) and ``points``, each point with ``name``, ``kind`` and ``unit``.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from agent.config_model import StrictModel
from agent.sources.reading import Sink

Echo = Callable[[str], None]
Poller = tuple[str, Coroutine[None, None, None]]


@dataclass(frozen=True)
class Channel:
    """One published channel, as the birth message lists it."""

    name: str
    kind: str
    unit: str
    device: str
    source: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "kind": self.kind, "unit": self.unit, "device": self.device,
                "source": self.source}  # fmt: skip


@dataclass(frozen=True)
class PointAnswer:
    """What ``check --probe`` found for one point: ``value`` if it answered, else ``error`` in words."""

    point: str
    value: object = None
    error: str | None = None

    @property
    def answered(self) -> bool:
        return self.error is None


@dataclass
class DeviceState:
    """Points a device refuses (e.g. Modbus exception 02), as its poller last found them: point → reason."""

    refused: dict[str, str] = field(default_factory=dict)


class SourceStatus:
    """Shared by the pollers (which write) and the health/metrics code (which reads), from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._devices: dict[str, DeviceState] = {}

    def set_refused(self, device: str, point: str, reason: str | None) -> None:
        """Mark ``point`` of ``device`` refused for ``reason``, or answering again (``reason`` None)."""
        with self._lock:
            state = self._devices.setdefault(device, DeviceState())
            if reason is None:
                state.refused.pop(point, None)
            else:
                state.refused[point] = reason

    def refused(self, device: str) -> dict[str, str]:
        with self._lock:
            state = self._devices.get(device)
            return dict(state.refused) if state is not None else {}

    def clear(self) -> None:
        """Forget everything (the pollers are restarted with a new config)."""
        with self._lock:
            self._devices.clear()


class Source(ABC):
    """One protocol. Subclasses set the class attributes and implement the methods; one instance each."""

    #: The config section: ``[[modbus]]``; also the ``source`` of its channels.
    key: ClassVar[str]
    #: What one table of the section is, for messages: "Modbus device", "OPC UA server".
    title: ClassVar[str]
    #: The model of one ``[[key]]`` table.
    config: ClassVar[type[StrictModel]]
    #: Keys of a table that hold file or folder paths, taken from the config file's folder when relative.
    path_keys: ClassVar[tuple[str, ...]] = ()
    #: URL schemes ``kilnwatch agent probe`` hands to this source.
    schemes: ClassVar[tuple[str, ...]] = ()

    def channels(self, table: Any) -> list[Channel]:
        return [Channel(p.name, p.kind, p.unit, table.name, self.key) for p in table.points]

    def problems(self, tables: Sequence[Any]) -> list[str]:
        """Problems across the section's tables (``<key path>: <sentence>`` lines); none by default."""
        return []

    def stall_limit(self, table: Any, stall_s: float) -> float | None:
        """Seconds ``table``'s device may go without a poll cycle before /healthz fails; None: not watched."""
        return None

    @abstractmethod
    def pollers(self, tables: Sequence[Any], sink: Sink, status: SourceStatus) -> list[Poller]:
        """The tasks that serve ``tables`` until cancelled. Imports the protocol library (only now)."""

    @abstractmethod
    def describe(self, table: Any) -> str:
        """One line for ``kilnwatch agent check``: endpoint, security, points and how they are read."""

    @abstractmethod
    async def probe(self, table: Any, timeout: float) -> list[PointAnswer]:
        """Read every point of ``table`` once (``check --probe``): which ones the device answers."""

    @abstractmethod
    def probe_url(self, url: str, options: dict[str, Any], echo: Echo) -> int:
        """``kilnwatch agent probe URL``: read once, print, return the exit status (0 ok, 1 failed, 2 usage).

        ``options`` holds the command line's options by name; a source uses those that apply to it and
        returns 2 with a message naming any that do not.
        """
