"""Pre-label items with an LLM labeler, saving results as they arrive."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from itertools import chain, zip_longest
from typing import TYPE_CHECKING, Any

from ..labelers.base import Labeler, LabelResult, LabelTask
from ..review.common import Result
from ..store import items as stored_items
from ..store import predictions
from .embed import save_labeler_features

if TYPE_CHECKING:
    from ..project import Project

Progress = Callable[[int, int], None]
EXAMPLES_PER_LABEL = 2
#: Few-shot examples are chosen among texts of this many characters when a label has them.
EXAMPLE_CHARS = (20, 400)
#: What only a run on this machine reports, and only a run on a Ray cluster.
LOCAL_ONLY = ("retried", "failed_not_retried", "interrupted")
RAY_ONLY = (
    "actors",
    "attempts",
    "saved",
    "startup_s",
    "workers",
    "driver_peak_rss_mb",
    "worker_peak_rss_mb",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Prelabeled(Result):
    """What a pre-labeling run did (`Project.prelabel`, on any engine): counts, failures by
    reason, what was skipped, and what to do next. `to_dict` is what `prelabel --json` sends:
    the figures of the engine that ran it only (`LOCAL_ONLY` or `RAY_ONLY`), and
    `concurrency` only when an endpoint adapted its requests in flight."""

    model: str
    prompt_version: str
    done: int
    failed: int
    failed_by_reason: dict[str, int]
    self_reported: int  # answers whose confidence is the number the model wrote
    tokens: int
    cost_usd: float
    skipped: int  # items that already had an answer (or a human label)
    retried: int = 0
    failed_not_retried: int = 0
    interrupted: bool = False
    elapsed_s: float
    few_shot_examples: int
    engine: str
    concurrency: dict[str, int] | None = None  # an endpoint's adaptive limit
    actors: int = 0
    attempts: int = 0
    saved: int = 0
    startup_s: float | None = None  # to the first answer back from the cluster
    workers: int = 0
    driver_peak_rss_mb: float = 0.0
    worker_peak_rss_mb: float = 0.0
    next_steps: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        other = LOCAL_ONLY if self.engine == "ray" else RAY_ONLY
        return {
            key: value
            for key, value in Result.to_dict(self).items()
            if key not in other and not (key == "concurrency" and value is None)
        }

    def with_next_steps(self) -> Prelabeled:
        """This run with what to do next, in words, read from its figures."""
        return replace(self, next_steps=next_steps(self))


def few_shot_examples(project: Project, per_label: int = EXAMPLES_PER_LABEL) -> list[tuple]:
    """Balanced examples from trusted labels (`pick_examples`), in a stable order.

    Stable choices keep the prompt (and so the prediction cache key) unchanged between runs.
    """
    rows = stored_items.trusted_labels(project.store, project.id)
    return pick_examples([tuple(r) for r in rows], project.labels, per_label)


def pick_examples(
    rows: Sequence[tuple[Any, str, str]], labels: Sequence[str], per_label: int
) -> list[tuple[Any, str, str]]:
    """Up to `per_label` of the (id, text, label) `rows` per label, of medium length (they
    teach more than the shortest), labels interleaved so that none is always shown last
    (recency bias). A label whose texts are all long (articles) gets its shortest ones: the
    prompt shows their start, and a small model answered far better with them than without
    (docs/benchmarks.md, "The LLM's prompt: few-shot examples from the gold")."""
    shortest, longest = EXAMPLE_CHARS
    per_label_rows: list[list[tuple[Any, str, str]]] = []
    for label in labels:
        candidates = sorted(
            (r for r in rows if r[2] == label and len(r[1]) >= shortest),
            key=lambda r: (len(r[1]), r[0]),
        )
        medium = [r for r in candidates if len(r[1]) <= longest]
        start = max(0, len(medium) // 2 - per_label // 2)
        picked = medium[start : start + per_label]
        picked += candidates[len(medium) : len(medium) + per_label - len(picked)]
        per_label_rows.append(picked)
    return [row for row in chain.from_iterable(zip_longest(*per_label_rows)) if row]


def start_run(
    project: Project, labeler: Labeler, use_examples: bool = True
) -> tuple[LabelTask, str, str, int]:
    """The task a run labels, its (model, prompt version) key and how many few-shot examples.

    Also makes that key the project's active predictor, so results show as they are saved.
    """
    examples = few_shot_examples(project) if use_examples else []
    task = project.label_task([(text, label) for _, text, label in examples])
    model, version = labeler.model_id, labeler.prompt_version(task)
    project.update_settings(few_shot_item_ids=[item_id for item_id, _, _ in examples])
    project.set_active_predictor(model, version)
    return task, model, version, len(examples)


#: Why items fail, from the error a labeler records, first match wins: (reason, error markers).
FAILURE_REASONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("timeout", ("timeout",)),
    ("rate_limited", ("http 429",)),
    ("server_error", ("http 5",)),
    ("connection", ("connecterror", "connection", "protocolerror", "readerror", "writeerror")),
    ("malformed_answer", ("malformed answer", "not json", "no choices")),
    ("refused", ("http 4",)),
)

#: What to do about each reason, in the run's summary.
NEXT_STEPS = {
    "timeout": "the endpoint answered too slowly: raise --timeout or lower --concurrency",
    "rate_limited": "the endpoint limited the request rate: lower --concurrency",
    "server_error": "the endpoint failed (HTTP 5xx): check its logs",
    "connection": "the endpoint could not be reached or dropped connections: check --base-url",
    "malformed_answer": "the model's answers did not parse (the raw answers are stored with "
    "the predictions): a larger model or an endpoint with structured outputs helps",
    "refused": "the endpoint refused the request (HTTP 4xx): check --model and the API key",
    "other": "see the errors stored with the failed predictions",
}


def failure_reason(error: str | None) -> str:
    """A short reason for a failed item, from the error its labeler recorded."""
    text = (error or "").casefold()
    return next(
        (reason for reason, marks in FAILURE_REASONS if any(m in text for m in marks)), "other"
    )


def next_steps(result: Prelabeled) -> list[str]:
    """What to do after a run, in words, from its figures."""
    steps = [NEXT_STEPS[reason] for reason in result.failed_by_reason]
    if result.failed:
        steps.append(
            f"run the same command again to retry the {result.failed} failed items "
            "(their errors are kept)"
        )
    if result.failed_not_retried:
        steps.append(
            f"{result.failed_not_retried} items failed in earlier runs and were not asked "
            "again (--no-retry-failed)"
        )
    if result.self_reported:
        steps.append(
            f"{result.self_reported} answers came without usable log-probabilities: their "
            "confidence is the number the model wrote; calibrate on gold before routing, or use "
            "an endpoint that returns logprobs"
        )
    if result.interrupted:
        steps.append("interrupted: every answer received was saved; run again to go on")
    return steps


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run, raised once every answer received is saved; carries the summary."""

    def __init__(self, result: Prelabeled) -> None:
        super().__init__("interrupted")
        self.result = result


class Tally:
    """Running totals of a run's results (the counts of the result dict)."""

    def __init__(self) -> None:
        self.counts: dict[str, Any] = {
            "done": 0,
            "failed": 0,
            "failed_by_reason": {},
            "self_reported": 0,  # answers whose confidence is the number the model wrote
            "tokens": 0,
            "cost_usd": 0.0,
        }

    def add(self, result: LabelResult) -> None:
        ok = result.error is None and result.label is not None
        self.counts["done" if ok else "failed"] += 1
        if ok and getattr(result, "reported_confidence", None) is not None:
            self.counts["self_reported"] += 1
        if not ok:
            reasons = self.counts["failed_by_reason"]
            reason = failure_reason(result.error)
            reasons[reason] = reasons.get(reason, 0) + 1
        self.counts["tokens"] += result.tokens_in + result.tokens_out
        self.counts["cost_usd"] += result.cost_usd

    @property
    def seen(self) -> int:
        return self.counts["done"] + self.counts["failed"]


def save_batch(project: Project, model: str, version: str, results: list[tuple[int, Any]]) -> int:
    """Store results (idempotently, by key), with the features they carry, and show them on
    their items."""
    if not results:
        return 0
    added = project.save_predictions(model, version, results)
    save_labeler_features(project, model, version, results)
    project.refresh_item_predictions([item_id for item_id, _ in results])
    return added


class AnswerWriter:
    """Stores answers as they arrive, on a thread of its own (a group commit).

    An answer from an endpoint has been paid for: it is written at once, together with every
    answer that arrived while the previous write was running, and writes start at most every
    `interval` seconds. Under load the batches grow, so the store keeps up with any request rate
    in at most 1/interval transactions a second; when answers trickle in, each is written as
    it comes. After a crash only the answers still in flight (or received in the last
    `interval`) are asked again.
    """

    _STOP = object()

    def __init__(
        self, save: Callable[[list[tuple[int, Any]]], Any], interval: float = 0.05
    ) -> None:
        self._save, self._interval = save, interval
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._unsaved: list[tuple[int, Any]] = []
        self._thread = threading.Thread(target=self._run, name="labelloop-writer", daemon=True)
        self._thread.start()

    def put(self, item_id: int, result: Any) -> None:
        """Queue an answer; raises a failed write (the answer stays queued for `close`)."""
        self._queue.put((item_id, result))
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Write what is left and stop; re-raises a failed write after one last attempt."""
        self._queue.put(self._STOP)
        self._thread.join()
        if self._error is not None:
            self._save(self._unsaved + self._take([])[0])  # the store may be back
            raise self._error

    def _take(self, entries: list[Any]) -> tuple[list[tuple[int, Any]], bool]:
        """`entries` and every answer waiting after them; and whether to stop."""
        while True:
            try:
                entries.append(self._queue.get_nowait())
            except queue.Empty:
                break
        batch = [entry for entry in entries if entry is not self._STOP]
        return batch, len(batch) < len(entries)

    def _run(self) -> None:
        stopping, started = False, -self._interval
        while not stopping:
            first = self._queue.get()
            time.sleep(max(0.0, started + self._interval - time.monotonic()))
            started = time.monotonic()
            batch, stopping = self._take([first])
            try:
                self._save(batch)
            except BaseException as exc:  # kept, and raised in the caller's thread
                self._error, self._unsaved = exc, batch
                return


def prelabel(
    project: Project,
    labeler: Labeler,
    *,
    limit: int | None = None,
    use_examples: bool = True,
    progress: Progress | None = None,
    retry_failed: bool = True,
) -> Prelabeled:
    """Label every item that lacks an answer from this labeler and prompt.

    Gold items come first (calibration needs them) and do not count toward `limit`. Items that
    already carry a human label are not sent; items that failed before are asked again unless
    `retry_failed` is false. Results are saved as they arrive. The result dict says what failed
    and why (`failed_by_reason`) and what to do next (`next_steps`); Ctrl-C raises
    :class:`Interrupted`, carrying that summary, once every answer received is saved. This runs
    here; `labelloop.engines.ray_engine.RayEngine` runs the same on a Ray cluster.
    """
    started = time.perf_counter()
    task, model, version, n_examples = start_run(project, labeler, use_examples)
    gold, pool = predictions.pending_answers(project.id, model, version, retry_failed)
    if limit is not None:
        pool = pool.first(limit)
    todo = stored_items.read_rows(project.store, gold) + stored_items.read_rows(project.store, pool)
    total = stored_items.count_items(project.store, project.id)
    ids = [row.id for row in todo]
    texts = [row.text for row in todo]
    failed_earlier = predictions.failed_items(project.store, project.id, model, version)
    tally = Tally()
    writer = AnswerWriter(lambda batch: save_batch(project, model, version, batch))
    if progress:
        progress(0, len(todo))
    interrupted = False
    stream = labeler.label_stream(texts, task)
    try:
        for index, answer in stream:
            writer.put(ids[index], answer)
            tally.add(answer)
            if progress:
                progress(tally.seen, len(todo))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        close = getattr(stream, "close", None)
        if close:
            close()
        writer.close()
    control = getattr(labeler, "in_flight", None)  # an endpoint's adaptive limit
    result = Prelabeled(
        model=model,
        prompt_version=version,
        **tally.counts,
        skipped=total - len(todo),
        retried=sum(item_id in failed_earlier for item_id in ids) if retry_failed else 0,
        failed_not_retried=0 if retry_failed else len(failed_earlier),
        interrupted=interrupted,
        elapsed_s=round(time.perf_counter() - started, 3),
        few_shot_examples=n_examples,
        engine="local",
        concurrency=(
            None
            if control is None
            else {
                "maximum": control.maximum,
                "final": control.limit,
                "decreases": control.decreases,
            }
        ),
    ).with_next_steps()
    if interrupted:
        raise Interrupted(result)
    return result
