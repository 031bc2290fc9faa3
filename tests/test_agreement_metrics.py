"""Agreement coefficients against published values and the reference libraries."""

from __future__ import annotations

import numpy as np
import pytest

from labelloop.agreement import (
    cohens_kappa,
    fleiss_kappa,
    fleiss_kappa_by_category,
    gwet_ac1,
    krippendorff_alpha,
    percent_agreement,
    ratings_table,
)

HUMAN_A = ["pos", "neg", "neu", "pos", "neg", "pos", "neu", "neg", "pos", "neu"]
HUMAN_B = ["pos", "neg", "pos", "pos", "neg", "pos", "neg", "neg", "pos", "neu"]
LLM = ["pos", "neg", "neu", "pos", "neg", "pos", "neu", "neg", "pos", "pos"]

# Fleiss (1971), 30 patients × 6 psychiatrists, categories 1..5 (as in statsmodels' tests).
DIAGNOSES = np.array(
    [
        [4, 4, 4, 4, 4, 4], [2, 2, 2, 5, 5, 5], [2, 3, 3, 3, 3, 5], [5, 5, 5, 5, 5, 5],
        [2, 2, 2, 4, 4, 4], [1, 1, 3, 3, 3, 3], [3, 3, 3, 3, 5, 5], [1, 1, 3, 3, 3, 4],
        [1, 1, 4, 4, 4, 4], [5, 5, 5, 5, 5, 5], [1, 4, 4, 4, 4, 4], [1, 2, 4, 4, 4, 4],
        [2, 2, 2, 3, 3, 3], [1, 4, 4, 4, 4, 4], [2, 2, 4, 4, 4, 5], [3, 3, 3, 3, 3, 5],
        [1, 1, 1, 4, 5, 5], [1, 1, 1, 1, 1, 2], [2, 2, 4, 4, 4, 4], [1, 3, 3, 5, 5, 5],
        [5, 5, 5, 5, 5, 5], [2, 4, 4, 4, 4, 4], [2, 2, 4, 5, 5, 5], [1, 1, 4, 4, 4, 4],
        [1, 4, 4, 4, 4, 5], [2, 2, 2, 2, 2, 4], [1, 1, 1, 1, 5, 5], [2, 2, 4, 4, 4, 4],
        [1, 3, 3, 3, 3, 3], [5, 5, 5, 5, 5, 5],
    ]
)  # fmt: skip

# Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 observers × 12 units.
_ = None
KRIPPENDORFF = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, _, _, _],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, _, 3],
    [_, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, _],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, _],
]


def test_seed_example_gives_what_the_seed_code_computes() -> None:
    # Humans: observed 8/10, chance .4*.5 + .3*.2 + .3*.3 = .35 → (.8-.35)/(1-.35) = .692.
    assert cohens_kappa(HUMAN_A, HUMAN_B) == pytest.approx(0.45 / 0.65)
    assert round(cohens_kappa(HUMAN_A, HUMAN_B), 3) == 0.692
    assert round(cohens_kappa(LLM, HUMAN_A), 3) == 0.846
    assert round(cohens_kappa(LLM, HUMAN_B), 3) == 0.508


def test_fleiss_1971_psychiatric_diagnoses() -> None:
    table, categories = ratings_table(DIAGNOSES.T)
    assert categories == [1, 2, 3, 4, 5]
    assert table.sum(axis=1).tolist() == [6] * 30
    assert fleiss_kappa(table) == pytest.approx(0.430, abs=5e-4)
    # Per-category kappas reported by Fleiss (1971) and R irr::kappam.fleiss(detail=TRUE).
    expected = [0.245, 0.245, 0.520, 0.471, 0.566]
    assert fleiss_kappa_by_category(table) == pytest.approx(expected, abs=5e-4)


def test_fleiss_overall_is_the_spread_weighted_mean_of_the_categories() -> None:
    table, _ = ratings_table(DIAGNOSES.T)
    p = table.sum(axis=0) / table.sum()
    spread = p * (1 - p)
    weighted = (fleiss_kappa_by_category(table) * spread).sum() / spread.sum()
    assert weighted == pytest.approx(fleiss_kappa(table))


@pytest.mark.parametrize(
    ("level", "alpha"),
    [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)],
)
def test_krippendorff_2011_example(level: str, alpha: float) -> None:
    assert krippendorff_alpha(KRIPPENDORFF, level) == pytest.approx(alpha, abs=5e-4)
    with_nan = np.array(KRIPPENDORFF, dtype=float)
    assert krippendorff_alpha(with_nan, level) == pytest.approx(alpha, abs=5e-4)


def test_value_counts_input_equals_reliability_data() -> None:
    table, _ = ratings_table(KRIPPENDORFF)
    assert krippendorff_alpha(value_counts=table, labels=[1, 2, 3, 4, 5]) == pytest.approx(
        krippendorff_alpha(KRIPPENDORFF)
    )


def test_gwet_ac1_and_fleiss_with_missing_match_irrcac() -> None:
    # irrCAC 0.4.4 (Gwet's own implementation) on the Krippendorff example, categories 1..5:
    # gwet() 0.77544, fleiss() 0.76117, krippendorff() 0.74342.
    assert gwet_ac1(KRIPPENDORFF, labels=[1, 2, 3, 4, 5]) == pytest.approx(0.77544, abs=5e-6)
    assert fleiss_kappa(ratings_table(KRIPPENDORFF)[0]) == pytest.approx(0.76117, abs=5e-6)


def test_gwet_ac1_two_raters_by_hand() -> None:
    # Two raters, 2 categories: 8 yes/yes, 1 yes/no, 1 no/yes, 0 no/no. pa = .8,
    # pi_yes = (8 + .5 + .5) / 10 = .9, pe = 2 * .9 * .1 / (2 - 1) = .18 → AC1 = .62 / .82.
    a = ["y"] * 9 + ["n"]
    b = ["y"] * 8 + ["n", "y"]
    assert gwet_ac1([a, b]) == pytest.approx(0.62 / 0.82)
    assert percent_agreement([a, b]) == pytest.approx(0.8)


def _random_ratings(seed: int, n_raters: int, n_items: int, k: int, missing: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    truth = rng.integers(1, k + 1, n_items)
    accuracy = rng.uniform(0.2, 0.9, (n_raters, 1))
    noise = rng.integers(1, k + 1, (n_raters, n_items))
    data = np.where(rng.random((n_raters, n_items)) < accuracy, truth, noise).astype(float)
    data[rng.random(data.shape) < missing] = np.nan
    return data


@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_cohen_matches_sklearn(seed: int, weights: str | None) -> None:
    from sklearn.metrics import cohen_kappa_score

    a, b = _random_ratings(seed, 2, 60, 5, 0.15)
    both = ~np.isnan(a) & ~np.isnan(b)
    expected = cohen_kappa_score(a[both], b[both], weights=weights)
    assert cohens_kappa(a, b, weights) == pytest.approx(expected, abs=1e-12)
    as_text = [None if np.isnan(x) else f"L{int(x)}" for x in a]
    other = [None if np.isnan(x) else f"L{int(x)}" for x in b]
    assert cohens_kappa(as_text, other, weights) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", range(25))
def test_cohen_and_fleiss_match_statsmodels(seed: int) -> None:
    from statsmodels.stats import inter_rater as ir

    data = _random_ratings(seed, 4, 50, 4, 0.0).astype(int)
    table, _ = ratings_table(data, labels=[1, 2, 3, 4])
    assert fleiss_kappa(table) == pytest.approx(ir.fleiss_kappa(table, method="fleiss"))
    confusion = np.zeros((4, 4))
    np.add.at(confusion, (data[0] - 1, data[1] - 1), 1)
    for weights, wt in [(None, None), ("linear", "linear"), ("quadratic", "quadratic")]:
        expected = ir.cohens_kappa(confusion, wt=wt, return_results=False)
        got = cohens_kappa(data[0], data[1], weights, labels=[1, 2, 3, 4])
        assert got == pytest.approx(expected)


@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
def test_alpha_matches_krippendorff_package(seed: int, level: str) -> None:
    krippendorff = pytest.importorskip("krippendorff")
    data = _random_ratings(seed, 1 + seed % 5 + 1, 40, 6, 0.3)
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    assert krippendorff_alpha(data, level) == pytest.approx(expected, abs=1e-9)


def test_label_order_drives_weighted_and_ordinal_measures() -> None:
    a = ["low", "mid", "high", "mid", "low", "high"]
    b = ["mid", "mid", "high", "low", "low", "mid"]
    order = ["low", "mid", "high"]
    codes = {label: i for i, label in enumerate(order)}
    from sklearn.metrics import cohen_kappa_score

    expected = cohen_kappa_score([codes[x] for x in a], [codes[x] for x in b], weights="linear")
    assert cohens_kappa(a, b, "linear", labels=order) == pytest.approx(expected)
    numeric = [[codes[x] for x in a], [codes[x] for x in b]]
    assert krippendorff_alpha([a, b], "ordinal", labels=order) == pytest.approx(
        krippendorff_alpha(numeric, "ordinal")
    )


# --------------------------------------------------------------------------- degenerate input
pytestmark = pytest.mark.filterwarnings("error")  # no RuntimeWarning from 0/0 anywhere here


def test_single_label_everywhere_is_perfect_agreement() -> None:
    same = ["x"] * 5
    assert cohens_kappa(same, same) == 1.0
    assert cohens_kappa(same, same, "quadratic") == 1.0
    assert fleiss_kappa([[3], [3], [3]]) == 1.0
    assert fleiss_kappa_by_category([[3, 0], [3, 0]]).tolist()[0] == 1.0
    assert np.isnan(fleiss_kappa_by_category([[3, 0], [3, 0]])[1])  # category nobody used
    assert krippendorff_alpha([same, same]) == 1.0
    assert gwet_ac1([same, same]) == 1.0
    assert gwet_ac1([same, same], labels=["x", "y"]) == 1.0


@pytest.mark.parametrize(
    "call",
    [
        lambda: cohens_kappa([], []),
        lambda: cohens_kappa(["a", "b"], ["a"]),
        lambda: cohens_kappa([None, "a"], ["b", None]),
        lambda: fleiss_kappa(np.zeros((0, 3))),
        lambda: fleiss_kappa([[1, 0], [0, 1]]),  # one rating per item: nothing to compare
        lambda: fleiss_kappa([[1.5, 0.5]]),
        lambda: fleiss_kappa([[-1, 3]]),
        lambda: krippendorff_alpha([[1, 2, 3]]),  # one rater
        lambda: krippendorff_alpha([[1, 2], [3]]),  # ragged
        lambda: krippendorff_alpha([[None, None], [None, None]]),
        lambda: krippendorff_alpha([["a", "b"], ["a", "b"]], "ratio"),
        lambda: krippendorff_alpha([[1, 2], [1, 2]], "cosine"),
        lambda: krippendorff_alpha(),
        lambda: gwet_ac1([[]]),
        lambda: percent_agreement([["a", "b"]]),
        lambda: cohens_kappa(["a", "zzz"], ["a", "a"], labels=["a", "b"]),
        lambda: cohens_kappa(["a", "b"], ["a", "b"], weights="cubic"),
    ],
)
def test_degenerate_input_raises_a_clear_value_error(call) -> None:
    with pytest.raises(ValueError):
        call()


def test_missing_markers_of_every_kind_are_skipped() -> None:
    pd = pytest.importorskip("pandas")
    a = ["a", None, "b", float("nan"), pd.NA, "a"]
    b = ["a", "b", "b", "a", "b", np.float32("nan")]
    assert cohens_kappa(a, b) == 1.0
    assert percent_agreement([a, b]) == 1.0


@pytest.mark.parametrize(
    "values",
    [
        [2.5, -1.0, 2.5, 0.25],
        [2**62, -(2**62), 2**62, 0],
        np.array([127, -128, 127, 0], dtype=np.int8),
        np.array([250, 3, 250, 7], dtype=np.uint8),
        [True, False, True, False],
    ],
)
def test_numeric_labels_of_any_range_encode_like_their_text(values) -> None:
    other = np.asarray(values)[[1, 1, 0, 3]]
    as_text = [str(v) for v in np.asarray(values).tolist()]
    other_text = [str(v) for v in other.tolist()]
    assert cohens_kappa(values, other) == pytest.approx(cohens_kappa(as_text, other_text))
