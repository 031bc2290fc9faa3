"""What `learn` and `select` read of the labelers' stored answers: one probability row per item."""

from __future__ import annotations

import numpy as np

from labelloop.labelers import LabelResult
from labelloop.workflows.learn import llm_components, load_pool


def test_each_labeler_answer_becomes_a_normalised_row_of_its_items(make_project):
    project = make_project(labels=("a", "b", "c"))
    project.add_items([{"id": f"i{n}", "text": f"item {n}"} for n in range(6)], id_col="id")
    ids = [project.item_id(f"i{n}") for n in range(6)]
    project.save_predictions(
        "m1",
        "v1",
        [
            (ids[0], LabelResult("a", {"a": 0.5, "b": 0.25, "c": 0.25}, 0.5)),
            (ids[1], LabelResult("b", {"a": 1.0, "b": 2.0, "c": 1.0}, 0.5)),  # not summing to 1
            (ids[2], LabelResult("c", None, 0.9)),  # a bare label: a soft one-hot
            (ids[3], LabelResult("b", {"a": 0.4, "b": 0.6}, 0.6)),  # a label missing: bare
            (ids[4], LabelResult("a", {"a": 0.0, "b": 0.0, "c": 0.0}, 0.0)),  # nothing: no row
        ],
    )
    project.save_predictions("m2", "v9", [(ids[5], LabelResult("nonsense", None, 0.9))])
    pool = load_pool(project)
    got = llm_components(project, pool)
    assert list(got) == ["m1@v1", "m2@v9"]
    row = {item_id: n for n, item_id in enumerate(pool.ids)}
    m1 = got["m1@v1"]
    assert m1.shape == (6, 3)
    np.testing.assert_array_equal(m1[row[ids[0]]], [0.5, 0.25, 0.25])
    np.testing.assert_array_equal(m1[row[ids[1]]], [0.25, 0.5, 0.25])
    np.testing.assert_array_equal(m1[row[ids[2]]], [0.05, 0.05, 0.9])
    np.testing.assert_array_equal(m1[row[ids[3]]], [0.05, 0.9, 0.05])
    assert np.isnan(m1[[row[ids[4]], row[ids[5]]]]).all()
    assert np.isnan(got["m2@v9"]).all()  # a labeler whose only answer is no label


def test_calibration_reads_probabilities_only_when_every_row_agrees_with_its_label():
    from labelloop.workflows.calibrate import score_matrix

    labels = ["a", "b", "c"]
    rows = [("b", {"a": 0.2, "b": 0.5, "c": 0.3}, None), ("a", {"a": 0.4, "b": 0.4, "c": 0.2}, 1)]
    np.testing.assert_array_equal(score_matrix(rows, labels), [[0.2, 0.5, 0.3], [0.4, 0.4, 0.2]])
    assert score_matrix([], labels) is None
    tie_read_last = [("b", {"a": 0.4, "b": 0.4, "c": 0.2}, None)]  # a tie goes to the first
    for bad in (
        tie_read_last,
        [("c", {"a": 0.2, "b": 0.5, "c": 0.3}, None)],  # the label is not the largest
        [(None, {"a": 0.2, "b": 0.5, "c": 0.3}, None)],  # no label
        [("b", {"a": 0.5, "b": 0.5}, None)],  # a label missing
        [("b", None, 0.5)],  # no probabilities
    ):
        assert score_matrix(rows + bad, labels) is None


def test_answers_and_predictions_to_calibrate_read_probabilities_as_stored(make_project):
    from labelloop.store import predictions

    labels = ("a", "b", 'c "quoted" é')
    project = make_project(labels=labels)
    project.add_items([{"id": f"i{n}", "text": f"item {n}"} for n in range(4)], id_col="id")
    ids = [project.item_id(f"i{n}") for n in range(4)]
    third = 1.0 / 3.0
    probs = {"a": third, "b": 1e-300, labels[2]: 1.0 - third - 1e-300}
    project.save_predictions(
        "m1",
        "v1",
        [
            (ids[0], LabelResult("a", probs, third)),
            (ids[1], LabelResult("b", None, 0.9)),  # no probabilities
            (ids[2], LabelResult(labels[2], {"a": 0.1, "b": 0.2, labels[2]: 0.7}, 0.7)),
        ],
    )
    got = {a.item_id: a for a in predictions.labeler_answers(project.store, project.id, ())}
    assert set(got) == set(ids[:3])
    assert got[ids[0]].probs == probs and got[ids[0]].probs["a"] == third  # to the last bit
    assert got[ids[1]].probs is None and got[ids[1]].label == "b"
    assert (got[ids[2]].model, got[ids[2]].prompt_version) == ("m1", "v1")
    with project.store.session() as session:
        rows = predictions.to_calibrate(session, project.id, "m1", "v1")
        assert [r.probs for r in rows] == [probs, None, {"a": 0.1, "b": 0.2, labels[2]: 0.7}]
        assert [r.label for r in rows] == ["a", "b", labels[2]]
        assert predictions.to_calibrate(session, project.id, "m1", "v1", [ids[3]]) == []
    # One pass over the rows' JSON texts, each row rebuilt with its decoded value.
    rebuilt = predictions.with_probs([(1, '{"x": 0.5}', 2), (3, None, 4)], 1, tuple)
    assert rebuilt == [(1, {"x": 0.5}, 2), (3, None, 4)]
