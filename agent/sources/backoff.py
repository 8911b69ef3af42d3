"""A polled device's failure state: how long to leave it alone after cycles that failed.

A device that stops answering would hold its line (shared by every device on an RS-485 bus or gateway) for a
whole timeout every cycle; backing off exponentially from its interval, up to ``MAX_BACKOFF_S``, keeps that
line time for the devices that answer, and still notices the device's return within a minute.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Longest pause between attempts on a device that keeps failing, in seconds.
MAX_BACKOFF_S = 60.0


@dataclass
class Backoff:
    """How many cycles in a row failed, and when to try again (loop time). One per device, shared by its
    poll groups so that one outage backs them all off."""

    base: float
    failures: int = 0
    retry_at: float = 0.0

    def failed(self, started: float, now: float) -> bool:
        """Record a failed cycle that began at ``started``; True on the first failure of an outage (the one
        worth a warning).

        A failure another group already recorded while this cycle ran is the same outage: one step, not two.
        """
        if self.retry_at > started:
            return False
        self.failures += 1
        self.retry_at = now + min(self.base * 2 ** (self.failures - 1), MAX_BACKOFF_S)
        return self.failures == 1
