"""An in-process MQTT broker (amqtt) for the one-command demo: no server to install.

amqtt speaks MQTT 3.1.1 only and is several times slower than Mosquitto (stack notes), which is plenty for
one simulated plant. Production uses Mosquitto; see deploy/.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def embedded_broker(port: int, host: str = "127.0.0.1") -> Iterator[None]:
    """Run a broker on ``host:port`` in a background thread for the duration of the ``with`` block."""
    from amqtt.broker import Broker

    for name in ("amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.ERROR)
    config = {
        # Always bind explicitly: amqtt's default listener is 0.0.0.0:1883.
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "sys_interval": 0,
        "auth": {"allow-anonymous": True},
        "topic-check": {"enabled": False},
    }
    loop = asyncio.new_event_loop()
    holder: dict[str, Broker] = {}

    async def start() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            holder["broker"] = Broker(config)
            await holder["broker"].start()

    thread = threading.Thread(target=loop.run_forever, name="embedded-broker", daemon=True)
    thread.start()
    started = asyncio.run_coroutine_threadsafe(start(), loop)
    started.result(timeout=20)
    try:
        yield
    finally:
        asyncio.run_coroutine_threadsafe(holder["broker"].shutdown(), loop).result(timeout=20)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
