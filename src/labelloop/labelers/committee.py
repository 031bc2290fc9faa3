"""A committee: several labelers on the same items, their votes and disagreement kept.

Members run side by side (one thread each, so a local model and a remote endpoint overlap); an
item is yielded as soon as every member has answered it. The committee's distribution is the
average of the members' distributions (a member without probabilities counts as a one-hot vote),
so it stays a real distribution that downstream calibration can use. Members that call the same
endpoint with a client-side rate limit share one limit for that endpoint (the strictest asked).
"""

from __future__ import annotations

import queue
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from labelloop.labelers.base import Labeler, LabelResult, LabelTask, stable_hash
from labelloop.labelers.ratelimit import with_shared_endpoint_limits

__all__ = ["Committee", "combine", "disagreement"]


def combine(results: Sequence[LabelResult], labels: Sequence[str]) -> LabelResult:
    """Merge members' results for one item: mean distribution, votes, summed accounting."""
    valid = [r for r in results if r.ok]
    accounting: dict[str, Any] = {
        "tokens_in": sum(r.tokens_in for r in results),
        "tokens_out": sum(r.tokens_out for r in results),
        "latency_s": max((r.latency_s for r in results), default=0.0),
        "cost_usd": sum(r.cost_usd for r in results),
        "truncated": any(r.truncated for r in results),
        "members": list(results),
    }
    if not valid:
        errors = "; ".join(f"{r.error}" for r in results)
        return LabelResult(None, None, None, error=f"every member failed: {errors}", **accounting)
    index = {label: k for k, label in enumerate(labels)}
    dist = np.zeros((len(valid), len(labels)))
    for row, result in zip(dist, valid, strict=True):
        if result.probs:
            row[:] = [result.probs.get(label, 0.0) for label in labels]
        if row.sum() <= 0:
            row[index[result.label]] = 1.0  # type: ignore[index]
        row /= row.sum()
    mean = dist.mean(axis=0)
    best = int(np.argmax(mean))  # ties go to the earlier label, deterministically
    votes = Counter(r.label for r in valid)
    reasoning = next((r.reasoning for r in valid if r.label == labels[best] and r.reasoning), "")
    return LabelResult(
        labels[best],
        {label: float(p) for label, p in zip(labels, mean, strict=True)},
        float(mean[best]),
        reasoning,
        votes={str(k): v for k, v in votes.items()},
        **accounting,
    )


def disagreement(result: LabelResult) -> float:
    """Share of valid votes that differ from the majority (0 = unanimous)."""
    if not result.votes:
        return 0.0
    total = sum(result.votes.values())
    return 1.0 - max(result.votes.values()) / total


class Committee:
    """Several labelers as one; ``LabelResult.members`` keeps each member's own result."""

    def __init__(self, members: Sequence[Labeler], model_id: str | None = None) -> None:
        if not members:
            raise ValueError("a committee needs at least one member")
        self.members = list(members)
        self.model_id = model_id or "committee(" + "+".join(m.model_id for m in members) + ")"

    def prompt_version(self, task: LabelTask) -> str:
        return stable_hash(
            "committee-v1", [(m.model_id, m.prompt_version(task)) for m in self.members]
        )

    def label_stream(
        self, texts: Sequence[str], task: LabelTask
    ) -> Iterator[tuple[int, LabelResult]]:
        """Yield each item once all members have answered it (in completion order)."""
        if not texts:
            return
        inbox: queue.SimpleQueue[tuple[int, int, LabelResult] | tuple[int, BaseException]] = (
            queue.SimpleQueue()
        )
        stop = threading.Event()
        threads = [
            threading.Thread(target=_feed, args=(k, m, texts, task, inbox, stop), daemon=True)
            for k, m in enumerate(with_shared_endpoint_limits(self.members))
        ]
        for thread in threads:
            thread.start()
        pending: dict[int, dict[int, LabelResult]] = {}
        finished = 0
        try:
            while finished < len(threads):
                try:
                    message = inbox.get(timeout=0.1)
                except queue.Empty:
                    continue
                if len(message) == 2:  # a member's stream ended (with an exception or None)
                    finished += 1
                    if message[1] is not None:
                        raise message[1]
                    continue
                member, i, result = message
                got = pending.setdefault(i, {})
                got[member] = result
                if len(got) == len(self.members):
                    del pending[i]
                    yield i, combine([got[k] for k in range(len(self.members))], task.labels)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)

    def close(self) -> None:
        for member in self.members:
            member.close()


def _feed(
    k: int,
    member: Labeler,
    texts: Sequence[str],
    task: LabelTask,
    inbox: queue.SimpleQueue[Any],
    stop: threading.Event,
) -> None:
    """Run one member's stream in its own thread, forwarding results until told to stop."""
    stream = member.label_stream(texts, task)
    error: BaseException | None = None
    try:
        for i, result in stream:
            if stop.is_set():
                break
            inbox.put((k, i, result))
    except BaseException as exc:  # handed to the consumer, which re-raises it
        error = exc
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
        inbox.put((k, error))
