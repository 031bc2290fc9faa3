"""One request rate shared by many processes: a schedule of permits handed out in batches.

A single scheduler (on Ray, one named actor) owns the schedule. Each worker reserves a few
permits at a time and spends them locally, so the scheduler sees one call per batch rather than
one per request, while the total rate across every worker never exceeds the limit: permits are
timestamps on one shared timeline, spaced ``1/rate`` apart, with at most ``burst`` at once.

Limits are per endpoint: every labeler calling the same endpoint (a committee's members, on every
worker) draws on that endpoint's one schedule, at the strictest rate any of them asks for.
"""

from __future__ import annotations

import asyncio
import copy
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

__all__ = [
    "LocalSchedules",
    "RateSchedule",
    "SharedTokenBucket",
    "endpoint_of",
    "endpoint_rates",
    "leaf_labelers",
    "permit_batch",
    "share_endpoint_limits",
    "share_rate_limit",
    "with_shared_endpoint_limits",
]

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


def leaf_labelers(labeler: Any) -> list[Any]:
    """The labelers that send requests: `labeler` itself, or a committee's members (nested
    committees included)."""
    members = getattr(labeler, "members", None)
    if members is None:
        return [labeler]
    return [leaf for member in members for leaf in leaf_labelers(member)]


def endpoint_of(labeler: Any) -> str | None:
    """The key of a labeler's rate limit: its endpoint, when it has a client-side limit."""
    if not getattr(labeler, "requests_per_second", None):
        return None
    return str(getattr(labeler, "base_url", None) or type(labeler).__name__)


def endpoint_rates(labelers: Sequence[Any]) -> dict[str, float]:
    """One rate per endpoint among `labelers`: labelers that call the same endpoint share one
    limit, the strictest any of them asks for."""
    rates: dict[str, float] = {}
    for leaf in labelers:
        key = endpoint_of(leaf)
        if key is not None:
            rate = float(leaf.requests_per_second)
            rates[key] = min(rates.get(key, rate), rate)
    return rates


def share_endpoint_limits(
    labelers: Sequence[Any],
    reserve_for: Callable[[str], Callable[[int], Awaitable[Sequence[float]]]],
    rates: dict[str, float],
) -> None:
    """Make every rate-limited labeler take its permits from its endpoint's schedule, through
    ``reserve_for(endpoint)`` (an async ``reserve(n)``), each with a bucket of its own."""
    for labeler in labelers:
        key = endpoint_of(labeler)
        if key is not None:
            batch = permit_batch(rates[key], getattr(labeler, "concurrency", 1))
            share_rate_limit(labeler, SharedTokenBucket(reserve_for(key), batch))


class LocalSchedules:
    """Per-endpoint schedules for the threads of one process (a committee's members)."""

    def __init__(self, rates: dict[str, float], burst: float = 1.0) -> None:
        self._schedules = {key: RateSchedule(rate, burst) for key, rate in rates.items()}
        self._lock = threading.Lock()

    def reserve_for(self, key: str) -> Callable[[int], Awaitable[list[float]]]:
        schedule = self._schedules[key]

        async def reserve(n: int) -> list[float]:
            with self._lock:
                return schedule.reserve(n)

        return reserve


def with_shared_endpoint_limits(labelers: Sequence[Any]) -> list[Any]:
    """`labelers` as run side by side in one process: those that call one endpoint with a
    client-side limit get copies drawing on one schedule for that endpoint, so together they
    stay within its rate; the others (and the originals) are left as they are."""
    keys = [endpoint_of(labeler) for labeler in labelers]
    shared = {key for key in keys if key is not None and keys.count(key) > 1}
    if not shared:
        return list(labelers)
    rates = {k: r for k, r in endpoint_rates(labelers).items() if k in shared}
    copies = [copy.copy(m) if k in shared else m for m, k in zip(labelers, keys, strict=True)]
    share_endpoint_limits(
        [m for m, k in zip(copies, keys, strict=True) if k in shared],
        LocalSchedules(rates).reserve_for,
        rates,
    )
    return copies
