"""Awaiting a protocol library's call so that cancelling the caller always works (see ``cancellable``)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def cancellable(call: Coroutine[Any, Any, T], timeout: float) -> T:
    """``await call`` for at most ``timeout`` seconds, and stop at once when the caller is cancelled.

    pymodbus and asyncua wait for each answer with ``asyncio.wait_for``, which in Python 3.11 loses a
    cancellation that arrives as the answer does (fixed in 3.12): with a fast meter about one cancellation in
    two was lost, and a poller that ignores its cancellation hangs the agent's stop and every config reload.
    So the call runs as its own task behind ``shield``: the caller's cancellation always reaches the caller,
    and the call is cancelled too (it ends by itself at the latest when the caller closes its connection).
    """
    task = asyncio.ensure_future(call)
    task.add_done_callback(lambda t: t.cancelled() or t.exception())  # no "exception never retrieved"
    try:
        async with asyncio.timeout(timeout):
            return await asyncio.shield(task)
    except BaseException:
        task.cancel()
        raise
