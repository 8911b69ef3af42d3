"""structlog set-up shared by every role: JSON lines in production, readable lines on a terminal.

The protocol libraries (asyncua, pymodbus, paho) log through the standard library's ``logging``. Their records
go through the same processors and renderer as the agent's own events (structlog's ``ProcessorFormatter`` on
the root logger), so in production every line on stderr is one JSON object that a log shipper can parse, with
the library's logger name in ``logger`` and any traceback as one ``exception`` field. Their INFO lines (one
per socket opened, request sent, session closed...) say nothing an operator can act on and would drown the
agent's own events, so those libraries log from WARNING up unless ``log_level`` is ``debug``.
"""

from __future__ import annotations

import logging
import sys
import threading
from types import TracebackType

import structlog
from structlog.typing import Processor

#: Loggers of the libraries the agent drives; quieter than the agent's own (see the module docstring).
LIBRARY_LOGGERS = ("asyncua", "pymodbus", "paho")

_handler: logging.Handler | None = None  # the one handler configure() put on the root logger


def configure(level: str = "info", json: bool | None = None) -> None:
    """Configure structlog and ``logging`` for this process. ``json=None`` picks JSON unless stderr is a
    terminal. Calling it again replaces the previous set-up (handlers are not stacked)."""
    global _handler
    if json is None:
        json = not sys.stderr.isatty()
    numeric = logging.getLevelNamesMapping()[level.upper()]
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    # The console renderer prints a readable traceback itself; in JSON it must be one string field.
    tail: list[Processor] = [structlog.processors.format_exc_info] if json else []
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        # Ours from an earlier call, and logging.basicConfig's plain one: either would print each line twice.
        if old is _handler or type(old) is logging.StreamHandler:
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    _handler = handler
    library_level = logging.NOTSET if numeric <= logging.DEBUG else max(numeric, logging.WARNING)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(library_level)
    logging.captureWarnings(True)  # warnings.warn() text would be a raw line on stderr
    if json:
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_thread_exception


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    """A crash is logged as one JSON line too, instead of Python's multi-line traceback."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, exc, tb)
        return
    structlog.get_logger("agent").critical("uncaught exception", exc_info=(kind, exc, tb))


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None:
        return
    structlog.get_logger("agent").critical(
        "uncaught exception in thread",
        thread=getattr(args.thread, "name", None),
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )
