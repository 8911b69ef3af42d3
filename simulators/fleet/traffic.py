"""The fleet's messages in publish order: every agent's batch of each period, one period after another.

Per agent, the order is what its outbox produces: batches in ``seq`` order; a batch whose PUBACK was lost
is sent again, byte for byte, just before the agent's next batch (the replay after reconnecting); during an
outage batches pile up and are sent late, oldest first, before the first batch after it. Messages are made
period by period, so a long run never holds more than an outage's backlog in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from agent import wire
from simulators.fleet.spec import AgentSpec, FleetSpec


@dataclass(frozen=True, slots=True)
class Message:
    """One data message. ``due_s`` is when it goes out, in seconds from the run's start (its period's slot);
    ``replay`` marks the second copy of a duplicated batch."""

    due_s: float
    topic: str
    payload: bytes
    site: str
    agent: str
    seq: int
    replay: bool = False


def batch(spec: FleetSpec, agent: AgentSpec, k: int) -> wire.Batch:
    """Batch ``k`` of ``agent``: one reading of every channel, all stamped at the period's time."""
    out = wire.Batch(agent.site, agent.agent, agent.epoch, k)
    t_ms, t_s = spec.t_ms(k), spec.t_s(k)
    for channel in agent.channels:
        out.add(channel.point, t_ms, channel.value(t_s))
    return out


def messages(spec: FleetSpec, root: str = wire.DEFAULT_ROOT) -> Iterator[Message]:
    """Every data message of the run, in publish order."""
    outboxes = [_Outbox(agent, wire.data_topic(agent.site, agent.agent, root)) for agent in spec.agents]
    outage = spec.outage_periods()
    for k in range(spec.periods + 1):  # the extra slot sends what is still owed after the last period
        for box in outboxes:
            yield from box.slot(spec, k, k < spec.periods and k in outage and spec.held(box.agent))


class _Outbox:
    """One agent's outbox: the batch owed again after a lost PUBACK, and the batches an outage held back."""

    def __init__(self, agent: AgentSpec, topic: str) -> None:
        self.agent, self.topic = agent, topic
        self.owed: tuple[int, bytes] | None = None
        self.held: list[tuple[int, bytes]] = []

    def slot(self, spec: FleetSpec, k: int, cut_off: bool) -> Iterator[Message]:
        """What the agent sends in period ``k`` (``k == spec.periods``: only what it still owes)."""
        due = k * spec.period_s
        if self.owed is not None:
            yield self._message(due, *self.owed, replay=True)
            self.owed = None
        if cut_off:
            self.held.append((k, wire.encode_batch(batch(spec, self.agent, k))))
            return
        for seq, payload in self.held:
            yield self._message(due, seq, payload)
            if spec.duplicated(self.agent, seq):
                yield self._message(due, seq, payload, replay=True)
        self.held.clear()
        if k < spec.periods:
            payload = wire.encode_batch(batch(spec, self.agent, k))
            yield self._message(due, k, payload)
            if spec.duplicated(self.agent, k):
                self.owed = (k, payload)

    def _message(self, due: float, seq: int, payload: bytes, replay: bool = False) -> Message:
        return Message(due, self.topic, payload, self.agent.site, self.agent.agent, seq, replay)


def batches(spec: FleetSpec, root: str = wire.DEFAULT_ROOT) -> Iterator[tuple[str, bytes]]:
    """``(topic, payload)`` of every data message, in publish order."""
    for message in messages(spec, root):
        yield message.topic, message.payload
