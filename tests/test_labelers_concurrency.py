"""The adaptive limit on requests in flight (AIMD), alone and against a server that queues."""

from __future__ import annotations

import pytest

from labelloop.labelers import LabelTask, OpenAILabeler
from labelloop.labelers.concurrency import AdaptiveConcurrency
from labelloop.testing.fake_openai import FakeConfig, serve_fake_openai


def answer(control: AdaptiveConcurrency, latency_s: float, times: int = 1) -> int:
    for _ in range(times):
        control.record(control.ticket(), latency_s)
    return control.limit


def test_starts_at_the_maximum_and_stays_there_while_latency_holds():
    control = AdaptiveConcurrency(8)
    assert control.limit == 8
    assert answer(control, 0.20, 100) == 8
    assert answer(control, 0.35, 100) == 8  # jitter within 2x + slack is not queueing
    assert control.decreases == 0


def test_halves_on_overload_down_to_the_minimum():
    control = AdaptiveConcurrency(16, minimum=2)
    limits = []
    for _ in range(5):
        control.record(control.ticket(), overloaded=True)
        limits.append(control.limit)
    assert limits == [8, 4, 2, 2, 2]


def test_halves_when_latency_rises_and_grows_by_one_per_window_of_steady_answers():
    control = AdaptiveConcurrency(8)
    answer(control, 1.0, 3)
    assert answer(control, 3.0) == 4  # queueing: above 2 x 1.0 + 0.5
    assert answer(control, 1.0, 3) == 4
    assert answer(control, 1.0) == 5  # a full window (4) of steady answers
    assert answer(control, 1.0, 5) == 6
    assert answer(control, 1.0, 1000) == 8  # never past the maximum
    assert control.increases == 4


def test_requests_sent_before_a_decrease_do_not_decrease_it_again():
    control = AdaptiveConcurrency(16)
    tickets = [control.ticket() for _ in range(16)]  # a burst, all sent under the same limit
    for ticket in tickets:  # all time out
        control.record(ticket, overloaded=True)
    assert control.limit == 8 and control.decreases == 1
    control.record(control.ticket(), overloaded=True)  # one sent after the decrease
    assert control.limit == 4


def test_a_failure_that_is_not_about_load_changes_nothing():
    control = AdaptiveConcurrency(4)
    answer(control, 0.1)
    control.record(control.ticket(), None)  # e.g. a dropped connection or an HTTP 500
    assert control.limit == 4 and control.decreases == 0


@pytest.mark.parametrize("bad", [dict(minimum=0), dict(minimum=5), dict(decrease=1.0)])
def test_settings_are_checked(bad):
    with pytest.raises(ValueError):
        AdaptiveConcurrency(4, **bad)


def test_against_a_server_that_answers_one_request_at_a_time():
    """At 8 in flight the queue outlasts the timeout; the adaptive limit shrinks to what the
    server can answer in time, so fewer requests are abandoned and sent again."""
    texts = [f"review {i}: a negative film" for i in range(16)]
    task = LabelTask("Sentiment.", ["positive", "negative"])
    options = dict(concurrency=8, timeout_s=0.5, backoff_base_s=0.01, backoff_max_s=0.05)
    outcomes = {}
    for adaptive in (True, False):
        with serve_fake_openai(FakeConfig(latency_s=0.1, serial=True)) as server:
            labeler = OpenAILabeler("fake-model", base_url=server.base_url, adaptive=adaptive,
                                    max_retries=4, **options)  # fmt: skip
            results = dict(labeler.label_stream(texts, task))
            outcomes[adaptive] = (results, server.stats.total, labeler.in_flight)
    results, requests, control = outcomes[True]
    assert all(r.ok for r in results.values()) and len(results) == len(texts)
    assert control.decreases >= 1 and control.limit < 8
    fixed, fixed_requests, _ = outcomes[False]
    assert requests < fixed_requests  # fewer requests abandoned by a timeout and sent again
    assert sum(r.ok for r in fixed.values()) < len(texts)  # where a fixed 8 gives up on some
