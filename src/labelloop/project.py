"""The service layer: one `Project` that the CLI, the web app and Python users all call.

A project is a folder holding `labelloop.json` (which database, which project in it) and, by
default, the SQLite store `labelloop.db`. Every method reads and writes the store, so any step can
be interrupted and run again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import routing
from .data.importer import (
    LabelSets,
    Mapping,
    NewItem,
    Prepared,
    hash_id,
    prepare_items,
)
from .data.readers import read_file, records_from_data
from .errors import InputError
from .guidelines import canonical_label, check_guidelines, merge_descriptions
from .review import accounts, answers, overview, queues, waiting
from .review.accounts import check_user_name
from .review.common import AuditEstimate, Result, Stats, transaction
from .review.labelsets import (
    ALLOW_EMPTY,
    SetAnswer,
    SetAnswerIn,
    annotate_set,
    is_multi_label,
    multi_label_settings,
)
from .store import (
    AUTO_ACCEPTED,
    GOLD,
    HUMAN_LABELED,
    POOL,
    UNRESOLVED,
    ProjectRow,
    Session,
    Store,
)
from .store import accounts as account_rows
from .store import predictions as prediction_rows
from .store import projects as rows_of
from .store.adjudication import unsettled_items
from .store.db import (
    CONFIG_FILE,
    engine_reader,
    find_project_id,
    project_id_named,
    read_audit_estimate,
    read_project_config,
    read_state_counts,
    read_stats,
    resolve_db,
)
from .store.guidelines import add_guidelines, guideline_history, latest_guidelines
from .store.models import utcnow
from .store.routing import route_items
from .vocabulary import ItemState, LabelSource, Queue, Role

if TYPE_CHECKING:
    from .labelers.base import LabelTask
    from .review.accounts import Account
    from .workflows.agreement import AgreementReport, LabelIssues
    from .workflows.calibrate import Calibrated
    from .workflows.consensus import Consensus
    from .workflows.engine import Engine
    from .workflows.exchange import Exported, Imported
    from .workflows.learn import Learned
    from .workflows.multilabel import MultiLabelAgreement, MultiLabelRouting, MultiLabelSelection
    from .workflows.multilabel_learn import MultiLabelLearned
    from .workflows.prelabel import Prelabeled
    from .workflows.select import Selection


@dataclass(frozen=True, slots=True)
class ImportResult(Result):
    """What an import added, updated and left unchanged (`Project.import_file`, `add_items`);
    `to_dict` is what `import --json` sends."""

    rows: int
    added: int
    updated: int
    unchanged: int
    duplicates_in_file: int
    id_col: str | None = None  # the column the ids came from; None: content hashes
    ids_adopted: int = 0  # items imported before with content-hash ids that now have the file's


@dataclass(frozen=True, slots=True)
class Routing(Result):
    """What `Project.route` decided; `to_dict` is what `route --json` prints."""

    threshold: float
    label_thresholds: dict[str, float] | None  # per-label thresholds from calibration
    auto_accepted: int
    in_review: int
    human_labeled: int
    unresolved: int
    audit_queued: int  # newly auto-accepted items sent to the audit queue
    labeler_distrusted: bool  # calibration found the labeler not worth routing on
    consensus: Consensus  # `Project.resolve`'s report
    self_reported_confidences: int  # routed on confidences the model wrote itself
    self_reported_auto_accepted: int
    warnings: list[str]


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


def _prediction_values(result: Any) -> dict[str, Any]:
    """A labeler's result as a prediction row's values (uncalibrated)."""
    return {
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
        "labels": getattr(result, "labels", None),
    }


def _retry(earlier: Any, values: dict[str, Any]) -> dict[str, Any]:
    """The row replacing a stored failure: the new values, the old error kept in `failures`."""
    at = earlier.created_at
    failure = {"error": earlier.error, "at": at.isoformat() if at else None}
    failures = [*(earlier.failures or []), failure]
    return {"id": earlier.id, **values, "failures": failures, "created_at": utcnow()}


def _sort_imported(
    items: Sequence[NewItem], existing: dict[str, tuple[Any, ...]], split: str, source: str
) -> tuple[list[NewItem], list[tuple[int, NewItem]], int]:
    """The imported items that are new, the known pool items a gold import turns into gold
    (id, item), and how many are known already; a known id with another text is bad input."""
    new, upgrades, unchanged = [], [], 0
    for item in items:
        known = existing.get(item.uid)
        if known is None:
            new.append(item)
            continue
        item_id, digest, known_split = known[:3]
        if digest != item.text_hash:
            raise InputError(
                f"id {item.uid!r} already exists in the project with a different text",
                file=source,
                line=item.line,
            )
        if split == GOLD and known_split != GOLD:
            upgrades.append((item_id, item))
        else:
            unchanged += 1
    return new, upgrades, unchanged


def make_labeler(model: str, *, multi_label: bool = False, **options: Any) -> Any:
    """A labeler by name (a missing model file or endpoint is bad input); with `multi_label`,
    one that gives every label its own probability."""
    if multi_label:
        from .labelers.multilabel import get_multi_labeler

        return get_multi_labeler(model, **options)
    from .labelers import get_labeler

    return get_labeler(model, **options)


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
        multi_label: bool = False,
        allow_empty: bool = False,
    ) -> Project:
        """Create a project folder (and its store) for a task and an ordered label set.

        With `multi_label` items take any subset of the labels (none only with `allow_empty`).
        """
        path = Path(path).resolve()
        if (path / CONFIG_FILE).exists():
            raise InputError(f"{path} is already a labelloop project")
        if not task or not task.strip():
            raise InputError("the task description is empty; describe the task with --task")
        label_list = _parse_labels(labels)
        settings = multi_label_settings(label_list, multi_label, allow_empty)
        name = name or re.sub(r"[^\w.-]+", "-", path.name) or "project"
        path.mkdir(parents=True, exist_ok=True)
        url = resolve_db(path, db, {})
        store = Store(url)
        with store.session() as session:
            if project_id_named(engine_reader(store.engine), name) is not None:
                store.dispose()
                raise InputError(
                    f"the database already holds a project named {name!r}; choose another --name"
                )
            project_id = rows_of.add_project(session, name, task.strip(), label_list, settings)
        config: dict[str, Any] = {"project": name}
        if db and "://" in db:
            config["db"] = db
        (path / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        return cls(store, project_id, path)

    @classmethod
    def open(cls, path: str | Path = ".", *, db: str | None = None) -> Project:
        """Open the project in `path` (the store URL may be overridden by `db`/LABELLOOP_DB)."""
        path = Path(path).resolve()
        config = read_project_config(path)
        store = Store(resolve_db(path, db, config))
        try:
            project_id = find_project_id(engine_reader(store.engine), config.get("project"))
        except InputError:
            store.dispose()
            raise
        return cls(store, project_id, path)

    def close(self) -> None:
        self.store.dispose()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- settings
    def _row(self, session: Session) -> ProjectRow:
        return rows_of.project_row(session, self.id)

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
    def multi_label(self) -> bool:
        """Whether items take label sets (`Project.create(multi_label=True)`)."""
        return is_multi_label(self.settings)

    @property
    def allow_empty(self) -> bool:
        """Whether a multi-label item may take no label at all."""
        return bool(self.settings.get(ALLOW_EMPTY))

    @property
    def threshold(self) -> float:
        return float(self.settings.get("threshold", routing.DEFAULT_THRESHOLD))

    # ----------------------------------------------------------------- guidelines
    def guidelines(self) -> dict[str, Any] | None:
        """The guidelines in force (Markdown text, label descriptions, version, when, by whom
        and from where), or None when none were set."""
        with self.store.session() as session:
            return latest_guidelines(session, self.id)

    def guideline_history(self) -> list[dict[str, Any]]:
        """Every version of the guidelines, oldest first."""
        with self.store.session() as session:
            return guideline_history(session, self.id)

    def set_guidelines(
        self,
        text: str | None = None,
        *,
        label_descriptions: dict[str, str] | None = None,
        author: str | None = None,
        source: str | None = None,
    ) -> dict[str, Any]:
        """Store a new version of the guidelines, which is then in force.

        `text` replaces the Markdown (None keeps it); `label_descriptions` changes the named
        labels' descriptions (an empty one removes it) and keeps the others. Labelers' prompts
        include both, so their prompt version changes with them.
        """
        labels = self.labels
        changes = {
            canonical_label(name, labels): value
            for name, value in (label_descriptions or {}).items()
        }
        with self.store.session() as session:
            current = latest_guidelines(session, self.id) or {}
            new_text = current.get("text", "") if text is None else check_guidelines(text)
            descriptions = merge_descriptions(
                current.get("label_descriptions", {}), changes, labels
            )
            if current and (new_text, descriptions) == (
                current["text"],
                current["label_descriptions"],
            ):
                return current  # nothing changed: no new version, no new prompt version
            return add_guidelines(
                session,
                self.id,
                text=new_text,
                label_descriptions=descriptions,
                author=author[:200] if author else None,
                source=source[:500] if source else None,
            )

    def set_gold_feedback(self, enabled: bool) -> None:
        """Show annotators the expected label and its description after each gold check (off
        by default). While on, a gold check's answer cannot be undone: the answer was seen."""
        self.update_settings(**{answers.GOLD_FEEDBACK: bool(enabled)})

    def label_task(self, examples: Sequence[tuple[str, str]] = ()) -> LabelTask:
        """What labelers are asked: the task, the labels, their descriptions, the guidelines in
        force and few-shot `examples` (text, label)."""
        from .labelers.base import LabelTask

        found = self.guidelines() or {}
        return LabelTask(
            description=self.task,
            labels=self.labels,
            examples=list(examples),
            label_descriptions=dict(found.get("label_descriptions") or {}),
            guidelines=found.get("text", ""),
        )

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
        hash_ids: bool = False,
    ) -> ImportResult:
        """Import a CSV, TSV, JSONL, JSON or Parquet file in one transaction.

        Item ids come from `id_col`, else from the file's `id` column when it has one, else (or
        with `hash_ids`) from a hash of the text.
        """
        mapping = Mapping(text_col, label_col, id_col, hash_ids=hash_ids)
        return self._add_records(read_file(file, fmt), str(file), mapping, split)

    def add_items(
        self,
        data: Any,
        *,
        text_col: str = "text",
        label_col: str | None = None,
        id_col: str | None = None,
        split: str = POOL,
        hash_ids: bool = False,
    ) -> ImportResult:
        """Add items from a pandas/polars DataFrame, a list of dicts or a list of strings (ids
        as in `import_file`)."""
        source, records = records_from_data(data)
        mapping = Mapping(text_col, label_col, id_col, hash_ids=hash_ids)
        return self._add_records(records, source, mapping, split)

    def _add_records(
        self, records: Iterable[tuple[int, dict]], source: str, mapping: Mapping, split: str
    ) -> ImportResult:
        if split not in (POOL, GOLD):
            raise InputError(f"split must be 'pool' or 'gold', not {split!r}")
        labels, settings = self.labels, self.settings
        sets = (
            LabelSets(labels, bool(settings.get(ALLOW_EMPTY))) if is_multi_label(settings) else None
        )
        prepared = prepare_items(
            records, source=source, mapping=mapping, labels=labels, split=split, label_sets=sets
        )
        with self.store.session() as session:
            existing = rows_of.existing_items(
                session, self.id, {item.uid for item in prepared.items}
            )
            adopted = self._adopt_file_ids(session, prepared, existing)
            new, upgrades, unchanged = _sort_imported(prepared.items, existing, split, source)
            new_rows = [self._row_for(item, split) for item in new]
            rows_of.insert_items(session, new_rows)
            for item_id, item in upgrades:
                rows_of.make_gold(session, item_id, item.gold_label, item.gold_labels)
            if upgrades:  # gold items never wait for a reviewer
                waiting.settle(session.connection(), self.id, [i for i, _ in upgrades])
        return ImportResult(
            rows=len(prepared.items) + prepared.duplicates_in_file,
            added=len(new_rows),
            updated=len(upgrades),
            unchanged=unchanged,
            duplicates_in_file=prepared.duplicates_in_file,
            id_col=prepared.id_col,
            ids_adopted=adopted,
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
            "gold_labels": item.gold_labels,
            "state": HUMAN_LABELED if gold else UNRESOLVED,
            "final_label": item.gold_label if gold else None,
            "final_labels": item.gold_labels if gold else None,
            "final_source": LabelSource.HUMAN if gold else None,
            "audit": False,
        }

    def _adopt_file_ids(
        self, session: Session, prepared: Prepared, existing: dict[str, tuple[Any, ...]]
    ) -> int:
        """Give the file's ids to items imported from it before with content-hash ids.

        Before files' own ids were the items' ids, a row imported without `--id-col` got the
        hash of its text as id and its id in `meta`. Re-importing such a file finds those items
        (same text, same id in `meta`) and renames them, so that the import adds nothing and
        exports show the file's ids. `existing` learns the new names.
        """
        if prepared.id_col is None or len(existing) == len(prepared.items):
            return 0
        if not rows_of.has_items(session, self.id):
            return 0  # a first import: nothing to adopt
        by_hash: dict[str, dict[str, NewItem]] = {}  # rows of one text: by their ids
        for item in prepared.items:
            if item.uid not in existing:
                by_hash.setdefault(hash_id(item.text_hash), {})[item.uid] = item
        adopted = 0
        for old_uid, (item_id, digest, split, meta) in rows_of.existing_items(
            session, self.id, set(by_hash), with_meta=True
        ).items():
            kept = (meta or {}).get(prepared.id_col)
            named = by_hash[old_uid].get(str(kept).strip()) if kept is not None else None
            if named is None or digest != named.text_hash:
                continue
            rows_of.rename_item(session, item_id, named.uid)
            existing[named.uid] = (item_id, digest, split)
            adopted += 1
        return adopted

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
        with self.store.session() as session:
            prediction_rows.show_active_prediction(session, self.id, *active, item_ids)

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
            stored = rows_of.stored_predictions(session, ids, model, prompt_version)
            rows, retried, seen = [], [], set()
            for item_id, result in results:
                earlier = stored.get(item_id)
                if item_id in seen or (earlier is not None and earlier.error is None):
                    continue  # an answer is kept
                seen.add(item_id)
                values = _prediction_values(result)
                if earlier is None:
                    key = {"model": model, "prompt_version": prompt_version}
                    rows.append({"project_id": self.id, "item_id": item_id, **key, **values})
                else:
                    retried.append(_retry(earlier, values))
            prediction_rows.add_predictions(session, rows)
            rows_of.replace_predictions(session, retried)
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
        engine: Engine | None = None,
        retry_failed: bool = True,
        timeout: float | None = None,
    ) -> Prelabeled:
        """Pre-label items that lack a prediction from this labeler (resumable).

        Pass a `Labeler`, or name one: `local` (the embedded model), a `.gguf` path, or a model
        served by an OpenAI-compatible endpoint at `base_url` (`timeout`: seconds per request).
        The labeler runs on `engine` (default: this process; ``labelloop.engines.engine_for("ray")``
        for a Ray cluster). Items that failed before are asked again unless `retry_failed` is
        false.
        """
        if limit is not None and limit < 0:
            raise InputError(f"--limit must not be negative, not {limit}")
        if timeout is not None and not timeout > 0:
            raise InputError(f"--timeout must be a positive number of seconds, not {timeout}")
        if engine is None:
            from .workflows.engine import LocalEngine  # labelers and NumPy: on first use

            engine = LocalEngine()
        owned = labeler is None
        if owned:
            extra = {} if timeout is None else {"timeout_s": timeout}
            labeler = make_labeler(
                model,
                multi_label=self.multi_label,
                base_url=base_url,
                api_key_env=api_key_env,
                concurrency=concurrency,
                **extra,
            )
        elif self.multi_label:
            from .labelers.multilabel import as_multi_labeler

            labeler = as_multi_labeler(labeler)
        try:
            return engine.prelabel(
                self, labeler, limit=limit, progress=progress, retry_failed=retry_failed
            )
        finally:
            if owned:
                labeler.close()

    def calibrate(self, **options: Any) -> Calibrated:
        """Fit the calibrator on gold items and choose the threshold (see `workflows.calibrate`;
        multi-label projects: one calibrator per label, `workflows.multilabel`)."""
        if self.multi_label:
            from .workflows import multilabel

            return multilabel.calibrate(self, **options)
        from .workflows.calibrate import calibrate

        return calibrate(self, **options)

    def learn(self, **options: Any) -> Learned | MultiLabelLearned:
        """Train the student and the stack on trusted labels; the best predictor becomes active
        and calibration and routing are refreshed (see `workflows.learn`; multi-label projects:
        the one-vs-rest student stacked per label, `workflows.multilabel_learn`)."""
        if self.multi_label:
            from .workflows.multilabel_learn import learn as learn_sets

            return learn_sets(self, **options)
        from .workflows.learn import learn

        return learn(self, **options)

    def select(self, strategy: str, k: int, **options: Any) -> Selection | MultiLabelSelection:
        """Queue the `k` items whose human label should help most (see `workflows.select`;
        multi-label projects: `workflows.multilabel.select`)."""
        if self.multi_label:
            from .workflows import multilabel

            return multilabel.select(self, strategy, k, **options)
        from .workflows.select import select

        return select(self, strategy, k, **options)

    def agreement(self, **options: Any) -> AgreementReport | MultiLabelAgreement:
        """Agreement between annotators and LLM labelers (see `workflows.agreement`;
        multi-label projects: MASI alpha and per-label kappa, `workflows.multilabel`)."""
        if self.multi_label:
            from .workflows import multilabel

            return multilabel.agreement(self, **options)
        from .workflows.agreement import agreement

        return agreement(self, **options)

    def label_issues(self, **options: Any) -> LabelIssues:
        """Likely-mislabeled items, queued for a second look (see `workflows.agreement`;
        multi-label projects: suspect label decisions, `workflows.multilabel`)."""
        if self.multi_label:
            from .workflows import multilabel

            return multilabel.label_issues(self, **options)
        from .workflows.agreement import label_issues

        return label_issues(self, **options)

    # ----------------------------------------------------------------- routing
    def route(
        self,
        threshold: float | None = None,
        *,
        audit_rate: float | None = None,
        trust_labeler: bool = False,
    ) -> Routing | MultiLabelRouting:
        """Auto-accept confident predictions; queue everything else without a label for review.

        With an audit rate, that share of the newly auto-accepted items also goes to an audit
        queue, so that the accuracy of auto-accepted labels keeps being measured. When
        calibration found the active labeler no better than the majority label, or its
        confidences unable to rank, nothing is auto-accepted unless `trust_labeler`.
        On a multi-label project an item is auto-accepted when every label decision on it is
        confident; the others go to review with their uncertain labels (`workflows.multilabel`).
        """
        if self.multi_label:
            from .workflows import multilabel

            return multilabel.route(self, threshold)
        settings = self.settings
        threshold = self._routing_threshold(settings, threshold, audit_rate)
        label_thresholds = settings.get("label_thresholds") or {}
        distrusted = self._distrusted_labeler() if not trust_labeler else []
        with self.store.session() as session:
            if distrusted:  # no confidence reaches it: everything goes to review
                route_items(session, self.id, 2.0, {})
            else:
                route_items(session, self.id, threshold, label_thresholds)
            waiting.settle(session.connection(), self.id)  # tasks came and went
        if threshold != settings.get("threshold") or not settings.get("routed"):
            self.update_settings(threshold=threshold, routed=True)
        audited = queues.sample_audit(self, random_state=int(settings.get("seed", 0)))
        queues.apply_overlap(self)
        consensus = self.resolve()
        counts = read_state_counts(engine_reader(self.store.engine), self.id)
        self_reported = self._self_reported_routing()
        self_reported["warnings"] += [
            f"the labeler is not worth routing on ({reason}): every item goes to review; "
            "`route --trust-labeler` routes on it anyway"
            for reason in distrusted
        ]
        return Routing(
            threshold=threshold,
            label_thresholds=label_thresholds or None,
            auto_accepted=counts[ItemState.AUTO_ACCEPTED],
            in_review=counts[ItemState.IN_REVIEW],
            human_labeled=counts[ItemState.HUMAN_LABELED],
            unresolved=counts[ItemState.UNRESOLVED],
            audit_queued=audited,
            labeler_distrusted=bool(distrusted),
            consensus=consensus,
            **self_reported,
        )

    def _routing_threshold(
        self, settings: dict[str, Any], threshold: float | None, audit_rate: float | None
    ) -> float:
        """The threshold `route` applies (the stored one unless given), both checked; a given
        audit rate is stored first (bad input changes nothing)."""
        if threshold is None:
            threshold = float(settings.get("threshold", routing.DEFAULT_THRESHOLD))
        else:
            threshold = queues.Bounds(0.0, 1.0).check("threshold", threshold)
        if audit_rate is not None:
            audit_rate = float(queues.check_setting("audit_rate", audit_rate))
            self.update_settings(
                review={**(settings.get("review") or {}), "audit_rate": audit_rate}
            )
        return threshold

    def _distrusted_labeler(self) -> list[str]:
        """Why calibration found the active labeler not worth routing on (empty: it is)."""
        check = self.settings.get("labeler_check") or {}
        active = self.active_predictor()
        if active is None or (check.get("model"), check.get("prompt_version")) != active:
            return []
        return list(check.get("reasons") or [])

    def resolve(self, final_label: str | None = None) -> Consensus:
        """Refit the model of annotator quality on every answer and recompute the final labels of
        the items people answered; `final_label` (weighted or majority) changes the setting
        first (see `workflows.consensus`). `route` and `learn` run it too."""
        from .workflows import consensus

        if final_label is not None:
            return consensus.set_final_label(self, final_label)
        return consensus.refit(self)

    def _self_reported_routing(self) -> dict[str, Any]:
        """Routed items whose confidence is a number the model wrote, not calibrated: they are
        counted and named in a warning, because such a number can say anything (an item can even
        dictate it)."""
        with self.store.session() as session:
            counts = rows_of.self_reported_counts(session, self.id)
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

    def audit_estimate(self, confidence_level: float = 0.95) -> AuditEstimate | None:
        """Accuracy of auto-accepted labels measured on audited items, with an interval; None
        before any audit."""
        found = read_audit_estimate(engine_reader(self.store.engine), self.id, confidence_level)
        return None if found is None else AuditEstimate(**found)

    # ----------------------------------------------------------------- annotations
    def annotator_id(self, name: str, *, create: bool = True, role: str = Role.ANNOTATOR) -> int:
        with self.store.session() as session:
            found = account_rows.annotator_id_named(session, self.id, name)
            if found is not None:
                return found
            if not create:
                raise InputError(f"no annotator named {name!r}")
            return account_rows.add_annotator(session, self.id, check_user_name(name), role=role).id

    def item_id(self, uid: str) -> int:
        with self.store.session() as session:
            found = rows_of.item_id_of(session, self.id, uid)
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
        labels: Sequence[str] | None = None,
    ) -> answers.Answer | SetAnswer:
        """Record a person's answer on an item and update its final label.

        `accept` takes the suggestion's label; `correct` and `label` need a label; `reject`
        says the suggestion is wrong without giving a label; `skip` gives nothing. On a
        multi-label project the answer is a set, `labels` (see `labelloop.review.labelsets`).

        A trusted path (Python, CLI, Label Studio): no lease is needed. The answer counts for the
        item's task in `queue`, or without one for the open task they hold or the item's first
        (see `labelloop.review.answers.annotate`).
        """
        answers.check_action(action)
        item_id = item if isinstance(item, int) else self.item_id(item)
        annotator_id = self.annotator_id(annotator) if isinstance(annotator, str) else annotator
        if self.multi_label or labels is not None:
            if not self.multi_label or label is not None:
                raise InputError("give `labels` (a list) on multi-label projects, else `label`")
            given_set = SetAnswerIn(action, labels, annotator_id, time_spent_s, source, external_id)
            return annotate_set(self, item_id, given_set, queue=queue)
        given = answers.AnswerIn(action, label, annotator_id, time_spent_s, source, external_id)
        return answers.annotate(self, item_id, given, queue=queue, shown_as=item)

    def undo_annotation(self, annotation_id: int) -> answers.Answer:
        """Withdraw an answer (the review UI's Backspace) and restore the item's state."""
        return answers.unannotate(self, annotation_id)

    # ----------------------------------------------------------------- stats / export
    def stats(self) -> Stats:
        """Counts per state, review rate, the LLM's accuracy on gold (multi-label: the share
        of gold items whose suggested set is exactly right), and the items reviewers settled and
        those waiting for one."""
        figures = read_stats(engine_reader(self.store.engine), self.id)
        if figures["adjudication_waiting"] is None:  # left unsettled by the upgrade to it
            with transaction(self) as conn:
                waiting.settle(conn, self.id, unsettled_items(conn, self.id))
            figures = read_stats(engine_reader(self.store.engine), self.id)
        return Stats(**figures)

    def iter_export_rows(self, include: str | None = "meta") -> Iterator[dict[str, Any]]:
        """One row per item with its final label and where it came from (see `export`)."""
        from .data.formats.provenance import iter_provenance_rows

        return iter_provenance_rows(self, include)

    # --- review: queues, accounts, dashboard (thin delegates to `labelloop.review`)
    def add_user(
        self, name: str, *, role: str = Role.ANNOTATOR, password: str | None = None
    ) -> Account:
        """Create a login for the review server (admin or annotator)."""
        return accounts.add_user(self, name, role=role, password=password)

    def create_token(self, name: str, *, expires: str | None = None) -> str:
        """A new API token for a user, shown once (only its hash is stored); `expires`: '30d'."""
        return accounts.create_token(self, name, expires=expires)

    def enqueue(
        self, item_ids: Sequence[int], *, queue: str = Queue.ACTIVE, priorities: Any = None
    ) -> int:
        """Queue items (store ids) for people, e.g. active-learning selections."""
        return queues.enqueue(self, item_ids, queue=queue, priorities=priorities)

    def sample_audit(self, rate: float | None = None, random_state: Any = None) -> int:
        """Queue a random share of auto-accepted items for audit."""
        return queues.sample_audit(self, rate, random_state)

    def set_queue_settings(self, **values: Any) -> queues.QueueSettings:
        """Overlap, gold rate, audit rate and lease length of the review queues."""
        return queues.set_queue_settings(self, **values)

    def next_item(self, annotator: str | int, *, exclude: Sequence[int] = ()) -> Any:
        """An annotator's next item to review (leased to them), or None when done."""
        annotator_id = self.annotator_id(annotator) if isinstance(annotator, str) else annotator
        return queues.next_item(self, annotator_id, exclude=exclude)

    def dashboard(self) -> overview.LearningDashboard:
        """Progress, review rate, auto-accepted accuracy, agreement and per-annotator work, and
        the calibration plots (redrawn first when they do not show the calibration in force)."""
        from .workflows.calibrate import current_plots
        from .workflows.consensus import annotator_quality
        from .workflows.learn import predictor_title

        calibration_plots = current_plots(self)  # first: it may draw files the board lists
        board = overview.dashboard(self)
        return overview.LearningDashboard(
            board,
            calibration_plots,
            annotator_quality(self),
            predictor_title(board.stats.active_predictor),
        )

    # --- exchange: tool formats (thin delegates to `labelloop.workflows.exchange`)
    def export(
        self, out: str | Path, fmt: str = "jsonl", *, include: str | Sequence[str] | None = None
    ) -> Exported:
        """Write every item with its label's provenance: jsonl, csv, parquet, labelstudio,
        argilla, prodigy or hf (see `labelloop.data.formats`)."""
        from .workflows.exchange import export_project

        return export_project(self, out, fmt, include=include)

    def import_from(self, path: str | Path, fmt: str, **options: Any) -> Imported:
        """Import another tool's export (labelstudio, argilla, prodigy, hf) or a labelloop
        export (labelloop) with its predictions and answers, in one transaction."""
        from .workflows.exchange import import_project

        return import_project(self, path, fmt, **options)
