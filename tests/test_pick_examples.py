"""Which gold items `prelabel` shows an LLM as few-shot examples (`pick_examples`)."""

from __future__ import annotations

from labelloop.workflows.prelabel import pick_examples


def _rows(label: str, lengths: list[int], first_id: int) -> list[tuple[int, str, str]]:
    return [(first_id + k, "x" * n, label) for k, n in enumerate(lengths)]


def test_medium_length_examples_are_shown_labels_interleaved():
    rows = _rows("a", [5, 30, 100, 200, 300, 900], 0) + _rows("b", [50, 60, 70], 10)
    picked = pick_examples(rows, ["a", "b"], 2)
    assert [label for _, _, label in picked] == ["a", "b", "a", "b"]
    assert [len(text) for _, text, label in picked if label == "a"] == [100, 200]
    assert all(len(text) >= 20 for _, text, _ in picked)  # too short to teach anything


def test_a_label_whose_texts_are_all_long_gets_its_shortest_ones():
    """Articles: every text is longer than the medium range; the prompt shows their start."""
    rows = _rows("business", [2400, 900, 1500], 0) + _rows("sport", [800, 3000], 10)
    picked = pick_examples(rows, ["business", "sport"], 2)
    assert sorted(len(text) for _, text, label in picked if label == "business") == [900, 1500]
    assert sorted(len(text) for _, text, label in picked if label == "sport") == [800, 3000]


def test_long_texts_only_fill_what_medium_ones_leave():
    rows = _rows("a", [100, 5000], 0)
    assert [len(t) for _, t, _ in pick_examples(rows, ["a"], 1)] == [100]
    assert [len(t) for _, t, _ in pick_examples(rows, ["a"], 2)] == [100, 5000]
    assert pick_examples(rows, ["a", "b"], 0) == []
