"""Formats of other labeling tools, and labelloop's own exports with provenance.

`EXPORTERS[name](project, out, include) -> rows written` and
`IMPORTERS[name](project, path, **options) -> records` are the registry that
`labelloop.workflows.exchange` (and so the CLI) uses:

| name | export | import |
| --- | --- | --- |
| `jsonl`, `csv`, `parquet` | provenance rows | via `labelloop` (by extension) |
| `labelloop` | — | a labelloop export in JSONL, CSV or Parquet |
| `labelstudio` | JSON tasks, predictions, annotations; label config | also Label Studio's export |
| `argilla` | Argilla v2 records, JSONL of `rg.Record.to_dict()` (+ settings) | the same |
| `prodigy` | Prodigy JSONL (`text`, `label`, `answer`, `meta`) | the same, or Prodigy's own |
| `hf` | a `datasets` folder (`save_to_disk`) | a `datasets` folder |

Multi-label projects use the tools' multi-label shapes: one reader per tool reads labels or
sets as the project's `records.LabelPolicy` says; the exporters of sets are
`formats.multilabel`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from ...multilabel.sets import MULTI_LABEL
from . import multilabel
from .argilla import export_argilla, read_argilla
from .hf import export_hf, read_hf
from .labelstudio import export_labelstudio, read_labelstudio
from .prodigy import export_prodigy, read_prodigy
from .provenance import BASE_KEYS, INCLUDE_CHOICES, iter_provenance_rows, parse_include
from .records import ItemIn
from .tabular import exporter, read_labelloop

Exporter = Callable[[Any, Path, Any], int]
Importer = Callable[..., Iterable[ItemIn]]

SINGLE_EXPORTERS: dict[str, Exporter] = {
    "jsonl": exporter("jsonl"),
    "csv": exporter("csv"),
    "parquet": exporter("parquet"),
    "labelstudio": export_labelstudio,
    "argilla": export_argilla,
    "prodigy": export_prodigy,
    "hf": export_hf,
}
IMPORTERS: dict[str, Importer] = {
    "labelloop": read_labelloop,
    "labelstudio": read_labelstudio,
    "argilla": read_argilla,
    "prodigy": read_prodigy,
    "hf": read_hf,
}
#: The tool formats multi-label projects export (`formats.multilabel`); labelloop's own rows are
#: the same for both kinds of project.
MULTI_EXPORTERS: dict[str, Exporter] = {
    "labelstudio": multilabel.export_labelstudio,
    "argilla": multilabel.export_argilla,
    "prodigy": multilabel.export_prodigy,
    "hf": multilabel.export_hf,
}


def _by_project(single: Callable[..., Any], multi: Callable[..., Any] | None) -> Any:
    """The format's writer for the project's kind (single- or multi-label)."""
    if multi is None:
        return single

    def either(project: Any, *args: Any, **options: Any) -> Any:
        chosen = multi if project.settings.get(MULTI_LABEL) else single
        return chosen(project, *args, **options)

    either.__name__ = single.__name__
    return either


EXPORTERS: dict[str, Exporter] = {
    name: _by_project(fn, MULTI_EXPORTERS.get(name)) for name, fn in SINGLE_EXPORTERS.items()
}


def format_names(registry: Mapping[str, Any]) -> str:
    return ", ".join(registry)


__all__ = [
    "BASE_KEYS",
    "EXPORTERS",
    "IMPORTERS",
    "INCLUDE_CHOICES",
    "format_names",
    "iter_provenance_rows",
    "parse_include",
]
