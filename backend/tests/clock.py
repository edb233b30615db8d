"""A stopped clock for the shared counters, so a burst of attempts never straddles two minute windows."""

from __future__ import annotations

import time

from lib import counters


class FrozenClock:
    """The counters' clock, stopped one second into a minute; monotonic time still runs."""

    def __init__(self) -> None:
        self.now = (time.time() // counters.WINDOW_SECONDS) * counters.WINDOW_SECONDS + 1.0

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return time.monotonic()
