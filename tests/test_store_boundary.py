"""The repository boundary (docs/architecture.md): only `labelloop.store` imports SQLAlchemy.

Services, formats and engines ask the store's named functions for rows; an import of the
database library anywhere else, even one made only for type annotations, is a query (or a
session type) written outside the repository.
"""

from __future__ import annotations

import sys
from pathlib import Path

import grimp

SRC = Path(__file__).resolve().parents[1] / "src"


def _importers_of(package: str) -> set[str]:
    sys.path.insert(0, str(SRC))
    try:
        graph = grimp.build_graph(
            "labelloop",
            include_external_packages=True,
            exclude_type_checking_imports=False,
            cache_dir=None,
        )
    finally:
        sys.path.remove(str(SRC))
    return set(graph.find_modules_that_directly_import(package))


def test_only_the_store_imports_sqlalchemy() -> None:
    importers = _importers_of("sqlalchemy")
    assert "labelloop.store.items" in importers  # the check sees the store's own imports
    outside = sorted(m for m in importers if not m.startswith("labelloop.store"))
    assert outside == []
