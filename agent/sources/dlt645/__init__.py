"""DL/T 645-2007, the protocol of Chinese electricity meters, over RS-485 or a transparent TCP gateway.

Importing the package loads only the source's description and config schema (no pyserial), so validating a
config stays quick on a gateway and works without the protocol library; ``link`` (pyserial), ``poller`` and
``probe`` are loaded when they run. Modules: ``frame`` (frames on the wire), ``identifiers`` (the data
identifier table and BCD decoding), ``config``, ``connections`` (meters sharing a line), ``link`` (one line,
one request at a time), ``cycle`` (one poll of a meter), ``poller`` and ``probe``.
"""

from agent.sources.dlt645.source import SOURCE

__all__ = ["SOURCE"]
