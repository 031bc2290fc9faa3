"""The demo's closing figures: what people's reviews add to the auto-accepted labels."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from labelloop.demo import _reference_accuracy


def _rows(*rows: tuple[str, str, str | None]) -> SimpleNamespace:
    """A stand-in project whose export rows are (state, label, reference label)."""
    export = [
        {"state": state, "label": label, "meta": {"reference_label": ref} if ref else {}}
        for state, label, ref in rows
    ]
    return SimpleNamespace(iter_export_rows=lambda: iter(export))


def test_the_finished_dataset_counts_reviewed_items_as_right_and_as_effort() -> None:
    project = _rows(
        ("auto_accepted", "positive", "positive"),
        ("auto_accepted", "positive", "negative"),
        ("auto_accepted", "negative", "negative"),
        ("in_review", "positive", "negative"),
        ("human_labeled", "negative", None),  # a gold item
    )
    result = _reference_accuracy(project)  # type: ignore[arg-type]
    assert result["auto_accepted"] == 3
    assert result["auto_accepted_accuracy"] == pytest.approx(2 / 3)
    assert result["items"] == 5
    assert result["human_effort"] == pytest.approx(2 / 5)
    assert result["finished_accuracy"] == pytest.approx(4 / 5)


def test_nothing_auto_accepted_means_all_human_and_no_auto_accuracy() -> None:
    project = _rows(("in_review", "positive", "positive"), ("human_labeled", "negative", None))
    result = _reference_accuracy(project)  # type: ignore[arg-type]
    assert result["auto_accepted_accuracy"] is None
    assert result["human_effort"] == 1.0
    assert result["finished_accuracy"] == 1.0
