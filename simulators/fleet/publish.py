"""Send the fleet's traffic to a broker: QoS 1 data batches, and a retained birth per agent first.

One MQTT connection carries every agent's messages (a load tool with hundreds of agents would otherwise
need hundreds of network threads); topics, payloads, QoS and order per agent are the agents' own. Paced,
each period's batches go out on their slot (``rate`` per second per agent); unpaced, as fast as the broker
acknowledges, which is how a benchmark preloads a backlog. It returns once the broker has acknowledged
every message.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from agent import wire
from simulators.fleet.spec import FleetSpec
from simulators.fleet.traffic import messages

log = structlog.get_logger("simulators.fleet")

#: QoS 1 messages awaiting their PUBACK at once; the broker's own limit for a client is higher.
MAX_INFLIGHT = 1000


@dataclass(frozen=True)
class PublishResult:
    messages: int  # data messages, replayed copies included
    replays: int
    births: int
    seconds: float  # first publish → last PUBACK


def publish(
    spec: FleetSpec,
    host: str = "127.0.0.1",
    port: int = 1883,
    *,
    paced: bool = True,
    births: bool = True,
    root: str = wire.DEFAULT_ROOT,
    client_id: str = "kilnwatch-sim-fleet",
    timeout_s: float = 600.0,
    stop: Callable[[], bool] = lambda: False,
) -> PublishResult:
    """Publish every message of ``spec`` and wait for the broker's acknowledgements (``timeout_s`` after the
    last publish, else ``TimeoutError``); ``stop`` ends a paced run early (the CLI's Ctrl-C)."""
    import paho.mqtt.client as mqtt

    acked = 0
    lock = threading.Lock()
    connected = threading.Event()

    def on_publish(_c: mqtt.Client, _u: object, _mid: int, _rc: object, _p: object) -> None:
        nonlocal acked
        with lock:
            acked += 1

    def on_connect(_c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if not getattr(reason, "is_failure", False):
            connected.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    client.max_inflight_messages_set(MAX_INFLIGHT)
    client.on_publish, client.on_connect = on_publish, on_connect
    client.connect(host, port, keepalive=30)
    client.loop_start()
    try:
        if not connected.wait(30):
            raise TimeoutError(f"the broker at {host}:{port} did not accept the connection within 30 s")
        sent = replays = 0
        start = time.monotonic()
        if births:
            for agent in spec.agents:
                meta = [
                    {"name": c.point, "kind": c.kind, "unit": c.unit, "device": "fleet", "source": "sim"}
                    for c in agent.channels
                ]
                birth = wire.encode_birth(agent.site, agent.agent, agent.epoch, spec.t0_ms, meta)
                client.publish(wire.birth_topic(agent.site, agent.agent, root), birth, qos=1, retain=True)
                sent += 1
        for message in messages(spec, root):
            if stop():
                break
            if paced and (wait := start + message.due_s - time.monotonic()) > 0:
                time.sleep(wait)
            client.publish(message.topic, message.payload, qos=1)
            sent += 1
            replays += message.replay
        deadline = time.monotonic() + timeout_s
        while True:
            with lock:
                done = acked >= sent
            if done:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{sent - acked} of {sent} messages not acknowledged after {timeout_s} s")
            time.sleep(0.01)
        seconds = time.monotonic() - start
    finally:
        client.disconnect()
        client.loop_stop()
    birth_count = len(spec.agents) if births else 0
    result = PublishResult(sent - birth_count, replays, birth_count, seconds)
    log.info("fleet.published", messages=result.messages, replays=replays, seconds=round(seconds, 3))
    return result
