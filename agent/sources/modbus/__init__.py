"""Modbus TCP, RTU and RTU over TCP: decode registers, coalesce points into requests, poll devices that share
connections, one request at a time per connection.

Importing the package loads only the source's description and config schema (no pymodbus), so validating a
config stays quick on a gateway; the poller and probe import pymodbus when they run.
"""

from agent.sources.modbus.source import SOURCE

__all__ = ["SOURCE"]
