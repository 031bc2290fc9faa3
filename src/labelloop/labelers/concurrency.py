"""How many requests to keep in flight: additive increase, multiplicative decrease (AIMD).

A server that answers one request at a time (a llama.cpp server on a CPU) makes every extra
request wait; past its timeout the client leaves, retries, and the server computes answers for
nobody. The limit therefore shrinks by half when a request times out or is refused for load
(429, 503), and when latency rises well above the best seen (requests are queueing); it grows by
one after a full window of answers whose latency held. Only requests sent since the last
decrease can cause another, as in TCP: the requests already queued under the old limit say
nothing about the new one.

Pure bookkeeping, no clock and no I/O: the caller measures latencies and enforces the limit.
"""

from __future__ import annotations

import math

__all__ = ["AdaptiveConcurrency"]


class AdaptiveConcurrency:
    """The limit on requests in flight, adapted to the latencies and overloads reported.

    Parameters
    ----------
    maximum : the limit never grows past this (the user's ``--concurrency``).
    minimum : nor shrinks below this.
    initial : the starting limit (default: ``maximum``, so a fast server loses nothing).
    decrease : factor applied on overload or rising latency.
    tolerance, slack_s : latency counts as rising above ``tolerance`` × the best latency seen
        plus ``slack_s`` seconds (the slack keeps jitter on fast servers from shrinking it).

    Call :meth:`ticket` when a request is sent and :meth:`record` with that ticket when it ends.
    """

    def __init__(
        self,
        maximum: int,
        *,
        minimum: int = 1,
        initial: int | None = None,
        decrease: float = 0.5,
        tolerance: float = 2.0,
        slack_s: float = 0.5,
    ) -> None:
        if not 1 <= minimum <= maximum:
            raise ValueError(f"need 1 <= minimum <= maximum, not {minimum} and {maximum}")
        if not 0.0 < decrease < 1.0 or tolerance < 1.0 or slack_s < 0.0:
            raise ValueError("need 0 < decrease < 1, tolerance >= 1 and slack_s >= 0")
        self.maximum, self.minimum = maximum, minimum
        self.limit = min(maximum, max(minimum, initial if initial is not None else maximum))
        self.decrease, self.tolerance, self.slack_s = decrease, tolerance, slack_s
        self.best_latency_s = math.inf
        self.decreases = self.increases = 0
        self._epoch = 0  # bumped at each decrease
        self._held = 0  # answers whose latency held since the last change

    def ticket(self) -> int:
        """A token for a request being sent now; hand it back to :meth:`record`."""
        return self._epoch

    def record(self, ticket: int, latency_s: float | None = None, overloaded: bool = False) -> int:
        """Account for a finished request and return the new limit.

        ``overloaded``: it timed out or the server refused it for load. ``latency_s``: how long
        an answered request took (None when it failed otherwise, which says nothing on load).
        """
        if overloaded:
            return self._shrink(ticket)
        if latency_s is None:
            return self.limit
        rising = latency_s > self.tolerance * self.best_latency_s + self.slack_s
        self.best_latency_s = min(self.best_latency_s, latency_s)
        if rising:
            return self._shrink(ticket)
        self._held += 1
        if self._held >= self.limit and self.limit < self.maximum:
            self.limit += 1
            self.increases += 1
            self._held = 0
        return self.limit

    def _shrink(self, ticket: int) -> int:
        if ticket != self._epoch:  # sent under an older limit: already accounted for
            return self.limit
        self.limit = max(self.minimum, math.floor(self.limit * self.decrease))
        self._epoch += 1
        self._held = 0
        self.decreases += 1
        return self.limit
