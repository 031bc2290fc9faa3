"""What `prelabel` would cost before it runs: items, tokens, USD and time, asking no endpoint.

Items are those the run would send (the same queries, `--limit` and `--retry-failed` included).
Input tokens come from the exact request text of every one of them (the shared instructions and
examples plus each fenced text, cut where the labeler cuts it) at `CHARS_PER_TOKEN` characters a
token, as no tokenizer of the remote model is at hand; output tokens from this model's earlier
answers in the project, else `ANSWER_TOKENS`. Cost uses the labeler's price table (overridable).
Time: an embedded model labels a sample of the items (nothing is stored, its start-up is not
counted); an endpoint's is its earlier answers' latency spread over the concurrency, unknown
before its first run.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, func, select, union_all

from ..labelers.base import LabelTask, select_examples
from ..store import Prediction
from .prelabel import few_shot_examples, pending_queries

if TYPE_CHECKING:
    from ..project import Project

#: Characters per token of English text for GPT-style tokenizers (a rule of thumb).
CHARS_PER_TOKEN = 4.0
#: Tokens of one answer {"label", "confidence", "reasoning": one short sentence}, when the project
#: holds no earlier answer of the model to measure.
ANSWER_TOKENS = 40
#: Items the embedded model labels to measure its speed.
SAMPLE_ITEMS = 16


def _pending(project: Project, model: str, version: str, limit: int | None, retry: bool) -> Any:
    gold, pool = pending_queries(project, model, version, retry)
    if limit is not None:
        pool = pool.limit(limit)
    g, p = gold.subquery(), pool.subquery()
    return union_all(select(g.c.id, g.c.text), select(p.c.id, p.c.text)).subquery()


def _text_chars(project: Project, pending: Any, max_chars: int | None) -> tuple[int, int]:
    """(items, characters of their texts as sent: cut at `max_chars`)."""
    length: Any = func.length(pending.c.text)
    if max_chars is not None:
        length = case((length > max_chars, max_chars), else_=length)
    with project.store.session() as session:
        n, chars = session.execute(select(func.count(), func.coalesce(func.sum(length), 0))).one()
    return int(n), int(chars)


def _earlier_answers(project: Project, model: str) -> tuple[int, float | None, float | None]:
    """(answers, mean output tokens, mean latency) of this model's earlier answers here."""
    with project.store.session() as session:
        n, tokens_out, latency = session.execute(
            select(
                func.count(),
                func.avg(case((Prediction.tokens_out > 0, Prediction.tokens_out))),
                func.avg(case((Prediction.latency_s > 0, Prediction.latency_s))),
            ).where(
                Prediction.project_id == project.id,
                Prediction.model == model,
                Prediction.error.is_(None),
            )
        ).one()
    return int(n), tokens_out, latency


def _sample_speed(project: Project, labeler: Any, task: LabelTask, pending: Any) -> float | None:
    """Items per second of a local labeler on up to SAMPLE_ITEMS pending texts (one first, so
    that loading the model is not counted); nothing is stored."""
    with project.store.session() as session:
        texts = list(session.scalars(select(pending.c.text).limit(SAMPLE_ITEMS + 1)))
    if len(texts) < 2:
        return None
    list(labeler.label_stream(texts[:1], task))  # loads the model
    began = time.perf_counter()
    list(labeler.label_stream(texts[1:], task))
    return (len(texts) - 1) / max(time.perf_counter() - began, 1e-9)


def estimate_prelabel(
    project: Project, labeler: Any, *, limit: int | None = None, retry_failed: bool = True
) -> dict[str, Any]:
    """The items, tokens, cost and time of `prelabel` with this labeler (see the module doc)."""
    from ..labelers.openai import OpenAILabeler, build_messages, estimate_cost, system_prompt

    examples = [(text, label) for _, text, label in few_shot_examples(project)]
    task = project.label_task(examples)
    model, version = labeler.model_id, labeler.prompt_version(task)
    pending = _pending(project, model, version, limit, retry_failed)
    remote = isinstance(labeler, OpenAILabeler)
    n, text_chars = _text_chars(project, pending, labeler.max_chars if remote else None)
    notes = [f"input tokens counted as characters / {CHARS_PER_TOKEN:g}"]
    if remote:
        shots = select_examples(task.examples, task.labels, labeler.examples_per_label)
        empty, _ = build_messages("", system_prompt(task, shots), labeler.max_chars)
        per_item = sum(len(m["content"]) for m in empty)  # everything but the text itself
        tokens_in = math.ceil((n * per_item + text_chars) / CHARS_PER_TOKEN)
    else:  # the embedded model reads the shared instructions once, then each text
        tokens_in = math.ceil(text_chars / CHARS_PER_TOKEN)
    answered, tokens_out_mean, latency = _earlier_answers(project, model)
    if tokens_out_mean is None and remote:
        tokens_out_mean = ANSWER_TOKENS * labeler.self_consistency
        notes.append(f"output tokens assumed: {tokens_out_mean} per item (no earlier answers)")
    tokens_out = math.ceil(n * tokens_out_mean) if remote and tokens_out_mean else 0
    price = None
    cost = 0.0
    if remote:
        cost = estimate_cost(model, tokens_in, tokens_out, labeler.price_per_mtok)
        price = labeler.price_per_mtok or (
            1e6 * estimate_cost(model, 1, 0),
            1e6 * estimate_cost(model, 0, 1),
        )
    if remote:
        speed = labeler.concurrency / latency if latency else None
        time_from = f"latency of {answered} earlier answers" if latency else None
        if speed is None:
            notes.append("time unknown: no earlier answers from this model (try --limit 20)")
    else:
        speed = _sample_speed(project, labeler, task, pending) if n else None
        time_from = "a sample run of the embedded model" if speed else None
    return {
        "dry_run": True,
        "model": model,
        "prompt_version": version,
        "items": n,
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "tokens": tokens_in + tokens_out,
        "price_per_mtok": list(price) if price else None,
        "cost_usd": cost,
        "items_per_s": speed,
        "elapsed_s": n / speed if speed else None,
        "time_from": time_from,
        "notes": notes,
    }
