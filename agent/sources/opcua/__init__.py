"""OPC UA source: poll or subscribe a server's nodes, with security, and rebuild the session on any failure.

Modules: ``poller`` (the per-server loop the runner starts), ``connection`` (one session), ``subscription``
(monitored items and the no-data watchdog), ``security`` (client certificate, server trust list, login) and
``quality`` (DataValue → reading). Those import asyncua, so they are loaded only when an ``[[opcua]]``
server is configured; importing the package loads only ``source`` and ``config``, which do not.
"""

from agent.sources.opcua.source import SOURCE

__all__ = ["SOURCE"]
