"""The adjudication queue's statements: reviewers' decisions, annotators' flags, and the items
that may need a reviewer.

Every query of adjudication lives here (the review service above builds none): each takes the
caller's connection, so that a decision and the item's new label are one transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Connection, and_, bindparam, exists, func, insert, or_, select, update

from ..vocabulary import LABELING_ACTIONS, MULTI_LABEL, Action, Split
from .models import (
    Adjudication,
    Annotation,
    Annotator,
    GoldLease,
    Item,
    ItemFlag,
    ProjectRow,
    ReviewTask,
    table_of,
)

_DECISIONS, _FLAGS = table_of(Adjudication), table_of(ItemFlag)
_ITEMS, _ANSWERS = table_of(Item), table_of(Annotation)
_TASKS, _PEOPLE = table_of(ReviewTask), table_of(Annotator)
_PROJECTS = table_of(ProjectRow)

#: The item's decision in force: its newest live one.
_LIVE_DECISION = (
    select(
        _DECISIONS.c.id,
        _DECISIONS.c.label,
        _DECISIONS.c.labels,
        _DECISIONS.c.reviewer_id,
        _DECISIONS.c.note,
        _DECISIONS.c.created_at,
    )
    .where(_DECISIONS.c.item_id == bindparam("item"), _DECISIONS.c.undone.is_(False))
    .order_by(_DECISIONS.c.id.desc())
    .limit(1)
)
_DECISION = select(
    _DECISIONS.c.id,
    _DECISIONS.c.project_id,
    _DECISIONS.c.item_id,
    _DECISIONS.c.reviewer_id,
    _DECISIONS.c.undone,
)
_DECISION_BY_ID = _DECISION.where(_DECISIONS.c.id == bindparam("decision"))
_LAST_DECISION_BY = (
    _DECISION.where(
        _DECISIONS.c.project_id == bindparam("project"),
        _DECISIONS.c.reviewer_id == bindparam("who"),
        _DECISIONS.c.undone.is_(False),
    )
    .order_by(_DECISIONS.c.id.desc())
    .limit(1)
)
_UNDO_DECISION = (
    update(_DECISIONS).where(_DECISIONS.c.id == bindparam("decision")).values(undone=True)
)
_CLEAR_FLAGS = (
    update(_FLAGS)
    .where(
        _FLAGS.c.item_id == bindparam("item"),
        _FLAGS.c.annotator_id == bindparam("who"),
        _FLAGS.c.cleared.is_(False),
    )
    .values(cleared=True)
)
_LIVE_FLAG = _FLAGS.c.cleared.is_(False)
_LIVE_ANSWER = _ANSWERS.c.undone.is_(False)


def live_decision(conn: Connection, item_id: int) -> Any:
    """The item's decision in force (id, label, labels, reviewer_id, note, created_at), or
    None; `labels` is the set of a decision on a multi-label item."""
    return conn.execute(_LIVE_DECISION, {"item": item_id}).first()


def add_decision(conn: Connection, values: dict[str, Any]) -> int:
    """Store a decision (the columns of `Adjudication`); returns its id."""
    inserted = conn.execute(insert(_DECISIONS), values).inserted_primary_key
    assert inserted is not None  # an INSERT of one row
    return int(inserted[0])


def decision(conn: Connection, decision_id: int) -> Any:
    """A decision's id, project, item, reviewer and whether it was undone; None if unknown."""
    return conn.execute(_DECISION_BY_ID, {"decision": decision_id}).first()


def last_decision_by(conn: Connection, project_id: int, reviewer_id: int) -> Any:
    """The reviewer's newest live decision (as `decision`), or None."""
    return conn.execute(_LAST_DECISION_BY, {"project": project_id, "who": reviewer_id}).first()


def mark_undone(conn: Connection, decision_id: int) -> None:
    conn.execute(_UNDO_DECISION, {"decision": decision_id})


def add_flag(conn: Connection, values: dict[str, Any]) -> int:
    """Store a flag (the columns of `ItemFlag`); returns its id."""
    inserted = conn.execute(insert(_FLAGS), values).inserted_primary_key
    assert inserted is not None
    return int(inserted[0])


def clear_flags(conn: Connection, item_id: int, annotator_id: int) -> int:
    """Withdraw a person's live flags on an item; returns how many there were."""
    result = conn.execute(_CLEAR_FLAGS, {"item": item_id, "who": annotator_id})
    return int(result.rowcount or 0)


def has_live_flag(conn: Connection, item_id: int, annotator_id: int) -> bool:
    query = select(
        exists().where(
            _FLAGS.c.item_id == item_id, _FLAGS.c.annotator_id == annotator_id, _LIVE_FLAG
        )
    )
    return bool(conn.execute(query).scalar())


def candidate_items(
    conn: Connection, project_id: int, sets: bool = False, item_ids: Sequence[int] | None = None
) -> list[int]:
    """Pool items without a decision in force that may need one: flagged, answered with two
    different labels (with `sets`, the answers of a multi-label project: answered by two
    people), or rejected with no label given (a superset: the service decides from each
    item's standing answers). In id order; among `item_ids` (at most `CHUNK`) when given,
    reading only those items' answers and flags (the answer path settles one item at a time)."""
    mine = _ANSWERS.c.project_id == project_id
    flags = _FLAGS.c.project_id == project_id
    if item_ids is not None:
        mine = and_(mine, _ANSWERS.c.item_id.in_(list(item_ids)))
        flags = and_(flags, _FLAGS.c.item_id.in_(list(item_ids)))
    labeling = and_(_LIVE_ANSWER, _ANSWERS.c.action.in_(list(LABELING_ACTIONS)))
    # Answers given without a name count as one more person, as the rule counts them.
    differ = func.coalesce(_ANSWERS.c.annotator_id, -1) if sets else _ANSWERS.c.label
    disagree = (
        select(_ANSWERS.c.item_id)
        .where(mine, labeling)
        .group_by(_ANSWERS.c.item_id)
        .having(func.count(func.distinct(differ)) > 1)
    )
    rejects = select(_ANSWERS.c.item_id).where(
        mine, _LIVE_ANSWER, _ANSWERS.c.action == Action.REJECT
    )
    labeled = select(_ANSWERS.c.item_id).where(mine, labeling)
    flagged = select(_FLAGS.c.item_id).where(flags, _LIVE_FLAG)
    decided = exists().where(_DECISIONS.c.item_id == _ITEMS.c.id, _DECISIONS.c.undone.is_(False))
    query = (
        select(_ITEMS.c.id)
        .where(
            _ITEMS.c.project_id == project_id,
            _ITEMS.c.split == Split.POOL,
            or_(
                _ITEMS.c.id.in_(disagree),
                and_(_ITEMS.c.id.in_(rejects), _ITEMS.c.id.not_in(labeled)),
                _ITEMS.c.id.in_(flagged),
            ),
            ~decided,
        )
        .order_by(_ITEMS.c.id)
    )
    if item_ids is not None:
        query = query.where(_ITEMS.c.id.in_(list(item_ids)))
    return [int(i) for i in conn.scalars(query)]


#: Ids per IN list.
CHUNK = 5_000


def set_needs_reviewer(
    conn: Connection, project_id: int, checked: Sequence[int] | None, waiting: Collection[int]
) -> None:
    """Mark the `waiting` items as waiting for a reviewer and the other `checked` ones (None:
    every other item of the project) as not."""
    flag = _ITEMS.c.needs_reviewer
    if checked is None:
        conn.execute(
            update(_ITEMS)
            .where(_ITEMS.c.project_id == project_id, flag.is_distinct_from(False))
            .values(needs_reviewer=False)
        )
    else:
        _mark(conn, [i for i in dict.fromkeys(checked) if i not in waiting], False)
    _mark(conn, sorted(waiting), True)


def _mark(conn: Connection, item_ids: Sequence[int], waiting: bool) -> None:
    flag = _ITEMS.c.needs_reviewer
    for start in range(0, len(item_ids), CHUNK):
        chunk = list(item_ids[start : start + CHUNK])
        conn.execute(
            update(_ITEMS)
            .where(_ITEMS.c.id.in_(chunk), flag.is_distinct_from(waiting))
            .values(needs_reviewer=waiting)
        )


def answers_are_sets(conn: Connection, project_id: int) -> bool:
    """Whether the project is multi-label (its answers give sets, `candidate_items(sets=)`)."""
    settings = conn.execute(
        select(_PROJECTS.c.settings).where(_PROJECTS.c.id == project_id)
    ).scalar()
    return bool((settings or {}).get(MULTI_LABEL))


def unsettled_items(conn: Connection, project_id: int) -> list[int]:
    """Items whose `needs_reviewer` is not settled yet (null: left so by the upgrade that
    added it)."""
    query = select(_ITEMS.c.id).where(
        _ITEMS.c.project_id == project_id, _ITEMS.c.needs_reviewer.is_(None)
    )
    return [int(i) for i in conn.scalars(query.order_by(_ITEMS.c.id))]


def _by_item(rows: Any) -> dict[int, list[Any]]:
    """Rows grouped by their `item_id`, in the order given (items without rows: empty)."""
    found: dict[int, list[Any]] = defaultdict(list)
    for row in rows:
        found[row.item_id].append(row)
    return found


def _named_rows(
    conn: Connection, table: Any, person: Any, columns: Sequence[Any], live: Any, item_ids: Any
) -> dict[int, list[Any]]:
    """Live rows of `table` on the items, oldest first, with the name of the person in
    `person` as `annotator`, grouped by item."""
    rows = conn.execute(
        select(table.c.id, table.c.item_id, person, _PEOPLE.c.name.label("annotator"), *columns)
        .outerjoin(_PEOPLE, _PEOPLE.c.id == person)
        .where(table.c.item_id.in_(list(item_ids)), live)
        .order_by(table.c.id)
    )
    return _by_item(rows)


def answers_of(conn: Connection, item_ids: Sequence[int]) -> dict[int, list[Any]]:
    """The live answers of each item, oldest first: id, annotator_id, annotator (name), label,
    labels (a multi-label answer's set), action, queue, created_at."""
    a = _ANSWERS.c
    columns = (a.label, a.labels, a.action, a.queue, a.created_at)
    return _named_rows(conn, _ANSWERS, a.annotator_id, columns, _LIVE_ANSWER, item_ids)


def flags_of(conn: Connection, item_ids: Sequence[int]) -> dict[int, list[Any]]:
    """The live flags of each item, oldest first: annotator_id, annotator (name), reason."""
    f = _FLAGS.c
    return _named_rows(conn, _FLAGS, f.annotator_id, (f.reason, f.created_at), _LIVE_FLAG, item_ids)


def open_tasks_of(conn: Connection, item_ids: Sequence[int]) -> dict[int, list[Any]]:
    """Each item's tasks (queue, answers_needed, done): a disagreement waits while a task still
    wants answers; a rejection counts once as many people as the task wanted rejected."""
    rows = conn.execute(
        select(_TASKS.c.item_id, _TASKS.c.queue, _TASKS.c.answers_needed, _TASKS.c.done).where(
            _TASKS.c.item_id.in_(list(item_ids))
        )
    )
    return _by_item(rows)


def decisions_of(conn: Connection, item_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The decision in force of each decided item: label (or set), reviewer (name), note,
    reasons, the label (or set) it replaced and when it was made."""
    rows = conn.execute(
        select(
            _DECISIONS.c.id,
            _DECISIONS.c.item_id,
            _DECISIONS.c.label,
            _DECISIONS.c.labels,
            _PEOPLE.c.name.label("reviewer"),
            _DECISIONS.c.note,
            _DECISIONS.c.reasons,
            _DECISIONS.c.previous_label,
            _DECISIONS.c.previous_labels,
            _DECISIONS.c.previous_source,
            _DECISIONS.c.created_at,
        )
        .outerjoin(_PEOPLE, _PEOPLE.c.id == _DECISIONS.c.reviewer_id)
        .where(_DECISIONS.c.item_id.in_(list(item_ids)), _DECISIONS.c.undone.is_(False))
        .order_by(_DECISIONS.c.id)
    )
    return {row.item_id: row._asdict() for row in rows}  # the newest wins


def item_exists(conn: Connection, project_id: int, item_id: int) -> bool:
    query = select(exists().where(_ITEMS.c.id == item_id, _ITEMS.c.project_id == project_id))
    return bool(conn.execute(query).scalar())


def may_flag(conn: Connection, item_id: int, who: int) -> bool:
    """Whether a person was served the item (holds its task or a gold check of it) or answered
    it: what an annotator may flag."""
    leases = table_of(GoldLease)
    query = select(
        or_(
            exists().where(_TASKS.c.item_id == item_id, _TASKS.c.lease_owner == who),
            exists().where(
                _ANSWERS.c.item_id == item_id, _ANSWERS.c.annotator_id == who, _LIVE_ANSWER
            ),
            exists().where(leases.c.item_id == item_id, leases.c.annotator_id == who),
        )
    )
    return bool(conn.execute(query).scalar())
