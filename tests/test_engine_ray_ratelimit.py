"""The shared request-rate schedule and its asyncio client, without a cluster."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from labelloop.labelers import OpenAILabeler
from labelloop.labelers.ratelimit import (
    STALE_AFTER_S,
    RateSchedule,
    SharedTokenBucket,
    endpoint_rates,
    leaf_labelers,
    permit_batch,
    share_rate_limit,
)


def run_isolated(coroutine):
    """asyncio.run in a thread of its own: another test's event loop (the browser tests')
    may still be running in the main thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _most_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max(np.searchsorted(times, t + window, side="left") - k for k, t in enumerate(times))


@pytest.mark.parametrize("burst", [1.0, 5.0])
def test_many_askers_never_exceed_rate_plus_burst(burst: float) -> None:
    rate = 10.0
    schedule = RateSchedule(rate, burst)
    rng = np.random.default_rng(0)
    due: list[float] = []
    now = 0.0
    for _ in range(200):  # askers at random moments, in batches of 1 to 4 permits
        now += float(rng.exponential(0.2))
        due += [now + d for d in schedule.reserve(int(rng.integers(1, 5)), now=now)]
    for window in (0.5, 1.0, 3.0):
        assert _most_in_window(due, window) <= burst + rate * window + 1e-9
    # Permits are not wasted: over the whole run they come at the full rate when asked for.
    busy = RateSchedule(rate, burst)
    times = busy.reserve(100, now=0.0)
    assert times[-1] == pytest.approx((100 - burst) / rate)


def test_idle_time_gives_at_most_burst_credit() -> None:
    schedule = RateSchedule(4.0, burst=3.0)
    schedule.reserve(10, now=0.0)
    delays = schedule.reserve(5, now=100.0)
    assert delays[:3] == [0.0, 0.0, 0.0]
    assert delays[3] == pytest.approx(0.25) and delays[4] == pytest.approx(0.5)


def test_bad_rate_is_refused() -> None:
    with pytest.raises(ValueError):
        RateSchedule(0.0)


def test_permit_batch_stays_small_and_positive() -> None:
    assert permit_batch(0.5, 16) == 1
    assert permit_batch(100.0, 16) == 5  # 50 ms of the shared rate
    assert permit_batch(10_000.0, 8) == 8  # never more than the requests a worker has in flight


def test_bucket_spaces_requests_and_fetches_in_batches() -> None:
    schedule = RateSchedule(50.0)
    calls: list[int] = []

    async def reserve(n: int) -> list[float]:
        calls.append(n)
        return schedule.reserve(n)

    bucket = SharedTokenBucket(reserve, batch=4)

    async def spend(k: int) -> list[float]:
        stamps = []
        for _ in range(k):
            await bucket.acquire()
            stamps.append(time.monotonic())
        return stamps

    async def main() -> list[float]:
        parts = await asyncio.gather(*(spend(5) for _ in range(4)))
        return [t for part in parts for t in part]

    stamps = sorted(run_isolated(main()))
    assert len(stamps) == 20
    assert calls and all(n == 4 for n in calls) and sum(calls) >= 20
    assert stamps[-1] - stamps[0] >= 19 / 50.0 * 0.9
    # The same bucket works from another event loop (a labeler opens one per stream).
    assert len(run_isolated(spend(3))) == 3


def test_stale_permits_are_dropped_not_spent_late() -> None:
    async def reserve(n: int) -> list[float]:
        return [0.0] * n

    bucket = SharedTokenBucket(reserve, batch=3)
    run_isolated(bucket.acquire())
    assert len(bucket._due) == 2
    bucket._due = type(bucket._due)(t - 10 * STALE_AFTER_S for t in bucket._due)
    run_isolated(bucket.acquire())
    assert len(bucket._due) == 2  # the two old permits went; a fresh batch of 3 was taken


def test_share_rate_limit_only_touches_rate_limited_labelers() -> None:
    unlimited = OpenAILabeler("m", base_url="http://127.0.0.1:9/v1")
    assert share_rate_limit(unlimited, object()) is False
    limited = OpenAILabeler("m", base_url="http://127.0.0.1:9/v1", requests_per_second=5)
    assert share_rate_limit(limited, object()) is True
    assert limited.requests_per_second is None


def test_an_unknown_engine_is_bad_input(cli, tmp_path) -> None:
    assert cli("init", tmp_path / "p", "--task", "Sort.", "--labels", "a,b") == 0
    assert cli("prelabel", "--engine", "spark", "--project", tmp_path / "p") == 2


def test_endpoint_rates_take_the_strictest_per_endpoint() -> None:
    from labelloop.labelers import Committee

    def member(name: str, url: str, rate: float | None) -> OpenAILabeler:
        return OpenAILabeler(name, base_url=url, requests_per_second=rate)

    a, b = "http://127.0.0.1:9/v1", "http://127.0.0.2:9/v1"
    inner = Committee([member("m2", a, 5.0), member("m3", b, 7.0)])
    committee = Committee([member("m1", a, 10.0), inner, member("m4", b, None)])
    assert [leaf.model_id for leaf in leaf_labelers(committee)] == ["m1", "m2", "m3", "m4"]
    assert endpoint_rates(leaf_labelers(committee)) == {a: 5.0, b: 7.0}


def test_a_local_committee_shares_its_endpoints_limit() -> None:
    """Two members calling one endpoint at 20 requests/s each stay at 20/s together; the
    labelers given to the committee keep their own settings."""
    from labelloop.labelers import Committee, LabelTask
    from labelloop.testing.fake_openai import FakeConfig, serve_fake_openai

    rate = 20.0
    with serve_fake_openai(FakeConfig(latency_s=0.005)) as server:
        members = [
            OpenAILabeler(name, base_url=server.base_url, concurrency=4, requests_per_second=rate)
            for name in ("fake-model", "fake-model-b")
        ]
        task = LabelTask("Sentiment.", ["positive", "negative"])
        texts = [f"item {i} is {('positive', 'negative')[i % 2]}" for i in range(15)]
        results = dict(Committee(members).label_stream(texts, task))
        times = sorted(t for t, _ in server.stats.arrivals)
    assert len(results) == 15 and all(r.ok for r in results.values())
    assert len(times) == 30
    assert times[-1] - times[0] >= 29 / rate * 0.9  # one limit, not one per member
    # Arrival times carry the machine's scheduling delays: a late request can land in the next
    # second beside that second's own, hence one more tolerated in a window than the schedule.
    assert _most_in_window(times, 1.0) <= rate + 2
    assert all(m.requests_per_second == rate for m in members)
