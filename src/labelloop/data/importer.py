"""Turn raw records into validated items: column mapping, ids, labels, size bounds.

Validation happens before anything is written, so a bad row rejects the whole file.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from ..errors import InputError
from ..multilabel.sets import parse_label_set
from .readers import Record

MAX_TEXT_CHARS = 1_000_000  # larger texts are almost always a parsing mistake
MAX_ID_CHARS = 200
#: The column whose values are the items' ids when the file has one and no other is named.
DEFAULT_ID_COL = "id"


def text_hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def hash_id(digest: str) -> str:
    """The id of an item whose file gave none: the start of its text's hash."""
    return digest[:20]


@dataclass(frozen=True)
class NewItem:
    uid: str
    text: str
    text_hash: str
    line: int
    gold_label: str | None = None
    meta: dict[str, Any] | None = None
    gold_labels: list[str] | None = None  # multi-label projects: the gold set


@dataclass
class Mapping:
    """Which columns hold the text, the label and the id.

    Ids come from `id_col`, else from an `id` column when the file has one, so that a file's
    own ids stay the items' ids; `hash_ids` gives content hashes instead (the `id` column, if
    any, is then kept in `meta`).
    """

    text_col: str = "text"
    label_col: str | None = None
    id_col: str | None = None
    meta_cols: Sequence[str] | None = None  # None: every other column
    hash_ids: bool = False

    def __post_init__(self) -> None:
        if self.hash_ids and self.id_col is not None:
            raise InputError(
                f"ids come either from a column (--id-col {self.id_col}) or from content "
                "hashes (--hash-ids), not both"
            )

    def id_column(self, record: dict[str, Any]) -> str | None:
        """The column the ids come from for a file whose first record is `record` (None:
        content hashes)."""
        if self.hash_ids:
            return None
        if self.id_col is None and DEFAULT_ID_COL in record and self.text_col != DEFAULT_ID_COL:
            return DEFAULT_ID_COL
        return self.id_col


@dataclass
class Prepared:
    items: list[NewItem] = field(default_factory=list)
    duplicates_in_file: int = 0
    id_col: str | None = None  # the column the ids came from; None: content hashes


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def canonical_labels(labels: Sequence[str]) -> dict[str, str]:
    """Map case- and space-insensitive spellings to the project's own spelling."""
    return {" ".join(label.split()).casefold(): label for label in labels}


def match_label(value: str, canonical: dict[str, str]) -> str | None:
    return canonical.get(" ".join(str(value).split()).casefold())


def _jsonable(value: Any) -> Any:
    if _is_missing(value):
        return None
    if isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


def _bad_text(text: Any, source: str, line: int, column: str) -> NoReturn:
    """Raise the InputError that explains what is wrong with a text value."""
    if _is_missing(text):
        raise InputError("the text is missing", file=source, line=line, column=column)
    if not isinstance(text, str):
        raise InputError(
            f"the text is a {type(text).__name__}, not text",
            file=source,
            line=line,
            column=column,
            value=text,
        )
    if len(text) > MAX_TEXT_CHARS:
        raise InputError(
            f"the text has {len(text):,} characters, more than the limit of {MAX_TEXT_CHARS:,}",
            file=source,
            line=line,
            column=column,
        )
    if "\x00" in text:
        raise InputError("the text holds a NUL character", file=source, line=line, column=column)
    raise InputError("the text is empty", file=source, line=line, column=column)


def _id_hint(mapping: Mapping, id_col: str | None) -> str:
    """Where the ids came from, when the user did not say: how to choose otherwise."""
    if mapping.id_col is not None or id_col is None:
        return ""
    return (
        f" (ids come from the {id_col!r} column; --id-col names another, --hash-ids uses "
        "content hashes)"
    )


def _item_id(record: dict[str, Any], id_col: str, source: str, line: int, hint: str = "") -> str:
    raw = record.get(id_col)
    if (
        type(raw) is str
        and 0 < len(raw) <= MAX_ID_CHARS
        and not raw[0].isspace()
        and not raw[-1].isspace()
    ):
        return raw  # the common case, checked cheaply
    if _is_missing(raw) or str(raw).strip() == "":
        raise InputError("the id is empty" + hint, file=source, line=line, column=id_col)
    uid = str(raw).strip()
    if len(uid) > MAX_ID_CHARS:
        raise InputError(
            f"the id is longer than {MAX_ID_CHARS} characters",
            file=source,
            line=line,
            column=id_col,
            value=uid,
        )
    return uid


def _gold_label(
    value: Any,
    canonical: dict[str, str],
    labels: Sequence[str],
    split: str,
    source: str,
    line: int,
    column: str,
) -> str | None:
    if _is_missing(value) or str(value).strip() == "":
        if split == "gold":
            raise InputError("a gold item needs a label", file=source, line=line, column=column)
        return None
    label = canonical.get(value) if type(value) is str else None
    if label is None:
        label = match_label(str(value), canonical)
    if label is None:
        raise InputError(
            f"label not in the label set ({', '.join(labels)})",
            file=source,
            line=line,
            column=column,
            value=value,
        )
    return label


@dataclass(frozen=True)
class LabelSets:
    """How a multi-label project reads a label column: any subset of `labels` (see
    `labelloop.multilabel.sets`), the empty set only when `allow_empty`."""

    labels: Sequence[str]
    allow_empty: bool = False

    def read(self, value: Any, split: str, source: str, line: int, column: str) -> Any:
        """The set in one cell: None when missing (bad on gold), else a list in label order.

        An empty cell is a missing set in the pool and, where empty sets are allowed, the empty
        set on gold; `[]` is always the empty set."""
        if (isinstance(value, str) and not value.strip()) or _is_missing(value):
            if split == "gold" and self.allow_empty:
                return []
            value = None
        try:
            chosen = parse_label_set(value, self.labels, allow_empty=self.allow_empty)
        except InputError as exc:
            raise InputError(str(exc), file=source, line=line, column=column) from exc
        if chosen is None and split == "gold":
            raise InputError("a gold item needs its labels", file=source, line=line, column=column)
        return chosen


def prepare_items(
    records: Iterable[Record],
    *,
    source: str,
    mapping: Mapping,
    labels: Sequence[str],
    split: str,
    label_sets: LabelSets | None = None,
) -> Prepared:
    """Validate records and build items; raise InputError at the first bad row.

    With `label_sets` (multi-label projects) the label column holds sets (`LabelSets`)."""
    canonical = canonical_labels(labels)
    label_col = mapping.label_col
    if split == "gold" and label_col is None:
        label_col = "label"
    prepared = Prepared()
    seen: dict[str, tuple[str, int]] = {}
    text_col, id_col = mapping.text_col, mapping.id_col
    roles: set[str | None] = set()
    hint = ""
    checked_columns = False
    for line, record in records:
        if not checked_columns:
            id_col = prepared.id_col = mapping.id_column(record)
            roles = {text_col, label_col, id_col} - {None}
            hint = _id_hint(mapping, id_col)
            for role, column in (("text", text_col), ("label", label_col), ("id", id_col)):
                if column is not None and column not in record:
                    raise InputError(
                        f"no {role} column {column!r}; columns are "
                        + ", ".join(repr(c) for c in record),
                        file=source,
                        line=line,
                    )
            checked_columns = True
        text = record.get(text_col)
        if type(text) is not str:
            _bad_text(text, source, line, text_col)
        if not text.strip() or len(text) > MAX_TEXT_CHARS or "\x00" in text:
            _bad_text(text, source, line, text_col)
        digest = text_hash(text)
        uid = (
            _item_id(record, id_col, source, line, hint) if id_col is not None else hash_id(digest)
        )
        gold: Any = None
        if label_sets is not None and label_col is not None:
            gold = label_sets.read(record.get(label_col), split, source, line, label_col)
        elif label_col is not None:
            gold = _gold_label(
                record.get(label_col), canonical, labels, split, source, line, label_col
            )
        previous = seen.get(uid)
        if previous is not None:
            if previous[0] != digest:
                raise InputError(
                    f"duplicate id {uid!r} with a different text on lines {previous[1]} and "
                    f"{line}" + hint,
                    file=source,
                    line=line,
                    column=id_col,
                )
            prepared.duplicates_in_file += 1
            continue
        seen[uid] = (digest, line)
        if mapping.meta_cols is not None:
            extra = {k: _jsonable(record.get(k)) for k in mapping.meta_cols}
        elif len(record) > len(roles):
            extra = {k: _jsonable(v) for k, v in record.items() if k not in roles}
        else:
            extra = None
        if split != "gold" and gold is not None:
            extra = {**(extra or {}), "source_label": gold}
            gold = None
        if label_sets is not None:
            prepared.items.append(NewItem(uid, text, digest, line, None, extra or None, gold))
        else:
            prepared.items.append(NewItem(uid, text, digest, line, gold, extra or None))
    return prepared
