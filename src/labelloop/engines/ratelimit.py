"""One request rate shared by many processes: a schedule of permits handed out in batches.

A single scheduler (on Ray, one named actor) owns the schedule. Each worker reserves a few
permits at a time and spends them locally, so the scheduler sees one call per batch rather than
one per request, while the total rate across every worker never exceeds the limit: permits are
timestamps on one shared timeline, spaced ``1/rate`` apart, with at most ``burst`` at once.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

__all__ = ["RateSchedule", "SharedTokenBucket", "permit_batch", "share_rate_limit"]

#: A permit not spent within this many seconds of its time is dropped rather than spent late,
#: so a worker that fell idle cannot release a backlog of old permits as one burst.
STALE_AFTER_S = 0.25


class RateSchedule:
    """Generic cell-rate scheduling: ``reserve(n)`` returns when each of n permits is due.

    Over any interval of length T at most ``burst + rate·T`` permits fall due, whoever asks.
    """

    def __init__(self, rate: float, burst: float = 1.0) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate, self.burst = float(rate), max(1.0, float(burst))
        self._next = -math.inf  # when the next permit would be due with no burst credit

    def reserve(self, n: int, now: float | None = None) -> list[float]:
        """Seconds from `now` until each of `n` permits may be spent (0 = at once)."""
        now = time.monotonic() if now is None else now
        start = max(self._next, now - (self.burst - 1.0) / self.rate)
        due = [start + k / self.rate for k in range(n)]
        self._next = start + n / self.rate
        return [max(0.0, t - now) for t in due]


def permit_batch(rate: float, concurrency: int) -> int:
    """Permits to reserve per call: about 50 ms of the shared rate, at most one per request in
    flight (a worker cannot spend more at once), at least one."""
    return max(1, min(int(concurrency), math.ceil(rate * 0.05)))


class SharedTokenBucket:
    """The asyncio face of a shared schedule, a drop-in for the labelers' ``TokenBucket``.

    `reserve(n)` is an async callable returning the delays of n permits (for instance a remote
    call to the scheduler actor). Permits are fetched `batch` at a time.
    """

    def __init__(self, reserve: Callable[[int], Awaitable[Sequence[float]]], batch: int) -> None:
        self._reserve, self.batch = reserve, max(1, int(batch))
        self._due: deque[float] = deque()  # monotonic times of permits held here
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _get_lock(self) -> asyncio.Lock:
        # A labeler runs one event loop per stream; an asyncio lock belongs to one loop.
        loop = asyncio.get_running_loop()
        if self._lock is None or self._loop is not loop:
            self._lock, self._loop = asyncio.Lock(), loop
        return self._lock

    async def acquire(self) -> None:
        async with self._get_lock():
            while True:
                now = time.monotonic()
                while self._due and self._due[0] < now - STALE_AFTER_S:
                    self._due.popleft()
                if self._due:
                    break
                received = time.monotonic()
                delays = await self._reserve(self.batch)
                self._due.extend(received + d for d in delays)
            due = self._due.popleft()
        wait = due - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)


def share_rate_limit(labeler: Any, bucket: Any) -> bool:
    """Make an OpenAI-compatible labeler take its permits from `bucket` instead of its own.

    Returns False (and changes nothing) for labelers without a client-side rate limit. Every
    attempt, retries included, still takes one permit, as on one machine.
    """
    label_one = getattr(labeler, "_label_one", None)
    if label_one is None or not getattr(labeler, "requests_per_second", None):
        return False

    async def limited(client: Any, _own_bucket: Any, *args: Any) -> Any:
        return await label_one(client, bucket, *args)

    labeler._label_one = limited
    labeler.requests_per_second = None  # its own bucket would only slow it further
    return True
