"""What an import brings in, whatever tool it came from: items with their predictions and
annotations, plus where each one was read (for error messages).

Every reader (Label Studio, Argilla, Prodigy, Hugging Face, labelloop's own exports) turns its
file into these records; one ingest step validates and writes them in a single transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ...errors import InputError
from ...vocabulary import Action

HUMAN_ACTIONS = tuple(Action)


@dataclass(frozen=True)
class Where:
    """A place in an input file: the file, a line or a record number, and a field."""

    file: str
    line: int | None = None
    record: int | None = None

    def error(self, message: str, field: str | None = None, value: Any = None) -> InputError:
        if self.record is not None:
            message = f"record {self.record}: {message}"
        return InputError(message, file=self.file, line=self.line, column=field, value=value)


@dataclass
class PredictionIn:
    model: str
    prompt_version: str
    label: str | None
    confidence: float | None = None
    calibrated_confidence: float | None = None
    calibrated_label: str | None = None
    probs: dict[str, float] | None = None
    reasoning: str | None = None
    created_at: datetime | None = None
    active: bool = False  # the prediction that routing trusts for this item
    labels: list[str] | None = None  # multi-label projects: the predicted set


@dataclass
class AnnotationIn:
    annotator: str | None
    action: str
    label: str | None
    source: str
    external_id: str | None = None
    suggested_label: str | None = None
    time_spent_s: float | None = None
    created_at: datetime | None = None
    queue: str | None = None
    labels: list[str] | None = None  # multi-label projects: the set given


@dataclass
class FinalIn:
    """The item's recorded outcome, restored as is (labelloop's own exports carry it)."""

    state: str
    label: str | None
    source: str | None
    posterior: dict[str, Any] | None = None  # of the weighted consensus, where it set the label
    labels: list[str] | None = None  # multi-label projects: the final set


@dataclass
class DecisionIn:
    """A reviewer's decision as exported (`adjudication` in labelloop's rows), restored on
    import so that the item's label stays the reviewer's through later answers."""

    label: str | None
    reviewer: str | None = None
    note: str | None = None
    reasons: list[str] = field(default_factory=list)
    previous_label: str | None = None
    previous_source: str | None = None
    decided_at: datetime | None = None
    labels: list[str] | None = None  # a multi-label item's decision: the set
    previous_labels: list[str] | None = None


@dataclass
class ItemIn:
    uid: str
    text: str
    where: Where
    split: str = "pool"
    gold_label: str | None = None
    meta: dict[str, Any] | None = None
    predictions: list[PredictionIn] = field(default_factory=list)
    annotations: list[AnnotationIn] = field(default_factory=list)
    final: FinalIn | None = None
    decision: DecisionIn | None = None
    gold_labels: list[str] | None = None  # multi-label projects: the gold set


def action_for(label: str | None, suggestion: str | None) -> Action:
    """The labelloop action a person's label amounts to, given the suggestion they saw."""
    if label is None:
        return Action.SKIP
    if suggestion is None:
        return Action.LABEL
    return Action.ACCEPT if label == suggestion else Action.CORRECT


def set_action_for(chosen: list[str] | None, suggested: list[str] | None) -> Action:
    """The labelloop action a person's set amounts to, given the suggested set."""
    if chosen is None:
        return Action.SKIP
    if suggested is None:
        return Action.LABEL
    return Action.ACCEPT if set(chosen) == set(suggested) else Action.CORRECT


Chosen = str | list[str] | None


@dataclass(frozen=True)
class LabelPolicy:
    """What a choice is on the project a tool's file is read into: one label (single-label
    projects) or a set of labels (multi-label ones, `sets`). Each tool has one reader; it finds
    what was chosen in the tool's own fields and this says which record fields it fills."""

    sets: bool = False

    @classmethod
    def of(cls, project: Any) -> LabelPolicy:
        """The policy of a project (its `settings` say whether it is multi-label)."""
        from ...multilabel.sets import MULTI_LABEL

        return cls(bool((project.settings or {}).get(MULTI_LABEL)))

    def names(self, value: Any, where: Where, field_name: str) -> list[str]:
        """A set as the tool wrote it: a list of label names, else bad input."""
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise where.error("a label set must be a list of label names", field_name, value)
        return list(value)

    def prediction(self, chosen: Chosen) -> dict[str, Any]:
        """A prediction's `label` and `labels` fields."""
        if self.sets:
            return {"label": None, "labels": chosen}
        return {"label": chosen, "labels": None}

    def answer(self, chosen: Chosen, suggested: Chosen) -> dict[str, Any]:
        """A person's answer's `action`, `label`, `labels` and `suggested_label` fields, given
        what was suggested (None: no set given is a skip)."""
        if self.sets:
            assert not isinstance(chosen, str) and not isinstance(suggested, str)
            return {"action": set_action_for(chosen, suggested), "label": None, "labels": chosen}
        assert not isinstance(chosen, list) and not isinstance(suggested, list)
        return {
            "action": action_for(chosen, suggested),
            "label": chosen,
            "suggested_label": suggested,
        }

    def gold(self, chosen: Chosen) -> dict[str, Any]:
        """An item's `gold_label` or `gold_labels` field."""
        return {"gold_labels": chosen} if self.sets else {"gold_label": chosen}

    def suggestion(self, predictions: list[PredictionIn]) -> Chosen:
        """What people were shown: the first (active) prediction's label or set."""
        if not predictions:
            return None
        return predictions[0].labels if self.sets else predictions[0].label


def as_time(value: Any, where: Where, field_name: str) -> datetime | None:
    """An ISO 8601 time (or Unix seconds) as an aware datetime; naive times are UTC."""
    if value is None or value == "":
        return None
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return datetime.fromtimestamp(float(value), UTC)
        if isinstance(value, datetime):
            parsed = value
        else:
            parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError) as exc:
        raise where.error("not a time (expected ISO 8601)", field_name, value) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def iso(value: datetime | None) -> str | None:
    """A stored time as ISO 8601 in UTC (SQLite hands times back without their zone)."""
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def as_float(value: Any, where: Where, field_name: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise where.error("not a number", field_name, value) from exc
    if number != number:  # NaN means missing
        return None
    return number


def listed(record: dict[str, Any], key: str, where: Where) -> list[Any]:
    """record[key] where it must be a list when given (missing or null: an empty one)."""
    value = record.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise where.error(f"the field {key!r} must be a list", key, value)
    return value


def need(record: dict[str, Any], key: str, where: Where, kind: type | tuple = str) -> Any:
    """record[key], which must be present and of `kind`."""
    if key not in record or record[key] is None:
        raise where.error(f"the field {key!r} is missing", key)
    value = record[key]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise where.error(f"the field {key!r} must be a {names}", key, value)
    return value
