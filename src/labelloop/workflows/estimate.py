"""What `prelabel` would cost before it runs: items, tokens, USD and time, asking no endpoint.

Items are those the run would send (the same queries, `--limit` and `--retry-failed` included).
Input tokens come from the exact request text of every one of them (the shared instructions and
examples plus each fenced text, cut where the labeler cuts it) at `CHARS_PER_TOKEN` characters a
token, as no tokenizer of the remote model is at hand; output tokens from this model's earlier
answers in the project, else `ANSWER_TOKENS`. Cost uses the labeler's price table (overridable).
Time: an embedded model labels a sample of the items (nothing is stored, its start-up is not
counted); an endpoint's is its earlier answers' latency spread over the concurrency, unknown
before its first run.

Multi-label projects: an endpoint is asked one yes/no request per label and item
(`PerLabelDecisions`), so every label's request counts; the embedded model reads each text once
and then, per label, a question with its two answers (`LocalMultiLabeler`), which count too.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..labelers.base import LabelTask, select_examples
from ..store import items as stored_items
from ..store import predictions
from ..store.items import ItemRows
from .prelabel import few_shot_examples

if TYPE_CHECKING:
    from ..project import Project

#: Characters per token of English text for GPT-style tokenizers (a rule of thumb).
CHARS_PER_TOKEN = 4.0
#: Tokens of one answer {"label", "confidence", "reasoning": one short sentence}, when the project
#: holds no earlier answer of the model to measure.
ANSWER_TOKENS = 40
#: Items the embedded model labels to measure its speed.
SAMPLE_ITEMS = 16


@dataclass(frozen=True, slots=True)
class PrelabelEstimate:
    """What a `prelabel` run would send and cost (`prelabel --dry-run`)."""

    model: str
    prompt_version: str
    items: int
    tokens_in: int
    tokens_out: int
    #: USD per million (input, output) tokens, when the model has a price.
    price_per_mtok: tuple[float, float] | None
    cost_usd: float
    items_per_s: float | None
    #: Where the speed comes from (earlier answers' latency, a sample run), None when unknown.
    time_from: str | None
    notes: tuple[str, ...]

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out

    @property
    def elapsed_s(self) -> float | None:
        return self.items / self.items_per_s if self.items_per_s else None

    def to_dict(self) -> dict[str, Any]:
        """The `--json` form: the estimate, marked as a dry run."""
        return {
            "dry_run": True,
            "model": self.model,
            "prompt_version": self.prompt_version,
            "items": self.items,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "tokens": self.tokens,
            "price_per_mtok": list(self.price_per_mtok) if self.price_per_mtok else None,
            "cost_usd": self.cost_usd,
            "items_per_s": self.items_per_s,
            "elapsed_s": self.elapsed_s,
            "time_from": self.time_from,
            "notes": list(self.notes),
        }


def _pending(
    project: Project, model: str, version: str, limit: int | None, retry: bool
) -> list[ItemRows]:
    gold, pool = predictions.pending_answers(project.id, model, version, retry)
    return [gold, pool if limit is None else pool.first(limit)]


def _sample_speed(
    project: Project, labeler: Any, task: LabelTask, pending: list[ItemRows]
) -> float | None:
    """Items per second of a local labeler on up to SAMPLE_ITEMS pending texts (one first, so
    that loading the model is not counted); nothing is stored."""
    texts = stored_items.some_texts(project.store, pending, SAMPLE_ITEMS + 1)
    if len(texts) < 2:
        return None
    list(labeler.label_stream(texts[:1], task))  # loads the model
    began = time.perf_counter()
    list(labeler.label_stream(texts[1:], task))
    return (len(texts) - 1) / max(time.perf_counter() - began, 1e-9)


def estimate_prelabel(
    project: Project, labeler: Any, *, limit: int | None = None, retry_failed: bool = True
) -> PrelabelEstimate:
    """The items, tokens, cost and time of `prelabel` with this labeler (see the module doc)."""
    from ..labelers.multilabel import LocalMultiLabeler, PerLabelDecisions, decision_task
    from ..labelers.openai import OpenAILabeler, build_messages, estimate_cost, system_prompt

    examples = [(text, label) for _, text, label in few_shot_examples(project)]
    task = project.label_task(examples)
    model, version = labeler.model_id, labeler.prompt_version(task)
    pending = _pending(project, model, version, limit, retry_failed)
    per_label = isinstance(labeler, PerLabelDecisions)
    backend = labeler.inner if per_label else labeler  # what answers each request
    asked = [decision_task(task, label) for label in task.labels] if per_label else [task]
    remote = isinstance(backend, OpenAILabeler)
    n, text_chars = stored_items.text_chars(
        project.store, pending, backend.max_chars if remote else None
    )
    notes = [f"input tokens counted as characters / {CHARS_PER_TOKEN:g}"]
    if per_label:
        notes.append(f"one request per label: {len(asked)} per item")
    if remote:
        per_item = 0  # everything but the text itself, in every request about an item
        for request in asked:
            shots = select_examples(request.examples, request.labels, backend.examples_per_label)
            empty, _ = build_messages("", system_prompt(request, shots), backend.max_chars)
            per_item += sum(len(m["content"]) for m in empty)
        tokens_in = math.ceil((n * per_item + len(asked) * text_chars) / CHARS_PER_TOKEN)
    else:  # the embedded model reads the shared instructions once, then each text
        extra = labeler.decision_chars(task) if isinstance(labeler, LocalMultiLabeler) else 0
        tokens_in = math.ceil((text_chars + n * extra) / CHARS_PER_TOKEN)
    answered, tokens_out_mean, latency = predictions.answer_history(
        project.store, project.id, model
    )
    if tokens_out_mean is None and remote:  # an item's answers: one per request about it
        tokens_out_mean = ANSWER_TOKENS * backend.self_consistency * len(asked)
        notes.append(f"output tokens assumed: {tokens_out_mean} per item (no earlier answers)")
    tokens_out = math.ceil(n * tokens_out_mean) if remote and tokens_out_mean else 0
    price = None
    cost = 0.0
    if remote:
        cost = estimate_cost(model, tokens_in, tokens_out, backend.price_per_mtok)
        price = backend.price_per_mtok or (
            1e6 * estimate_cost(model, 1, 0),
            1e6 * estimate_cost(model, 0, 1),
        )
    if remote:
        # An item's recorded latency is the sum of its requests', which run `concurrency` at once.
        speed = backend.concurrency / latency if latency else None
        time_from = f"latency of {answered} earlier answers" if latency else None
        if speed is None:
            notes.append("time unknown: no earlier answers from this model (try --limit 20)")
    else:
        speed = _sample_speed(project, labeler, task, pending) if n else None
        time_from = "a sample run of the embedded model" if speed else None
    return PrelabelEstimate(
        model=model,
        prompt_version=version,
        items=n,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        price_per_mtok=tuple(price) if price else None,
        cost_usd=cost,
        items_per_s=speed,
        time_from=time_from,
        notes=tuple(notes),
    )
