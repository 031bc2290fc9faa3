"""Batch work of a project on a Ray cluster (Ray Data), with the guarantees of one machine.

The driver (the process that runs `labelloop prelabel --engine ray`) reads pending items from
the store in pages of ids and texts, hands them to Ray Data in windows, and writes results back
itself, through the same keyed, idempotent calls as the local engine. Workers are actors of a
pool, each holding one labeler (or embedder, or scorer) loaded once, and never touch the store:
so any store the driver can reach works, and a dead worker or driver costs only the work in
flight. A Ray failure (a worker lost beyond Ray's own retries) makes the driver re-read what is
still pending and go on; a dead driver is resumed by running the same command again.

Remote endpoints are shared fairly: ``concurrency`` is the total of requests in flight across
the cluster (split evenly over the actors), and ``requests_per_second`` one limit for the whole
cluster and endpoint, held by a named scheduler actor from which workers reserve permits in small
batches; a committee's members that call the same endpoint share that endpoint's limit.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import pickle
import resource
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pyarrow as pa
import ray

from ..active import get_embedder
from ..labelers.base import Labeler, LabelResult, LabelTask
from ..labelers.ratelimit import RateSchedule, endpoint_rates, leaf_labelers, share_endpoint_limits
from ..store import items as stored_items
from ..store import predictions
from ..store.embeddings import item_vectors, items_without_vector, save_vectors
from ..store.items import ItemRows
from ..workflows.embed import is_corpus_fitted
from ..workflows.prelabel import (
    Prelabeled,
    Tally,
    save_batch,
    start_run,
)

if TYPE_CHECKING:
    from ..project import Project

__all__ = [
    "NAMESPACE",
    "ModelScorer",
    "RayEngine",
    "StudentScorer",
    "embed_items",
    "prelabel_ray",
    "ray_session",
    "score_models",
    "score_pool",
]

logger = logging.getLogger(__name__)

#: Ray namespace of the named scheduler actors, so workers of any job can find them.
NAMESPACE = "labelloop"
READ_PAGE = 10_000
WINDOW = 250_000
FLUSH_ROWS = 512
FLUSH_SECONDS = 2.0

Progress = Callable[[int, int], None]


# ------------------------------------------------------------------------------- cluster
@contextlib.contextmanager
def ray_session(address: str | None = None) -> Iterator[None]:
    """Connect to the cluster at `address` (or RAY_ADDRESS, or start a local one) for a run.

    A connection made here is closed afterwards; one the caller already made is left open.
    """
    owned = not ray.is_initialized()
    if owned:
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    # The run reports its own progress; Ray Data's bars and logs would only interleave with it.
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.enable_auto_log_stats = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    try:
        yield
    finally:
        if owned:
            ray.shutdown()


def cluster_cpus() -> float:
    return float(ray.cluster_resources().get("CPU", 1.0))


class Coordinator:
    """A run's named actor: the request-rate schedule of each endpoint and the roll of workers."""

    def __init__(self, rates: dict[str, float] | None = None, burst: float | None = None) -> None:
        self.schedules = {
            key: RateSchedule(rate, burst or 1.0) for key, rate in (rates or {}).items()
        }
        self.roll: dict[str, dict[str, Any]] = {}

    def reserve(self, n: int, endpoint: str) -> list[float]:
        return self.schedules[endpoint].reserve(n)

    def report(self, worker: str, info: dict[str, Any]) -> None:
        self.roll[worker] = {**self.roll.get(worker, {}), **info}

    def workers(self) -> dict[str, dict[str, Any]]:
        return dict(self.roll)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


class _Worker:
    """Base of the pool's actors: reports its process and peak memory to the coordinator."""

    def __init__(self, coordinator: str | None) -> None:
        self._name, self._batches = uuid.uuid4().hex[:12], 0
        self._coordinator = ray.get_actor(coordinator, NAMESPACE) if coordinator else None
        self._report(pid=os.getpid(), node=ray.util.get_node_ip_address(), batches=0)

    def _report(self, **info: Any) -> None:
        if self._coordinator is not None:
            self._coordinator.report.remote(self._name, {**info, "rss_mb": _peak_rss_mb()})

    def _done_batch(self) -> None:
        self._batches += 1
        self._report(batches=self._batches)


class LabelWorker(_Worker):
    """One labeler (or committee) per actor, loaded on first use and kept for every batch.

    Each labeler's ``concurrency`` is split over the actors, and its rate limit replaced by a
    share of its endpoint's schedule in the coordinator.
    """

    def __init__(
        self, labeler: Labeler, task: LabelTask, actors: int, coordinator: str | None
    ) -> None:
        super().__init__(coordinator)
        self.labeler, self.task = labeler, task
        leaves = leaf_labelers(labeler)
        for leaf in leaves:
            total = getattr(leaf, "concurrency", None)
            if isinstance(total, int):
                leaf.concurrency = max(1, math.ceil(total / actors))
        rates = endpoint_rates(leaves)
        if rates and self._coordinator is not None:
            share_endpoint_limits(leaves, self._reserve_for, rates)

    def _reserve_for(self, endpoint: str) -> Callable[[int], Any]:
        scheduler = self._coordinator
        assert scheduler is not None

        async def reserve(n: int) -> list[float]:
            return await scheduler.reserve.remote(n, endpoint)

        return reserve

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        texts = [str(t) for t in batch["text"]]
        results: list[LabelResult | None] = [None] * len(texts)
        for index, result in self.labeler.label_stream(texts, self.task):
            results[index] = result
        payload = np.empty(len(texts), dtype=object)
        missing = LabelResult(None, None, None, error="the labeler returned no result")
        for i, got in enumerate(results):
            # A backend that skipped an item must not lose it silently.
            payload[i] = pickle.dumps(
                missing if got is None else got, protocol=pickle.HIGHEST_PROTOCOL
            )
        self._done_batch()
        return {"id": batch["id"], "result": payload}


class ArrayWorker(_Worker):
    """One model per actor, built by a picklable factory, turning each row into an array row
    through its method `method` (an embedder's ``embed``, a scorer's ``score``): rows are texts,
    or stored float32 vectors when the blocks carry a ``vector`` column."""

    def __init__(self, factory: Callable[[], Any], method: str, coordinator: str | None) -> None:
        super().__init__(coordinator)
        self.model, self.method = factory(), method

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if "vector" in batch:
            rows: Any = np.stack([np.frombuffer(v, dtype=np.float32) for v in batch["vector"]])
        else:
            rows = [str(t) for t in batch["text"]]
        values = np.asarray(getattr(self.model, self.method)(rows))
        self._done_batch()
        return {"id": batch["id"], "value": values.reshape(len(batch["id"]), -1)}


# ------------------------------------------------------------------------------- reading
def read_pages(
    project: Project, sets: list[ItemRows], page: int = READ_PAGE, column: str = "text"
) -> Iterator[pa.Table]:
    """`(id, column)` tables of at most `page` rows of each set in turn, by keyset on the item
    id: each row is read once even while results are being written.
    """
    for rows_of in sets:
        last = None
        while True:
            rows = stored_items.read_page(project.store, rows_of, last, page)
            if not rows:
                break
            last = rows[-1][0]
            yield pa.table(
                {"id": pa.array([r[0] for r in rows], pa.int64()), column: [r[1] for r in rows]}
            )
            if len(rows) < page:
                break


def windows(pages: Iterator[pa.Table], size: int = WINDOW) -> Iterator[list[pa.Table]]:
    """Groups of pages of about `size` rows: one Ray dataset (and actor pool) each, so the
    driver never holds more than a window of texts however large the pool."""
    group: list[pa.Table] = []
    rows = 0
    for table in pages:
        group.append(table)
        rows += table.num_rows
        if rows >= size:
            yield group
            group, rows = [], 0
    if group:
        yield group


# ------------------------------------------------------------------------------- running
class _Run:
    """One run on the cluster: its coordinator, its actor pool settings, its retry loop."""

    def __init__(
        self,
        *,
        actors: int | None,
        num_cpus: float,
        batch_size: int,
        rates: dict[str, float] | None = None,
        burst: float | None = None,
        run_id: str | None = None,
        runtime_env: dict[str, Any] | None = None,
    ) -> None:
        self.actors = actors or max(1, int(cluster_cpus()))
        self.num_cpus, self.batch_size = num_cpus, batch_size
        self.runtime_env = runtime_env
        self.name = f"run-{run_id or uuid.uuid4().hex[:12]}"
        actor = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)(Coordinator)
        # An actor handle (Ray's stubs type the decorated class as the class itself).
        self.coordinator: Any = actor.options(name=self.name, namespace=NAMESPACE).remote(
            rates, burst
        )

    def map(
        self, tables: list[pa.Table], worker: type, kwargs: dict[str, Any]
    ) -> Iterator[dict[str, np.ndarray]]:
        """Results of `worker` over the rows of `tables`, batch by batch, as they complete."""
        remote: dict[str, Any] = {"num_cpus": self.num_cpus}
        if self.runtime_env:
            remote["runtime_env"] = self.runtime_env
        # One block per batch: Ray Data spreads blocks, not rows, over the actors.
        blocks = [
            table.slice(start, self.batch_size)
            for table in tables
            for start in range(0, table.num_rows, self.batch_size)
        ]
        dataset = ray.data.from_arrow(blocks).map_batches(
            worker,
            fn_constructor_kwargs={**kwargs, "coordinator": self.name},
            compute=ray.data.ActorPoolStrategy(size=self.actors),
            batch_size=self.batch_size,
            batch_format="numpy",
            **remote,
        )
        yield from dataset.iter_batches(batch_size=None, batch_format="numpy")

    def workers(self) -> dict[str, dict[str, Any]]:
        return ray.get(self.coordinator.workers.remote())

    def complete(self, attempt: Callable[[], None], max_attempts: int) -> tuple[int, dict]:
        """Run `attempt` until done (see `_with_retries`), then the memory figures; the
        coordinator is released in any case."""
        try:
            return _with_retries(attempt, max_attempts), _memory(self)
        finally:
            self.close()

    def close(self) -> None:
        ray.kill(self.coordinator)


def _with_retries(attempt: Callable[[], None], max_attempts: int) -> int:
    """Run `attempt` until it ends without a Ray failure; returns the attempts made."""
    for k in range(1, max_attempts + 1):
        try:
            attempt()
            return k
        except ray.exceptions.RayError as exc:
            if k == max_attempts:
                raise
            logger.warning("the cluster lost work (%s); resuming what is pending", exc)
    return max_attempts


def _memory(run: _Run) -> dict[str, Any]:
    roll = run.workers()
    return {
        "workers": len(roll),
        "driver_peak_rss_mb": round(_peak_rss_mb(), 1),
        "worker_peak_rss_mb": round(
            max((w.get("rss_mb", 0.0) for w in roll.values()), default=0.0), 1
        ),
    }


def _forwarded_env(labeler: Any) -> dict[str, Any] | None:
    """The API key variables, passed to the workers when they are set here (workers of a
    cluster do not inherit the driver's environment)."""
    names = {getattr(leaf, "api_key_env", None) for leaf in leaf_labelers(labeler)}
    found = {name: os.environ[name] for name in names if name and os.environ.get(name)}
    return {"env_vars": found} if found else None


# ------------------------------------------------------------------------------- prelabel
def prelabel_ray(
    project: Project,
    labeler: Labeler,
    *,
    address: str | None = None,
    limit: int | None = None,
    use_examples: bool = True,
    progress: Progress | None = None,
    actors: int | None = None,
    num_cpus: float = 0.5,
    batch_size: int = 128,
    window: int = WINDOW,
    max_attempts: int = 3,
    burst: float | None = None,
    run_id: str | None = None,
    retry_failed: bool = True,
) -> Prelabeled:
    """`workflows.prelabel.prelabel` on a Ray cluster: the same result, with the cluster's
    figures (`actors`, `attempts`, memory) for the local engine's retry counts.

    `labeler` is shipped to every actor (it must pickle before its first use: backends load
    their model lazily). Actors take `num_cpus` each, a fraction so that Ray Data's own stages
    still find a CPU. `limit` bounds pool items as on one machine: the first `limit` pending by
    id when the run starts.
    """
    started = time.perf_counter()
    task, model, version, n_examples = start_run(project, labeler, use_examples)
    gold, pool = predictions.pending_answers(project.id, model, version, retry_failed)
    if limit is not None:
        pool = stored_items.fixed_first(project.store, pool, limit)
    todo = stored_items.count_rows(project.store, gold, pool)
    total = stored_items.count_items(project.store, project.id)
    tally = Tally()
    saved = 0
    buffer: list[tuple[int, Any]] = []
    if progress:
        progress(0, todo)

    with ray_session(address):
        run = _Run(
            actors=actors,
            num_cpus=num_cpus,
            batch_size=batch_size,
            rates=endpoint_rates(leaf_labelers(labeler)),
            burst=burst,
            run_id=run_id,
            runtime_env=_forwarded_env(labeler),
        )
        kwargs = {"labeler": labeler, "task": task, "actors": run.actors}

        def flush() -> None:
            nonlocal saved
            saved += save_batch(project, model, version, buffer)
            buffer.clear()

        first_result: list[float] = []

        def attempt() -> None:
            last_flush = time.monotonic()
            try:
                pages = read_pages(project, [gold, pool])
                for group in windows(pages, window):
                    for out in run.map(group, LabelWorker, kwargs):
                        if not first_result:
                            first_result.append(time.perf_counter() - started)
                        for item_id, blob in zip(out["id"], out["result"], strict=True):
                            result = pickle.loads(blob)
                            buffer.append((int(item_id), result))
                            tally.add(result)
                        now = time.monotonic()
                        if len(buffer) >= FLUSH_ROWS or now - last_flush > FLUSH_SECONDS:
                            flush()
                            last_flush = now
                        if progress:
                            progress(tally.seen, todo)
            finally:
                flush()

        attempts, memory = run.complete(attempt, max_attempts)
    return Prelabeled(
        model=model,
        prompt_version=version,
        **tally.counts,
        skipped=total - todo,
        elapsed_s=round(time.perf_counter() - started, 3),
        few_shot_examples=n_examples,
        engine="ray",
        actors=run.actors,
        attempts=attempts,
        saved=saved,
        startup_s=round(first_result[0], 3) if first_result else None,
        **memory,
    )


# ------------------------------------------------------------------------------- embeddings
def embed_items(
    project: Project,
    embedder_factory: Callable[[], Any],
    *,
    model_id: str | None = None,
    address: str | None = None,
    progress: Progress | None = None,
    actors: int | None = None,
    num_cpus: float = 1.0,
    batch_size: int = 512,
    window: int = WINDOW,
    max_attempts: int = 3,
) -> dict[str, Any]:
    """Embed every item of the project lacking a vector under the embedder's model id, on Ray,
    and store the vectors keyed by (item, model) as the local path does (resumable).

    `embedder_factory` is a picklable zero-argument callable (e.g. ``functools.partial(
    get_embedder, "onnx")``) run once per actor. Corpus-fitted embedders (TF-IDF) are refused:
    their vectors mean nothing outside the fit, so they are never stored.
    """
    started = time.perf_counter()
    if model_id is None:
        probe = embedder_factory()
        if is_corpus_fitted(probe):
            raise ValueError("a corpus-fitted embedder (TF-IDF) is not stored; embed locally")
        model_id = probe.model_id
    pending = items_without_vector(project.id, model_id)
    todo = stored_items.count_rows(project.store, pending)
    added = 0
    if progress:
        progress(0, todo)
    with ray_session(address):
        run = _Run(actors=actors, num_cpus=num_cpus, batch_size=batch_size)

        def attempt() -> None:
            nonlocal added
            for group in windows(read_pages(project, [pending]), window):
                kwargs = {"factory": embedder_factory, "method": "embed"}
                for out in run.map(group, ArrayWorker, kwargs):
                    added += save_vectors(
                        project.store, project.id, model_id, out["id"], out["value"]
                    )
                    if progress:
                        progress(added, todo)

        attempts, memory = run.complete(attempt, max_attempts)
    return {
        "model": model_id,
        "embedded": added,
        "elapsed_s": round(time.perf_counter() - started, 3),
        "engine": "ray",
        "actors": run.actors,
        "attempts": attempts,
        **memory,
    }


# ------------------------------------------------------------------------------- scoring
class StudentScorer:
    """Class probabilities of a fitted student on embeddings made in the worker.

    ``functools.partial(StudentScorer, embedder_factory, student)`` is a `score_pool` factory.
    """

    def __init__(self, embedder_factory: Callable[[], Any], student: Any) -> None:
        self.embedder = embedder_factory()
        self.student = student

    def score(self, texts: list[str]) -> np.ndarray:
        return self.student.predict_proba(self.embedder.embed(texts))


class ModelScorer:
    """Class probabilities of several fitted models on stored vectors, side by side: row i is
    ``[models[0].predict_proba(X)[i], models[1]...]``.

    ``functools.partial(ModelScorer, models)`` is a `score_pool` factory for
    ``embedding_model=...``: the same vectors as the local path, so the same probabilities.
    """

    def __init__(self, models: list[Any]) -> None:
        self.models = models

    def score(self, vectors: np.ndarray) -> np.ndarray:
        return np.hstack([model.predict_proba(vectors) for model in self.models])


def score_pool(
    project: Project,
    scorer_factory: Callable[[], Any],
    item_ids: Any = None,
    *,
    embedding_model: str | None = None,
    address: str | None = None,
    progress: Progress | None = None,
    actors: int | None = None,
    num_cpus: float = 1.0,
    batch_size: int = 512,
    window: int = WINDOW,
) -> tuple[np.ndarray, np.ndarray]:
    """Scores of pool items on Ray: ``(item ids, scores)`` with one row per item, by id.

    `scorer_factory` is a picklable zero-argument callable returning an object with
    ``score(rows) -> (n, k) array``: rows are the items' texts, or with `embedding_model` their
    stored vectors under that model (an ``(n, dim)`` float32 array; items without one are left
    out). For active learning, a fitted student giving class probabilities. Nothing is stored
    (scores change every round); `item_ids` restricts the items (default: every pool item
    without a human label).
    """
    pool = item_ids is None
    if embedding_model is None:
        column, rows = "text", stored_items.item_texts(project.id, unlabeled_pool=pool)
    else:
        column = "vector"
        rows = item_vectors(project.id, embedding_model, unlabeled_pool=pool)
    sets = [rows] if item_ids is None else rows.only(item_ids, READ_PAGE)
    ids: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    seen = 0
    with ray_session(address):
        run = _Run(actors=actors, num_cpus=num_cpus, batch_size=batch_size)
        try:
            for group in windows(read_pages(project, sets, column=column), window):
                kwargs = {"factory": scorer_factory, "method": "score"}
                for out in run.map(group, ArrayWorker, kwargs):
                    ids.append(np.asarray(out["id"], np.int64))
                    scores.append(np.asarray(out["value"], np.float64))
                    seen += len(out["id"])
                    if progress:
                        progress(seen, seen)
        finally:
            run.close()
    if not ids:
        return np.zeros(0, np.int64), np.zeros((0, 0))
    all_ids, all_scores = np.concatenate(ids), np.concatenate(scores)
    order = np.argsort(all_ids, kind="stable")
    return all_ids[order], all_scores[order]


def score_models(
    project: Project,
    models: list[Any],
    item_ids: Any,
    embedding_model: str,
    *,
    address: str | None = None,
    **options: Any,
) -> np.ndarray:
    """``predict_proba`` of each fitted model on the stored vectors of `item_ids`, on Ray:
    shape ``(len(models), len(item_ids), n_classes)``, rows in the order of `item_ids`.

    Every item must have a vector under `embedding_model` (embed them first).
    """
    wanted = np.asarray(item_ids, np.int64)
    if not len(wanted):
        return np.zeros((len(models), 0, 0))
    ids, scores = score_pool(
        project,
        functools.partial(ModelScorer, list(models)),
        wanted,
        embedding_model=embedding_model,
        address=address,
        **options,
    )
    rows = np.searchsorted(ids, wanted)
    found = rows < len(ids)
    found[found] = ids[rows[found]] == wanted[found]
    if not found.all():
        raise ValueError(
            f"{int((~found).sum())} items have no stored vector under {embedding_model!r}"
        )
    return scores[rows].reshape(len(wanted), len(models), -1).transpose(1, 0, 2)


# ------------------------------------------------------------------------------- the engine
class RayEngine:
    """The `labelloop.workflows.engine.Engine` of a Ray cluster: same results as `LocalEngine`.

    `address` is the cluster's (default: RAY_ADDRESS, else a local Ray); `options` go to
    `prelabel_ray` (actors, batch size, retries...).
    """

    name: ClassVar[str] = "ray"

    def __init__(self, address: str | None = None, **options: Any) -> None:
        self.address = address
        self.options = options

    def prelabel(
        self,
        project: Project,
        labeler: Labeler,
        *,
        limit: int | None = None,
        use_examples: bool = True,
        progress: Progress | None = None,
        retry_failed: bool = True,
    ) -> Prelabeled:
        result = prelabel_ray(
            project,
            labeler,
            address=self.address,
            limit=limit,
            use_examples=use_examples,
            progress=progress,
            retry_failed=retry_failed,
            **self.options,
        )
        return result.with_next_steps()

    def prefill_embeddings(self, project: Project, embedder: Any) -> dict[str, Any] | None:
        """Embed the items missing from the cache on the cluster, so that the local pass only
        reads vectors. Corpus-fitted embedders (TF-IDF) always run locally."""
        if is_corpus_fitted(embedder):
            return None
        factory = functools.partial(get_embedder, "onnx")
        return embed_items(project, factory, model_id=embedder.model_id, address=self.address)

    def predict(
        self,
        project: Project,
        models: Sequence[Any],
        item_ids: Sequence[int],
        X: np.ndarray,
        embedder: Any,
    ) -> np.ndarray:
        """Score the pool on the cluster, block by block, from the vectors stored under the
        embedder (`prefill_embeddings` stored them): the rows of `X`, so the same
        probabilities. Corpus-fitted embedders, whose vectors are not stored, score here."""
        if is_corpus_fitted(embedder):
            return np.stack([model.predict_proba(X) for model in models])
        return score_models(
            project, list(models), item_ids, embedder.model_id, address=self.address
        )

    def __repr__(self) -> str:
        return f"RayEngine(address={self.address!r})"
