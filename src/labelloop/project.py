"""The service layer: one `Project` that the CLI, the web app and Python users all call.

A project is a folder holding `labelloop.json` (which database, which project in it) and, by
default, the SQLite store `labelloop.db`. Every method reads and writes the store, so any step can
be interrupted and run again.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from . import routing
from .data.importer import Mapping, NewItem, canonical_labels, match_label, prepare_items
from .data.readers import read_file, records_from_data
from .errors import InputError
from .store import (
    AUTO_ACCEPTED,
    GOLD,
    HUMAN_LABELED,
    IN_REVIEW,
    POOL,
    UNRESOLVED,
    Annotation,
    Annotator,
    Item,
    Prediction,
    ProjectRow,
    ReviewTask,
    Store,
)
from .store.bulk import bulk_insert
from .store.db import sqlite_url
from .store.models import utcnow

CONFIG_FILE = "labelloop.json"
DEFAULT_DB_FILE = "labelloop.db"
ENV_DB = "LABELLOOP_DB"
ACTIONS = ("label", "accept", "correct", "reject", "skip")


@dataclass(frozen=True)
class ImportResult:
    rows: int
    added: int
    updated: int
    unchanged: int
    duplicates_in_file: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class Answer:
    """An answer just recorded (or withdrawn) and the item it left behind."""

    annotation_id: int
    item_uid: str
    state: str
    label: str | None
    live: Sequence[Any]  # the item's live answers: (id, annotator_id, label, action, queue)

    def to_dict(self) -> dict[str, Any]:
        return {
            "annotation_id": self.annotation_id,
            "item": self.item_uid,
            "state": self.state,
            "label": self.label,
        }


# The answer path: prebuilt Core statements (compiled once, then cached by SQLAlchemy), each
# touching a few rows through the primary key or an index.
_ITEMS, _ANNOTATIONS = Item.__table__, Annotation.__table__
_TASKS, _PROJECTS = ReviewTask.__table__, ProjectRow.__table__


def task_done(answers: Any, rejections: Any, answers_needed: Any = _TASKS.c.answers_needed) -> Any:
    """Whether a review task has all its answers (SQL; the one rule every count uses).

    A task wants `answers_needed` answers from different people (the overlap), and one more for
    each live rejection: a rejected suggestion leaves the item without a label.
    """
    return answers >= answers_needed + rejections


#: A task nobody holds: never leased, or its lease ran out before `:now`.
LEASE_FREE = or_(_TASKS.c.lease_owner.is_(None), _TASKS.c.lease_expires < bindparam("now"))
#: The open task of an item that an answer without a queue counts for: the one `:who` holds,
#: else one that nobody holds, then by priority (`free` says whether it is held).
OPEN_TASK = (
    select(_TASKS.c.queue, LEASE_FREE.label("free"))
    .where(_TASKS.c.item_id == bindparam("item"), _TASKS.c.done.is_(False))
    .order_by(
        case((_TASKS.c.lease_owner == bindparam("who"), 0), (LEASE_FREE, 1), else_=2),
        _TASKS.c.priority,
    )
    .limit(1)
)
_SETTLE = (
    update(_TASKS)
    .where(_TASKS.c.item_id == bindparam("item"), _TASKS.c.queue == bindparam("task_queue"))
    .values(
        answers=bindparam("n_answers"),
        rejections=bindparam("n_rejections"),
        done=task_done(bindparam("n_answers"), bindparam("n_rejections")),
    )
)
_RELEASE = (
    update(_TASKS)
    .where(_TASKS.c.item_id == bindparam("item"), _TASKS.c.lease_owner == bindparam("who"))
    .values(lease_owner=None, lease_expires=None)
)


def _settle_task(conn: Connection, live: Sequence[Any], item_id: int, queue: str | None) -> None:
    """Recount the item's task in `queue` from the item's live answers given in that queue.

    Recounting (rather than adding one) keeps a task's count equal to its answers whatever
    happened before: answers, undos, rejections, overlap changes.
    """
    if queue is None or queue == "gold":  # no task to count for
        return
    actions = [a.action for a in live if a.queue == queue and a.action != "skip"]
    conn.execute(
        _SETTLE,
        {
            "item": item_id,
            "task_queue": queue,
            "n_answers": len(actions),
            "n_rejections": actions.count("reject"),
        },
    )


#: What answering needs to know of an item (see `item_state`).
ITEM_STATE_COLUMNS = (
    _ITEMS.c.id,
    _ITEMS.c.uid,
    _ITEMS.c.project_id,
    _ITEMS.c.split,
    _ITEMS.c.state,
    _ITEMS.c.final_label,
    _ITEMS.c.final_source,
    _ITEMS.c.llm_label,
    _ITEMS.c.confidence,
    _ITEMS.c.calibrated_confidence,
)
_ITEM_STATE = select(*ITEM_STATE_COLUMNS).where(_ITEMS.c.id == bindparam("item"))


def labels_and_settings_of(row: Any) -> tuple[list[str], dict[str, Any]]:
    """The label set and settings from a row holding the project's `labels` and `settings`."""
    return list(row.labels), dict(row.settings or {})


_PROJECT_STATE = select(_PROJECTS.c.labels, _PROJECTS.c.settings).where(
    _PROJECTS.c.id == bindparam("project")
)
_LIVE_ANSWERS = select(
    _ANNOTATIONS.c.id,
    _ANNOTATIONS.c.annotator_id,
    _ANNOTATIONS.c.label,
    _ANNOTATIONS.c.action,
    _ANNOTATIONS.c.queue,
).where(_ANNOTATIONS.c.item_id == bindparam("item"), _ANNOTATIONS.c.undone.is_(False))
_SET_ITEM_STATE = (
    update(_ITEMS)
    .where(_ITEMS.c.id == bindparam("item"))
    .values(
        state=bindparam("new_state"),
        final_label=bindparam("new_label"),
        final_source=bindparam("new_source"),
    )
)
_ANSWER_OF = select(
    _ANNOTATIONS.c.item_id,
    _ANNOTATIONS.c.action,
    _ANNOTATIONS.c.queue,
    _ANNOTATIONS.c.project_id,
    _ANNOTATIONS.c.undone,
).where(_ANNOTATIONS.c.id == bindparam("annotation"))
_MARK_UNDONE = (
    update(_ANNOTATIONS).where(_ANNOTATIONS.c.id == bindparam("annotation")).values(undone=True)
)


@lru_cache(maxsize=64)
def _canonical(labels: tuple[str, ...]) -> dict[str, str]:
    return canonical_labels(labels)


def checked_label(labels: Sequence[str], label: str) -> str:
    """`label` as the label set spells it (case and spacing forgiven); InputError otherwise."""
    canonical = _canonical(tuple(labels))
    matched = match_label(label, canonical)
    if matched is None:
        raise InputError(
            f"label {label!r} is not in the label set ({', '.join(canonical.values())})"
        )
    return matched


def _parse_labels(labels: Sequence[str] | str) -> list[str]:
    if isinstance(labels, str):
        labels = labels.split(",")
    cleaned = [" ".join(str(label).split()) for label in labels]
    if any(not label for label in cleaned):
        raise InputError("a label is empty; give labels as --labels a,b,c")
    if len(cleaned) < 2:
        raise InputError("a project needs at least two labels")
    folded = [label.casefold() for label in cleaned]
    if len(set(folded)) != len(folded):
        raise InputError(f"labels repeat (case-insensitively): {', '.join(cleaned)}")
    return cleaned


def _resolve_db(path: Path, db: str | None, config: dict[str, Any]) -> str:
    url = db or os.environ.get(ENV_DB) or config.get("db")
    if url:
        if "://" not in url:  # a plain file name means SQLite, relative to the project folder
            candidate = Path(url)
            return sqlite_url(candidate if candidate.is_absolute() else path / candidate)
        return url
    return sqlite_url(path / DEFAULT_DB_FILE)


def make_labeler(model: str, **options: Any) -> Any:
    """A labeler by name, with configuration mistakes reported as bad input."""
    from .labelers import get_labeler

    try:
        return get_labeler(model, **options)
    except (ValueError, FileNotFoundError) as exc:
        raise InputError(str(exc)) from exc


class Project:
    """A labeling project: its items, predictions, annotations and decisions."""

    def __init__(self, store: Store, project_id: int, path: Path) -> None:
        self.store = store
        self.id = project_id
        self.path = path

    # ----------------------------------------------------------------- open / create
    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        task: str,
        labels: Sequence[str] | str,
        db: str | None = None,
        name: str | None = None,
    ) -> Project:
        """Create a project folder (and its store) for a task and an ordered label set."""
        path = Path(path).resolve()
        if (path / CONFIG_FILE).exists():
            raise InputError(f"{path} is already a labelloop project")
        if not task or not task.strip():
            raise InputError("the task description is empty; describe the task with --task")
        label_list = _parse_labels(labels)
        name = name or re.sub(r"[^\w.-]+", "-", path.name) or "project"
        path.mkdir(parents=True, exist_ok=True)
        url = _resolve_db(path, db, {})
        store = Store(url)
        with store.session() as session:
            if session.scalar(select(ProjectRow.id).where(ProjectRow.name == name)) is not None:
                store.dispose()
                raise InputError(
                    f"the database already holds a project named {name!r}; choose another --name"
                )
            row = ProjectRow(name=name, task=task.strip(), labels=label_list, settings={})
            session.add(row)
            session.flush()
            project_id = row.id
        config: dict[str, Any] = {"project": name}
        if db and "://" in db:
            config["db"] = db
        (path / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        return cls(store, project_id, path)

    @classmethod
    def open(cls, path: str | Path = ".", *, db: str | None = None) -> Project:
        """Open the project in `path` (the store URL may be overridden by `db`/LABELLOOP_DB)."""
        path = Path(path).resolve()
        config_path = path / CONFIG_FILE
        if not config_path.exists():
            raise InputError(
                f"{path} is not a labelloop project (no {CONFIG_FILE}); "
                "create one with `labelloop init`"
            )
        try:
            config = json.loads(config_path.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"{config_path} is not valid JSON: {exc}") from exc
        store = Store(_resolve_db(path, db, config))
        with store.session() as session:
            project_id = session.scalar(
                select(ProjectRow.id).where(ProjectRow.name == config.get("project"))
            )
        if project_id is None:
            store.dispose()
            raise InputError(f"the database has no project named {config.get('project')!r}")
        return cls(store, project_id, path)

    def close(self) -> None:
        self.store.dispose()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- settings
    def _row(self, session: Session) -> ProjectRow:
        return session.get_one(ProjectRow, self.id)

    @property
    def task(self) -> str:
        with self.store.session() as session:
            return self._row(session).task

    @property
    def labels(self) -> list[str]:
        with self.store.session() as session:
            return list(self._row(session).labels)

    @property
    def settings(self) -> dict[str, Any]:
        with self.store.session() as session:
            return dict(self._row(session).settings or {})

    def update_settings(self, **values: Any) -> dict[str, Any]:
        with self.store.session() as session:
            row = self._row(session)
            row.settings = {**(row.settings or {}), **values}
            return dict(row.settings)

    @property
    def threshold(self) -> float:
        return float(self.settings.get("threshold", routing.DEFAULT_THRESHOLD))

    # ----------------------------------------------------------------- import
    def import_file(
        self,
        file: str | Path,
        *,
        text_col: str = "text",
        label_col: str | None = None,
        id_col: str | None = None,
        split: str = POOL,
        fmt: str | None = None,
    ) -> ImportResult:
        """Import a CSV, TSV, JSONL, JSON or Parquet file in one transaction."""
        return self._add_records(
            read_file(file, fmt), str(file), Mapping(text_col, label_col, id_col), split
        )

    def add_items(
        self,
        data: Any,
        *,
        text_col: str = "text",
        label_col: str | None = None,
        id_col: str | None = None,
        split: str = POOL,
    ) -> ImportResult:
        """Add items from a pandas/polars DataFrame, a list of dicts or a list of strings."""
        source, records = records_from_data(data)
        return self._add_records(records, source, Mapping(text_col, label_col, id_col), split)

    def _add_records(
        self, records: Iterable[tuple[int, dict]], source: str, mapping: Mapping, split: str
    ) -> ImportResult:
        if split not in (POOL, GOLD):
            raise InputError(f"split must be 'pool' or 'gold', not {split!r}")
        prepared = prepare_items(
            records, source=source, mapping=mapping, labels=self.labels, split=split
        )
        with self.store.session() as session:
            existing = self._existing(session, prepared.items)
            new_rows, upgrades, unchanged = [], [], 0
            for item in prepared.items:
                known = existing.get(item.uid)
                if known is None:
                    new_rows.append(self._row_for(item, split))
                    continue
                item_id, digest, known_split = known
                if digest != item.text_hash:
                    raise InputError(
                        f"id {item.uid!r} already exists in the project with a different text",
                        file=source,
                        line=item.line,
                    )
                if split == GOLD and known_split != GOLD:
                    upgrades.append((item_id, item.gold_label))
                else:
                    unchanged += 1
            bulk_insert(session, Item.__table__, new_rows)
            for item_id, label in upgrades:
                session.execute(
                    update(Item)
                    .where(Item.id == item_id)
                    .values(
                        split=GOLD,
                        gold_label=label,
                        state=HUMAN_LABELED,
                        final_label=label,
                        final_source="human",
                    )
                )
                session.execute(
                    delete(ReviewTask).where(
                        ReviewTask.item_id == item_id, ReviewTask.done.is_(False)
                    )
                )
        return ImportResult(
            rows=len(prepared.items) + prepared.duplicates_in_file,
            added=len(new_rows),
            updated=len(upgrades),
            unchanged=unchanged,
            duplicates_in_file=prepared.duplicates_in_file,
        )

    def _row_for(self, item: NewItem, split: str) -> dict[str, Any]:
        gold = split == GOLD
        return {
            "project_id": self.id,
            "uid": item.uid,
            "text": item.text,
            "text_hash": item.text_hash,
            "meta": item.meta,
            "split": split,
            "gold_label": item.gold_label,
            "state": HUMAN_LABELED if gold else UNRESOLVED,
            "final_label": item.gold_label if gold else None,
            "final_source": "human" if gold else None,
            "audit": False,
        }

    def _existing(
        self, session: Session, items: Sequence[NewItem]
    ) -> dict[str, tuple[int, str, str]]:
        """uid → (id, text hash, split) for the uids about to be imported that already exist."""
        wanted = {item.uid for item in items}
        found: dict[str, tuple[int, str, str]] = {}
        if not wanted:
            return found
        total = session.scalar(select(func.count()).where(Item.project_id == self.id)) or 0
        query = select(Item.uid, Item.id, Item.text_hash, Item.split).where(
            Item.project_id == self.id
        )
        if total <= 4 * len(wanted):
            rows = session.execute(query)
            return {uid: (i, h, s) for uid, i, h, s in rows if uid in wanted}
        uids = sorted(wanted)
        for start in range(0, len(uids), 5_000):
            chunk = uids[start : start + 5_000]
            for uid, i, h, s in session.execute(query.where(Item.uid.in_(chunk))):
                found[uid] = (i, h, s)
        return found

    # ----------------------------------------------------------------- predictions
    def active_predictor(self) -> tuple[str, str] | None:
        active = self.settings.get("active_predictor")
        return (active["model"], active["prompt_version"]) if active else None

    def set_active_predictor(self, model: str, prompt_version: str) -> None:
        """Make (model, prompt version) the prediction that routing and exports show."""
        self.update_settings(active_predictor={"model": model, "prompt_version": prompt_version})
        self.refresh_item_predictions()

    def refresh_item_predictions(self, item_ids: Sequence[int] | None = None) -> None:
        """Copy the active predictor's label and confidences onto the items (the calibrated
        label where a calibration moved it)."""
        active = self.active_predictor()
        if active is None:
            return
        model, version = active
        pred = (
            select(Prediction)
            .where(
                Prediction.project_id == self.id,
                Prediction.model == model,
                Prediction.prompt_version == version,
                Prediction.item_id == Item.id,
            )
            .correlate(Item)
        )
        condition = Item.project_id == self.id
        if item_ids is not None:
            condition = and_(condition, Item.id.in_(item_ids))
        with self.store.session() as session:
            session.execute(
                update(Item)
                .where(condition)
                .values(
                    prediction_id=pred.with_only_columns(Prediction.id).scalar_subquery(),
                    llm_label=pred.with_only_columns(
                        func.coalesce(Prediction.calibrated_label, Prediction.label)
                    ).scalar_subquery(),
                    confidence=pred.with_only_columns(Prediction.confidence).scalar_subquery(),
                    calibrated_confidence=pred.with_only_columns(
                        Prediction.calibrated_confidence
                    ).scalar_subquery(),
                )
            )

    def save_predictions(
        self, model: str, prompt_version: str, results: Sequence[tuple[int, Any]]
    ) -> int:
        """Store labeler results for items (by item id); stored answers are left untouched.

        Returns the number of predictions stored. Keyed by (item, model, prompt version), so a
        re-run after an interruption neither loses nor duplicates work. A stored failure is
        replaced by a new result (a retry), its error appended to the row's `failures`.
        """
        if not results:
            return 0
        ids = [item_id for item_id, _ in results]
        with self.store.session() as session:
            stored = {
                row.item_id: row
                for row in session.execute(
                    select(
                        Prediction.item_id,
                        Prediction.id,
                        Prediction.error,
                        Prediction.failures,
                        Prediction.created_at,
                    ).where(
                        Prediction.item_id.in_(ids),
                        Prediction.model == model,
                        Prediction.prompt_version == prompt_version,
                    )
                )
            }
            rows, retried, seen = [], [], set()
            for item_id, result in results:
                earlier = stored.get(item_id)
                if item_id in seen or (earlier is not None and earlier.error is None):
                    continue  # an answer is kept
                seen.add(item_id)
                values = {
                    "label": result.label,
                    "probs": result.probs,
                    "confidence": result.confidence,
                    "reported_confidence": getattr(result, "reported_confidence", None),
                    "calibrated_confidence": None,
                    "calibrated_label": None,
                    "reasoning": result.reasoning,
                    "tokens_in": result.tokens_in,
                    "tokens_out": result.tokens_out,
                    "latency_s": result.latency_s,
                    "cost_usd": result.cost_usd,
                    "error": result.error,
                    "raw": result.raw,
                }
                if earlier is None:
                    rows.append(
                        {
                            "project_id": self.id,
                            "item_id": item_id,
                            "model": model,
                            "prompt_version": prompt_version,
                            **values,
                        }
                    )
                else:
                    at = earlier.created_at
                    failure = {"error": earlier.error, "at": at.isoformat() if at else None}
                    retried.append(
                        {
                            "id": earlier.id,
                            **values,
                            "failures": [*(earlier.failures or []), failure],
                            "created_at": utcnow(),
                        }
                    )
            if rows:
                session.execute(insert(Prediction), rows)
            if retried:
                session.execute(update(Prediction), retried)
        self.store.grew("predictions", len(rows))
        return len(rows) + len(retried)

    def prelabel(
        self,
        labeler: Any = None,
        *,
        model: str = "local",
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 16,
        limit: int | None = None,
        progress: Any = None,
        engine: str = "local",
        ray_address: str | None = None,
        ray_options: dict[str, Any] | None = None,
        retry_failed: bool = True,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Pre-label items that lack a prediction from this labeler (resumable).

        Pass a `Labeler`, or name one: `local` (the embedded model), a `.gguf` path, or a model
        served by an OpenAI-compatible endpoint at `base_url` (`timeout`: seconds per request).
        `engine="ray"` runs the labeler on the Ray cluster at `ray_address` (default:
        RAY_ADDRESS, else a local Ray). Items that failed before are asked again unless
        `retry_failed` is false.
        """
        from .workflows.prelabel import prelabel

        if limit is not None and limit < 0:
            raise InputError(f"--limit must not be negative, not {limit}")
        if engine not in ("local", "ray"):
            raise InputError(f"--engine must be local or ray, not {engine!r}")
        if engine == "ray":
            try:
                import ray  # noqa: F401
            except ImportError as exc:
                raise InputError("--engine ray needs Ray: pip install 'labelloop[ray]'") from exc
        if timeout is not None and not timeout > 0:
            raise InputError(f"--timeout must be a positive number of seconds, not {timeout}")
        owned = labeler is None
        if owned:
            extra = {} if timeout is None else {"timeout_s": timeout}
            labeler = make_labeler(
                model, base_url=base_url, api_key_env=api_key_env, concurrency=concurrency, **extra
            )
        try:
            return prelabel(
                self,
                labeler,
                limit=limit,
                progress=progress,
                engine=engine,
                ray_address=ray_address,
                ray_options=ray_options,
                retry_failed=retry_failed,
            )
        finally:
            if owned:
                labeler.close()

    def calibrate(self, **options: Any) -> dict[str, Any]:
        """Fit the calibrator on gold items and choose the threshold (see `workflows.calibrate`)."""
        from .workflows.calibrate import calibrate

        return calibrate(self, **options)

    def learn(self, **options: Any) -> dict[str, Any]:
        """Train the student and the stack on trusted labels; the best predictor becomes active
        and calibration and routing are refreshed (see `workflows.learn`)."""
        from .workflows.learn import learn

        return learn(self, **options)

    def select(self, strategy: str, k: int, **options: Any) -> dict[str, Any]:
        """Queue the `k` items whose human label should help most (see `workflows.select`)."""
        from .workflows.select import select

        return select(self, strategy, k, **options)

    def agreement(self, **options: Any) -> dict[str, Any]:
        """Agreement between annotators and LLM labelers (see `workflows.agreement`)."""
        from .workflows.agreement import agreement

        return agreement(self, **options)

    def label_issues(self, **options: Any) -> dict[str, Any]:
        """Likely-mislabeled items, queued for a second look (see `workflows.agreement`)."""
        from .workflows.agreement import label_issues

        return label_issues(self, **options)

    # ----------------------------------------------------------------- routing
    def route(
        self, threshold: float | None = None, *, audit_rate: float | None = None
    ) -> dict[str, Any]:
        """Auto-accept confident predictions; queue everything else without a label for review.

        With an audit rate, that share of the newly auto-accepted items also goes to an audit
        queue, so that the accuracy of auto-accepted labels keeps being measured.
        """
        from . import review

        settings = self.settings
        if threshold is None:
            threshold = float(settings.get("threshold", routing.DEFAULT_THRESHOLD))
        else:
            threshold = review.Bounds(0.0, 1.0).check("threshold", threshold)
        if audit_rate is not None:
            audit_rate = review.check_setting("audit_rate", audit_rate)
            self.update_settings(
                review={**(settings.get("review") or {}), "audit_rate": audit_rate}
            )
        label_thresholds = settings.get("label_thresholds") or {}
        confidence = func.coalesce(Item.calibrated_confidence, Item.confidence)
        open_items = and_(Item.project_id == self.id, Item.state != HUMAN_LABELED)
        # A person said the suggestion is wrong: it is never accepted automatically again.
        rejected = (
            select(Annotation.id)
            .where(
                Annotation.item_id == Item.id,
                Annotation.action == "reject",
                Annotation.undone.is_(False),
            )
            .exists()
        )
        confident = and_(
            Item.llm_label.is_not(None),
            confidence.is_not(None),
            self._threshold_condition(confidence, threshold, label_thresholds),
            ~rejected,
        )
        with self.store.session() as session:
            session.execute(
                update(Item)
                .where(open_items, confident)
                .values(state=AUTO_ACCEPTED, final_label=Item.llm_label, final_source="llm")
            )
            session.execute(
                update(Item)
                .where(open_items, ~confident | Item.llm_label.is_(None) | confidence.is_(None))
                .values(state=IN_REVIEW, final_label=None, final_source=None)
            )
            # Queue newly uncertain items; drop unanswered review tasks of now-confident ones.
            queued = select(ReviewTask.id).where(
                ReviewTask.item_id == Item.id, ReviewTask.queue == "review"
            )
            session.execute(
                insert(ReviewTask).from_select(
                    [
                        "project_id",
                        "item_id",
                        "queue",
                        "priority",
                        "answers_needed",
                        "answers",
                        "done",
                    ],
                    select(
                        Item.project_id,
                        Item.id,
                        literal("review"),
                        func.coalesce(confidence, 0.0),
                        literal(1),
                        literal(0),
                        literal(False),
                    ).where(Item.project_id == self.id, Item.state == IN_REVIEW, ~queued.exists()),
                )
            )
            session.execute(
                delete(ReviewTask).where(
                    ReviewTask.project_id == self.id,
                    ReviewTask.queue == "review",
                    ReviewTask.answers == 0,
                    ReviewTask.item_id.in_(
                        select(Item.id).where(
                            Item.project_id == self.id, Item.state == AUTO_ACCEPTED
                        )
                    ),
                )
            )
        if threshold != settings.get("threshold") or not settings.get("routed"):
            self.update_settings(threshold=threshold, routed=True)
        audited = review.sample_audit(self, random_state=int(settings.get("seed", 0)))
        review.apply_overlap(self)
        counts = self._state_counts()
        self_reported = self._self_reported_routing()
        return {
            "threshold": threshold,
            "label_thresholds": label_thresholds or None,
            **counts,
            "audit_queued": audited,
            **self_reported,
        }

    def _self_reported_routing(self) -> dict[str, Any]:
        """Routed items whose confidence is a number the model wrote, not calibrated: they are
        counted and named in a warning, because such a number can say anything (an item can even
        dictate it)."""
        with self.store.session() as session:
            rows = session.execute(
                select(Item.state, func.count())
                .join(Prediction, Prediction.id == Item.prediction_id)
                .where(
                    Item.project_id == self.id,
                    Item.state.in_((AUTO_ACCEPTED, IN_REVIEW)),
                    Item.calibrated_confidence.is_(None),
                    Prediction.reported_confidence.is_not(None),
                )
                .group_by(Item.state)
            ).all()
        counts = {state: n for state, n in rows}
        total = sum(counts.values())
        warnings = []
        if total:
            warnings.append(
                f"{total} items were routed on confidences the model wrote itself "
                f"({counts.get(AUTO_ACCEPTED, 0)} auto-accepted): the endpoint gave no "
                "log-probabilities and no calibration has been fitted, so these numbers are "
                "uncalibrated. Run `labelloop calibrate` on gold items, or use an endpoint that "
                "returns logprobs."
            )
        return {
            "self_reported_confidences": total,
            "self_reported_auto_accepted": counts.get(AUTO_ACCEPTED, 0),
            "warnings": warnings,
        }

    def audit_estimate(self, confidence_level: float = 0.95) -> dict[str, Any] | None:
        """Accuracy of auto-accepted labels measured on audited items, with an interval."""
        from .calibration import audit_estimate

        with self.store.session() as session:
            rows = session.execute(
                select(
                    Annotation.item_id,
                    Annotation.action,
                    Annotation.label,
                    Annotation.suggested_label,
                )
                .where(
                    Annotation.project_id == self.id,
                    Annotation.queue == "audit",
                    Annotation.undone.is_(False),
                    Annotation.action.in_(("accept", "correct", "label", "reject")),
                )
                .order_by(Annotation.id)
            ).all()
        first: dict[int, bool] = {}
        for item_id, action, label, suggested in rows:
            if item_id not in first:
                first[item_id] = action == "accept" or (
                    action != "reject" and label is not None and label == suggested
                )
        if not first:
            return None
        estimate = audit_estimate(list(first.values()), confidence_level)
        return {k: v for k, v in estimate.items() if not k.startswith("running_")}

    @staticmethod
    def _threshold_condition(confidence: Any, threshold: float, label_thresholds: dict) -> Any:
        if not label_thresholds:
            return confidence >= threshold
        per_label = [
            and_(Item.llm_label == label, confidence >= float(value))
            for label, value in label_thresholds.items()
        ]
        other = and_(Item.llm_label.not_in(list(label_thresholds)), confidence >= threshold)
        return or_(*per_label, other)

    # ----------------------------------------------------------------- annotations
    def annotator_id(self, name: str, *, create: bool = True, role: str = "annotator") -> int:
        from .review import check_user_name

        with self.store.session() as session:
            found = session.scalar(
                select(Annotator.id).where(Annotator.project_id == self.id, Annotator.name == name)
            )
            if found is not None:
                return found
            if not create:
                raise InputError(f"no annotator named {name!r}")
            row = Annotator(project_id=self.id, name=check_user_name(name), role=role)
            session.add(row)
            session.flush()
            return row.id

    def item_id(self, uid: str) -> int:
        with self.store.session() as session:
            found = session.scalar(
                select(Item.id).where(Item.project_id == self.id, Item.uid == uid)
            )
        if found is None:
            raise InputError(f"no item with id {uid!r}")
        return found

    def annotate(
        self,
        item: str | int,
        *,
        action: str,
        label: str | None = None,
        annotator: str | int | None = None,
        time_spent_s: float | None = None,
        queue: str | None = None,
        source: str = "labelloop",
        external_id: str | None = None,
    ) -> dict[str, Any]:
        """Record a person's answer on an item and update its final label.

        `accept` takes the suggestion's label; `correct` and `label` need a label; `reject`
        says the suggestion is wrong without giving a label; `skip` gives nothing.

        A trusted path (Python, CLI, Label Studio): no lease is needed. The answer counts for the
        item's task in `queue`, or without one for the open task they hold or the item's first
        (see `answer_in`).
        """
        if action not in ACTIONS:
            raise InputError(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
        item_id = item if isinstance(item, int) else self.item_id(item)
        annotator_id = self.annotator_id(annotator) if isinstance(annotator, str) else annotator
        with self.store.engine.begin() as conn:
            answer = self.answer_in(
                conn,
                item_id,
                action=action,
                label=label,
                annotator_id=annotator_id,
                time_spent_s=time_spent_s,
                queue=queue,
                source=source,
                external_id=external_id,
                shown_as=item,
            )
        return answer.to_dict()

    def answer_in(
        self,
        conn: Connection,
        item_id: int,
        *,
        action: str,
        label: str | None = None,
        annotator_id: int | None = None,
        time_spent_s: float | None = None,
        queue: str | None = None,
        source: str = "labelloop",
        external_id: str | None = None,
        shown_as: str | int | None = None,
        state: tuple[list[str], dict[str, Any]] | None = None,
        item: Any = None,
    ) -> Answer:
        """`annotate` inside the caller's transaction, a constant number of indexed statements.

        The answer is recorded in `queue` and recounts the item's task in that queue; without
        a queue it counts for the item's open task the answerer holds, else its first open task
        (`OPEN_TASK`), if any, and is recorded in that task's queue. The answerer's own lease on
        the item ends; other people's stay theirs. `state` (`labels_and_settings`) and `item`
        (`item_state`) may come from the caller.
        """
        if action not in ACTIONS:
            raise InputError(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
        labels, settings = state or self.labels_and_settings(conn)
        item = item or self.item_state(conn, item_id)
        if item is None or item.project_id != self.id:
            raise InputError(f"no item with id {item_id if shown_as is None else shown_as!r}")
        if action == "accept" and label is None:
            label = item.llm_label
            if label is None:
                raise InputError("there is no suggestion to accept; give a label")
        if action in ("label", "correct") and label is None:
            raise InputError(f"the action {action!r} needs a label")
        if label is not None:
            label = checked_label(labels, label)
        if action in ("reject", "skip"):
            label = None
        if queue is None:
            where = {"item": item_id, "who": annotator_id, "now": utcnow()}
            task = conn.execute(OPEN_TASK, where).first()
            queue = task.queue if task is not None else None
        annotation_id = conn.execute(
            insert(_ANNOTATIONS),
            {
                "project_id": self.id,
                "item_id": item_id,
                "annotator_id": annotator_id,
                "label": label,
                "action": action,
                "suggested_label": item.llm_label,
                "queue": queue,
                "source": source,
                "external_id": external_id,
                "time_spent_s": time_spent_s,
                "undone": False,
                "created_at": utcnow(),
            },
        ).inserted_primary_key[0]
        answer = self._resolve_item(conn, item, settings, annotation_id)
        if action != "skip":
            _settle_task(conn, answer.live, item_id, queue)
        if annotator_id is not None:
            conn.execute(_RELEASE, {"item": item_id, "who": annotator_id})
        return answer

    def undo_annotation(self, annotation_id: int) -> dict[str, Any]:
        """Withdraw an answer (the review UI's Backspace) and restore the item's state."""
        with self.store.engine.begin() as conn:
            return self.undo_in(conn, annotation_id).to_dict()

    def undo_in(
        self,
        conn: Connection,
        annotation_id: int,
        *,
        state: tuple[list[str], dict[str, Any]] | None = None,
    ) -> Answer:
        """`undo_annotation` inside the caller's transaction: the item's state and the task the
        answer counted for are recounted (see `answer_in`)."""
        found = conn.execute(_ANSWER_OF, {"annotation": annotation_id}).first()
        if found is None or found.project_id != self.id or found.undone:
            raise InputError(f"no answer {annotation_id} to undo")
        conn.execute(_MARK_UNDONE, {"annotation": annotation_id})
        item = conn.execute(_ITEM_STATE, {"item": found.item_id}).one()
        settings = (state or self.labels_and_settings(conn))[1]
        answer = self._resolve_item(conn, item, settings, annotation_id)
        if found.action != "skip":
            _settle_task(conn, answer.live, found.item_id, found.queue)
        return answer

    def item_state(self, conn: Connection, item_id: int) -> Any:
        """The item's split, state and suggestion (a row, or None), read in `conn`."""
        return conn.execute(_ITEM_STATE, {"item": item_id}).first()

    def labels_and_settings(self, conn: Connection) -> tuple[list[str], dict[str, Any]]:
        """The label set and settings, read in the caller's transaction (one primary-key row)."""
        return labels_and_settings_of(conn.execute(_PROJECT_STATE, {"project": self.id}).one())

    def _resolve_item(
        self, conn: Connection, item: Any, settings: dict[str, Any], annotation_id: int
    ) -> Answer:
        """Recompute the item's state and final label from its live answers (written if changed)."""
        live = conn.execute(_LIVE_ANSWERS, {"item": item.id}).all()
        resolved = (item.state, item.final_label, item.final_source)
        if item.split != GOLD:  # gold labels are trusted; answers on gold measure annotators
            votes = [routing.Vote(a.annotator_id, a.label, a.action, a.id) for a in live]
            resolved = self._resolved_state(item, votes, settings)
        if resolved != (item.state, item.final_label, item.final_source):
            state, final_label, final_source = resolved
            conn.execute(
                _SET_ITEM_STATE,
                {
                    "item": item.id,
                    "new_state": state,
                    "new_label": final_label,
                    "new_source": final_source,
                },
            )
        return Answer(annotation_id, item.uid, resolved[0], resolved[1], live)

    @staticmethod
    def _resolved_state(
        item: Any, votes: Sequence[routing.Vote], settings: dict[str, Any]
    ) -> tuple[str, str | None, str | None]:
        human = routing.resolve_human_label(votes)
        if human is not None:
            return HUMAN_LABELED, human, "human"
        confident = routing.is_confident(
            item.llm_label,
            item.calibrated_confidence
            if item.calibrated_confidence is not None
            else item.confidence,
            float(settings.get("threshold", routing.DEFAULT_THRESHOLD)),
            settings.get("label_thresholds"),
        )
        if confident and not any(vote.action == "reject" for vote in votes):
            return AUTO_ACCEPTED, item.llm_label, "llm"
        return IN_REVIEW, None, None

    # ----------------------------------------------------------------- stats / export
    def _state_counts(self) -> dict[str, int]:
        with self.store.session() as session:
            counts = dict(
                session.execute(
                    select(Item.state, func.count())
                    .where(Item.project_id == self.id)
                    .group_by(Item.state)
                ).all()
            )
        return {
            state: int(counts.get(state, 0))
            for state in (AUTO_ACCEPTED, IN_REVIEW, HUMAN_LABELED, UNRESOLVED)
        }

    def stats(self) -> dict[str, Any]:
        """Counts per state, review rate and the LLM's accuracy on gold."""
        with self.store.session() as session:
            base = select(func.count()).select_from(Item).where(Item.project_id == self.id)
            items = session.scalar(base) or 0
            gold = session.scalar(base.where(Item.split == GOLD)) or 0
            predicted = session.scalar(base.where(Item.llm_label.is_not(None))) or 0
            gold_predicted = (
                session.scalar(base.where(Item.split == GOLD, Item.llm_label.is_not(None))) or 0
            )
            gold_correct = (
                session.scalar(base.where(Item.split == GOLD, Item.llm_label == Item.gold_label))
                or 0
            )
            pool_human = (
                session.scalar(base.where(Item.split == POOL, Item.state == HUMAN_LABELED)) or 0
            )
        counts = self._state_counts()
        pool = items - gold
        return {
            "items": items,
            "gold": gold,
            "pool": pool,
            "predicted": predicted,
            **counts,
            "review_rate": (counts[IN_REVIEW] + pool_human) / pool if pool else None,
            "gold_accuracy": gold_correct / gold_predicted if gold_predicted else None,
            "gold_predicted": gold_predicted,
            "threshold": self.threshold,
            "active_predictor": self.settings.get("active_predictor"),
            "audit": self.audit_estimate(),
        }

    def iter_export_rows(self, include: str | None = "meta") -> Iterator[dict[str, Any]]:
        """One row per item with its final label and where it came from (see `export`)."""
        from .data.formats.provenance import iter_provenance_rows

        return iter_provenance_rows(self, include)

    # --- review: queues, annotators, tokens (thin delegates to `labelloop.review`)
    def add_user(
        self, name: str, *, role: str = "annotator", password: str | None = None
    ) -> dict[str, Any]:
        """Create a login for the review server (admin or annotator)."""
        from . import review

        return review.add_user(self, name, role=role, password=password)

    def create_token(self, name: str, *, expires: str | None = None) -> str:
        """A new API token for a user, shown once (only its hash is stored); `expires`: '30d'."""
        from . import review

        return review.create_token(self, name, expires=expires)

    def enqueue(
        self, item_ids: Sequence[int], *, queue: str = "active", priorities: Any = None
    ) -> int:
        """Queue items (store ids) for people, e.g. active-learning selections."""
        from . import review

        return review.enqueue(self, item_ids, queue=queue, priorities=priorities)

    def sample_audit(self, rate: float | None = None, random_state: Any = None) -> int:
        """Queue a random share of auto-accepted items for audit."""
        from . import review

        return review.sample_audit(self, rate, random_state)

    def set_queue_settings(self, **values: Any) -> dict[str, Any]:
        """Overlap, gold rate, audit rate and lease length of the review queues."""
        from . import review

        return review.set_queue_settings(self, **values)

    def next_item(self, annotator: str | int, *, exclude: Sequence[int] = ()) -> Any:
        """An annotator's next item to review (leased to them), or None when done."""
        from . import review

        annotator_id = self.annotator_id(annotator) if isinstance(annotator, str) else annotator
        return review.next_item(self, annotator_id, exclude=exclude)

    def dashboard(self) -> dict[str, Any]:
        """Progress, review rate, auto-accepted accuracy, agreement and per-annotator work."""
        from . import review

        return review.dashboard(self)

    # --- exchange: tool formats (thin delegates to `labelloop.workflows.exchange`)
    def export(
        self, out: str | Path, fmt: str = "jsonl", *, include: str | Sequence[str] | None = None
    ) -> dict[str, Any]:
        """Write every item with its label's provenance: jsonl, csv, parquet, labelstudio,
        argilla, prodigy or hf (see `labelloop.data.formats`)."""
        from .workflows.exchange import export_project

        return export_project(self, out, fmt, include=include)

    def import_from(self, path: str | Path, fmt: str, **options: Any) -> dict[str, Any]:
        """Import another tool's export (labelstudio, argilla, prodigy, hf) or a labelloop
        export (labelloop) with its predictions and answers, in one transaction."""
        from .workflows.exchange import import_project

        return import_project(self, path, fmt, **options)
