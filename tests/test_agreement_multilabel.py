import itertools

import krippendorff
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelloop.agreement import (
    annotator_f1,
    cohens_kappa,
    krippendorff_alpha,
    krippendorff_alpha_masi,
    masi_distance,
    masi_distances,
    per_label_kappa,
)

LABELS = ["a", "b", "c", "d"]


def masi_by_hand(x: frozenset, y: frozenset) -> float:
    """Passonneau (2006), written out case by case."""
    if x == y:
        return 0.0
    inter, union = len(x & y), len(x | y)
    if x <= y or y <= x:
        m = 2 / 3
    elif inter:
        m = 1 / 3
    else:
        m = 0.0
    return 1.0 - inter / union * m


all_sets = [frozenset(s) for k in range(4) for s in itertools.combinations("abc", k)]


def test_masi_distance_matches_the_definition_on_every_pair():
    for x, y in itertools.product(all_sets, repeat=2):
        assert masi_distance(x, y) == pytest.approx(masi_by_hand(x, y))
    assert masi_distance({"a", "b"}, {"a", "b", "c"}) == pytest.approx(1 - 2 / 3 * 2 / 3)
    assert masi_distance(set(), set()) == 0.0
    assert masi_distance({"x"}, set()) == 1.0
    assert masi_distance("ab", {"ab"}) == 0.0  # a string is one label


answers = st.one_of(st.none(), st.frozensets(st.sampled_from(LABELS), max_size=4))


@settings(max_examples=80, deadline=None)
@given(
    st.integers(2, 4).flatmap(
        lambda r: st.integers(2, 12).flatmap(
            lambda n: st.lists(st.lists(answers, min_size=n, max_size=n), min_size=r, max_size=r)
        )
    )
)
def test_alpha_masi_agrees_with_the_krippendorff_package(data):
    """krippendorff computes alpha from its own coincidence matrix and takes a distance
    callable: give it the sets as codes and MASI as a lookup table."""
    rated = [[a for a in row if a is not None] for row in data]
    per_item = np.array([[a is not None for a in row] for row in data]).sum(axis=0)
    if not (per_item >= 2).any():
        with pytest.raises(ValueError, match="two ratings"):
            krippendorff_alpha_masi(data)
        return
    values = sorted({a for row in rated for a in row}, key=lambda s: sorted(s))
    if len(values) < 2:  # the package refuses a single value; every rating agrees
        assert krippendorff_alpha_masi(data) == 1.0
        return
    code = {v: i for i, v in enumerate(values)}
    table = np.array(
        [
            [masi_by_hand(x, y) if (x, y) != (frozenset(), frozenset()) else 0.0 for y in values]
            for x in values
        ]
    )

    def masi(v1, v2, i1, i2, n_v, dtype=np.float64):
        return table[i1, i2].astype(dtype)

    codes = np.array([[np.nan if a is None else code[a] for a in row] for row in data])
    reference = krippendorff.alpha(
        reliability_data=codes,
        value_domain=np.arange(len(values)),
        level_of_measurement=masi,
    )
    got = krippendorff_alpha_masi(data, labels=LABELS)
    if np.isnan(reference):  # the package's 0/0 when every rating is the same set
        assert got == 1.0
    else:
        assert got == pytest.approx(reference)


def test_alpha_masi_is_nominal_alpha_when_answers_are_single_labels():
    data = [["a", "b", "a", None, "c"], ["a", "b", "b", "c", "c"], ["a", None, "b", "c", "a"]]
    as_sets = [[None if a is None else {a} for a in row] for row in data]
    # Two different singletons are disjoint (MASI 1), equal ones identical (0): nominal alpha.
    assert krippendorff_alpha_masi(as_sets) == pytest.approx(krippendorff_alpha(data))


def test_partial_overlap_earns_partial_credit():
    exact = [[{"a", "b"}, {"c"}, {"a"}], [{"a", "b"}, {"c"}, {"a"}]]
    nested = [[{"a", "b"}, {"c"}, {"a"}], [{"a"}, {"c", "d"}, {"a"}]]
    disjoint = [[{"a", "b"}, {"c"}, {"a"}], [{"c"}, {"a"}, {"b"}]]
    values = [krippendorff_alpha_masi(d) for d in (exact, nested, disjoint)]
    assert values[0] == 1.0 and values[0] > values[1] > values[2]


def test_masi_distances_matrix_is_symmetric_with_zero_diagonal():
    rng = np.random.default_rng(0)
    rows = rng.random((30, 5)) < 0.4
    d = masi_distances(rows, rows)
    np.testing.assert_allclose(d, d.T)
    np.testing.assert_allclose(np.diag(d), 0.0)
    assert d.min() >= 0.0 and d.max() <= 1.0


def test_per_label_kappa_is_cohens_kappa_of_each_column():
    rng = np.random.default_rng(1)
    sets_a, sets_b = [], []
    for _ in range(60):
        a = {lab for lab in LABELS if rng.random() < 0.4}
        b = {lab for lab in a if rng.random() < 0.8} | {lab for lab in LABELS if rng.random() < 0.1}
        sets_a.append(a)
        sets_b.append(b)
    got = per_label_kappa([sets_a, sets_b], labels=LABELS)
    for lab in LABELS:
        want = cohens_kappa([lab in s for s in sets_a], [lab in s for s in sets_b])
        assert got[lab] == pytest.approx(want)


def test_per_label_kappa_averages_rater_pairs_and_skips_missing():
    r1 = [{"a"}, {"a", "b"}, set(), {"b"}]
    r2 = [{"a"}, {"b"}, set(), None]
    r3 = [{"a"}, {"a", "b"}, {"b"}, {"b"}]
    got = per_label_kappa([r1, r2, r3], labels=["a", "b"])
    pairs = [(r1, r2), (r1, r3), (r2, r3)]
    for lab in ("a", "b"):
        want = np.mean(
            [
                cohens_kappa(
                    [None if x is None else lab in x for x in p],
                    [None if y is None else lab in y for y in q],
                )
                for p, q in pairs
            ]
        )
        assert got[lab] == pytest.approx(want)


def test_annotator_f1_against_the_others_and_against_gold():
    careful = [{"a"}, {"a", "b"}, {"c"}, set(), {"b"}]
    copy = [{"a"}, {"a", "b"}, {"c"}, set(), {"b"}]
    sloppy = [{"a", "c"}, {"b"}, {"a"}, {"c"}, {"b"}]
    scores = annotator_f1([careful, copy, copy, sloppy], raters=["p", "q", "r", "s"], n_boot=50)
    by_name = {s.rater: s for s in scores}
    assert by_name["p"].f1.estimate == pytest.approx(1.0)  # q and r outvote s
    assert by_name["s"].f1.estimate == pytest.approx(6 / 11)  # 3 right, 3 extra, 2 missed
    # With one other rater on each side, a label counts only when both others ticked it.
    pair = annotator_f1([careful, copy, sloppy], n_boot=50)
    assert pair[0].f1.estimate == pytest.approx(6 / 8)
    assert by_name["s"].n_items == 5
    gold = np.array([[lab in s for lab in "abc"] for s in careful])
    against_gold = annotator_f1(
        [careful, sloppy], labels=["a", "b", "c"], consensus=gold, n_boot=50
    )
    tp = 3  # a, b (item 2) and b (item 5)
    assert against_gold[1].precision == pytest.approx(tp / 6)
    assert against_gold[1].recall == pytest.approx(tp / 5)
    with pytest.raises(ValueError, match="consensus must have shape"):
        annotator_f1([careful, sloppy], consensus=gold[:, :2])


def test_bad_reliability_data_is_refused():
    with pytest.raises(ValueError, match="same items"):
        krippendorff_alpha_masi([[{"a"}], [{"a"}, {"b"}]])
    with pytest.raises(ValueError, match="not in the label set"):
        krippendorff_alpha_masi([[{"a"}, {"z"}], [{"a"}, {"a"}]], labels=["a", "b"])
    with pytest.raises(ValueError, match="two raters"):
        per_label_kappa([[{"a"}, {"b"}]])
