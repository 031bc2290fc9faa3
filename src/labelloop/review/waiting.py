"""Which items wait for a reviewer, and the flag on each item that says so.

The rule (`reasons_for`) reads an item's live answers, live flags and tasks; every service that
changes one of those (answers, flags, decisions, enqueueing, routing, queue settings, imports)
calls `settle` for the items it touched in the same transaction, so that the items'
`needs_reviewer` column always says what the rule says and counting the queue is one query.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .. import routing
from ..store import adjudication as store
from ..vocabulary import Action
from . import consensus

DISAGREEMENT, REJECTED, FLAGGED = "disagreement", "rejected", "flagged"
REASONS = (DISAGREEMENT, REJECTED, FLAGGED)
BATCH = 500  # items whose answers, flags and tasks are read at once


def _given(answer: Any) -> str | None:
    """What an answer gave, comparable across answers: its label, or its set (`labels`, on a
    multi-label project) as one text, equal for two answers exactly when their sets are."""
    labels = getattr(answer, "labels", None)
    return answer.label if labels is None else json.dumps(sorted(labels))


def reasons_for(answers: Sequence[Any], flags: Sequence[Any], tasks: Sequence[Any]) -> list[str]:
    """Why an item needs a reviewer (empty: it does not), from its live answers (annotator_id,
    label or set `labels`, action, id), live flags and tasks (answers_needed, done).

    Disagreement (different labels, or different sets) counts once no task waits for more
    answers (the overlap is complete); a rejection by everyone counts once as many people as
    the task wanted rejected (one without a task); a flag counts at once.
    """
    votes = [routing.Vote(a.annotator_id, _given(a), a.action, a.id) for a in answers]
    standing = consensus.latest_labels(votes)
    reasons = []
    if len({v.label for v in standing}) > 1 and all(t.done for t in tasks):
        reasons.append(DISAGREEMENT)
    rejecters = {a.annotator_id for a in answers if a.action == Action.REJECT}
    wanted = max([int(t.answers_needed) for t in tasks], default=1)
    if not standing and rejecters and len(rejecters) >= wanted:
        reasons.append(REJECTED)
    if flags:
        reasons.append(FLAGGED)
    return reasons


def pending_among(conn: Any, item_ids: Sequence[int]) -> list[tuple[int, list[str]]]:
    """The items among `item_ids` (candidates: pool items without a decision in force) that
    need a reviewer, with why."""
    answers = store.answers_of(conn, item_ids)
    flags = store.flags_of(conn, item_ids)
    tasks = store.open_tasks_of(conn, item_ids)
    found = []
    for item_id in item_ids:
        reasons = reasons_for(answers[item_id], flags[item_id], tasks[item_id])
        if reasons:
            found.append((item_id, reasons))
    return found


def settle(conn: Any, project_id: int, item_ids: Sequence[int] | None = None) -> None:
    """Set `needs_reviewer` of these items (None: every item of the project) to what the rule
    says, in the caller's transaction."""
    sets = store.answers_are_sets(conn, project_id)
    if item_ids is None:
        candidates = store.candidate_items(conn, project_id, sets)
    else:
        item_ids = list(dict.fromkeys(item_ids))
        candidates = []
        for start in range(0, len(item_ids), store.CHUNK):
            chunk = item_ids[start : start + store.CHUNK]
            candidates += store.candidate_items(conn, project_id, sets, chunk)
    waiting: set[int] = set()
    for start in range(0, len(candidates), BATCH):
        waiting.update(i for i, _ in pending_among(conn, candidates[start : start + BATCH]))
    store.set_needs_reviewer(conn, project_id, item_ids, waiting)
