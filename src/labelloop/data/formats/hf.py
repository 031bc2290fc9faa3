"""Hugging Face `datasets`: a dataset folder written by `save_to_disk`, read by `load_from_disk`.

Columns are labelloop's export rows with explicit types, so an empty column never loses its
type; label→probability maps and free-form metadata are JSON text (their keys vary by project).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import InputError
from ._optional import require
from .provenance import is_provenance_row, item_from_row, iter_provenance_rows, parse_include
from .records import ItemIn, LabelPolicy, Where

if TYPE_CHECKING:
    from ...project import Project

CHUNK = 50_000
STRINGS = ("id", "text", "state", "label", "label_source", "llm_label")
MORE_STRINGS = (
    "labeler_label",
    "split",
    "gold_label",
    "model",
    "prompt_version",
    "reasoning",
    "probs",
    "label_posterior",
    "adjudication",
)
TIMES = ("predicted_at", "labeled_at")
ANSWER_STRINGS = ("annotator", "label", "action", "suggested_label", "source", "external_id")
PREDICTION_STRINGS = (
    "model",
    "prompt_version",
    "label",
    "calibrated_label",
    "probs",
    "reasoning",
    "created_at",
)


def features_for(include: frozenset[str]) -> Any:
    """The columns' types for rows carrying `include`."""
    datasets = require("datasets")
    text, number = datasets.Value("string"), datasets.Value("float64")
    features: dict[str, Any] = {name: text for name in STRINGS}
    features |= {"confidence": number, "calibrated_confidence": number}
    features |= {name: text for name in (*MORE_STRINGS, *TIMES)}
    features["annotators"] = datasets.Sequence(text)
    if "annotations" in include:
        answer = {name: text for name in (*ANSWER_STRINGS, "queue", "created_at")}
        features["annotations"] = [{**answer, "time_spent_s": number}]
    if "predictions" in include:
        prediction = {name: text for name in PREDICTION_STRINGS}
        features["predictions"] = [
            {**prediction, "confidence": number, "calibrated_confidence": number}
        ]
    if "meta" in include:
        features["meta"] = text
    return datasets.Features(features)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


def flatten(row: dict[str, Any]) -> dict[str, Any]:
    """A row with its maps as JSON text (their keys vary by project)."""
    row = {
        **row,
        "probs": _json(row.get("probs")),
        "label_posterior": _json(row.get("label_posterior")),
        "adjudication": _json(row.get("adjudication")),
    }
    if "meta" in row:
        row["meta"] = _json(row["meta"])
    if "predictions" in row:
        row["predictions"] = [{**p, "probs": _json(p.get("probs"))} for p in row["predictions"]]
    return row


def export_hf(project: Project, out: Path, include: Any) -> int:
    """Save the rows as a `datasets.Dataset` folder (replaced atomically when it exists)."""
    return save_rows(project, out, include, features_for, flatten)


def save_rows(
    project: Project,
    out: Path,
    include: Any,
    features_of: Callable[[frozenset[str]], Any],
    encode: Callable[[dict[str, Any]], dict[str, Any]],
) -> int:
    """Save the project's rows, each `encode`d, with the types `features_of` gives."""
    datasets = require("datasets")
    wanted = parse_include(include)
    features = features_of(wanted)
    parts, batch, count = [], [], 0
    for row in iter_provenance_rows(project, wanted):
        batch.append(encode(row))
        count += 1
        if len(batch) >= CHUNK:
            parts.append(datasets.Dataset.from_list(batch, features=features))
            batch = []
    if batch or not parts:
        parts.append(datasets.Dataset.from_list(batch, features=features))
    dataset = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    dataset.save_to_disk(str(partial))
    if out.exists():
        shutil.rmtree(out)
    partial.replace(out)
    return count


def load(path: Path) -> Any:
    """The one split of a dataset folder."""
    datasets = require("datasets")
    try:
        loaded = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise InputError(f"not a Hugging Face dataset folder ({exc})", file=str(path)) from exc
    if isinstance(loaded, datasets.DatasetDict):
        if len(loaded) != 1:
            raise InputError(
                f"the dataset has several splits ({', '.join(loaded)}); save one split",
                file=str(path),
            )
        loaded = next(iter(loaded.values()))
    return loaded


def _class_names(dataset: Any, policy: LabelPolicy) -> dict[str, list[str]]:
    """The columns whose class ids read back as names: `label` (a `ClassLabel`), or (sets)
    every `Sequence(ClassLabel)` column."""
    if not policy.sets:
        feature = dataset.features.get("label")
        return {"label": feature.names} if hasattr(feature, "names") else {}
    return {
        name: feature.feature.names
        for name, feature in dataset.features.items()
        if hasattr(getattr(feature, "feature", None), "names")
    }


def _decoded(row: dict[str, Any], names: dict[str, list[str]], policy: LabelPolicy) -> dict:
    """A row with its class ids as label names (a negative id, or None, is no label)."""
    decoded = dict(row)
    for name, classes in names.items():
        value = decoded.get(name)
        if value is None:
            continue
        if policy.sets:
            decoded[name] = [classes[k] for k in value]
        elif value >= 0:
            decoded[name] = classes[value]
    return decoded


def read_hf(project: Project, path: Path, *, text_col: str = "text") -> Iterator[ItemIn]:
    """A labelloop export, or any dataset with a text column (a `label` column, or on a
    multi-label project a `labels` column of `Sequence(ClassLabel)`, becomes `source_label` in
    the item's metadata, as in a plain import)."""
    policy = LabelPolicy.of(project)
    dataset = load(path)
    names = _class_names(dataset, policy)
    for number, row in enumerate(dataset, start=1):
        where = Where(str(path), record=number)
        decoded = _decoded(row, names, policy) if policy.sets or not is_provenance_row(row) else row
        if is_provenance_row(decoded):
            yield item_from_row(decoded, where)
            continue
        yield plain_item(decoded, where, text_col, label_col="labels" if policy.sets else "label")


def plain_item(
    row: dict[str, Any], where: Where, text_col: str, label_col: str = "label"
) -> ItemIn:
    """A row of a dataset not made by labelloop: its label column (already decoded to names)
    becomes `source_label` in the item's metadata, as in a plain import."""
    from ..importer import text_hash

    text = row.get(text_col)
    if not isinstance(text, str):
        raise where.error(f"no text in the column {text_col!r}", text_col)
    meta = {k: v for k, v in row.items() if k not in (text_col, "id", label_col)}
    if row.get(label_col) is not None:
        meta["source_label"] = row[label_col]
    uid = row.get("id")
    return ItemIn(
        uid=str(uid) if uid not in (None, "") else text_hash(text)[:20],
        text=text,
        where=where,
        meta=json.loads(json.dumps(meta, default=str)) or None,
    )
