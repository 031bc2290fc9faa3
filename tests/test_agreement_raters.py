"""Raters against each other: pairwise kappa, leave-one-out majority, copying, gold accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from labelloop.agreement import (
    cohens_kappa,
    copying_flags,
    gold_accuracy,
    mix_gold,
    pairwise_cohens_kappa,
    vs_majority,
)
from labelloop.agreement.raters import loo_majority_codes

HUMAN_A = ["pos", "neg", "neu", "pos", "neg", "pos", "neu", "neg", "pos", "neu"]
HUMAN_B = ["pos", "neg", "pos", "pos", "neg", "pos", "neg", "neg", "pos", "neu"]
LLM = ["pos", "neg", "neu", "pos", "neg", "pos", "neu", "neg", "pos", "pos"]


def test_pairwise_matrix_is_every_cohen_kappa() -> None:
    matrix = pairwise_cohens_kappa([HUMAN_A, HUMAN_B, LLM])
    assert np.allclose(matrix, matrix.T)
    assert np.diag(matrix).tolist() == [1.0, 1.0, 1.0]
    assert matrix[0, 1] == pytest.approx(cohens_kappa(HUMAN_A, HUMAN_B))
    assert matrix[1, 2] == pytest.approx(cohens_kappa(HUMAN_B, LLM))


def test_pair_without_shared_items_is_nan() -> None:
    matrix = pairwise_cohens_kappa([["a", "b", None, None], [None, None, "a", "b"]])
    assert np.isnan(matrix[0, 1])


def test_leave_one_out_majority_by_hand() -> None:
    codes = np.array([[0, 0, 1, 2], [0, 1, 1, -1], [1, 1, 2, 2], [0, 1, 0, -1]])
    majority = loo_majority_codes(codes, 3)
    # rater 0's others on item 0 vote 0,1,0 → 0; item 1: 1,1,1 → 1; item 2: 1,2,0 → tie;
    # item 3: only rater 2 votes 2 → 2.
    assert majority[0].tolist() == [0, 1, -1, 2]
    # rater 3's others on item 2 vote 1,1,2 → 1; item 3: 2,2 → 2.
    assert majority[3].tolist() == [0, 1, 1, 2]


def test_vs_majority_on_the_seed_example() -> None:
    result = {v.rater: v for v in vs_majority([HUMAN_A, HUMAN_B, LLM], rater_names=["a", "b", "l"])}
    # Human A's others (B, LLM) agree on 7 items, and A agrees with all of them.
    assert result["a"].n_items == 7
    assert result["a"].agreement == 1.0
    assert result["b"].agreement == pytest.approx(7 / 9)


def _copy_scenario(seed: int, copy: bool, n: int = 2000) -> np.ndarray:
    """Five careful raters plus an LLM. Rater 4 has a bias (calls class 0 class 1 half the time);
    when `copy`, the LLM (rater 5) repeats rater 4's answer on 90% of the items."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 4, n)
    accuracy = np.array([0.85, 0.8, 0.75, 0.7, 0.65, 0.8])[:, None]
    codes = np.where(rng.random((6, n)) < accuracy, truth, rng.integers(0, 4, (6, n)))
    codes[4] = np.where((truth == 0) & (rng.random(n) < 0.5), 1, codes[4])
    if copy:
        codes[5] = np.where(rng.random(n) < 0.9, codes[4], codes[5])
    codes[rng.random(codes.shape) < 0.1] = -1
    return codes.astype(float), truth


NAMES = ["ann", "bob", "cid", "dee", "eve", "llm"]


@pytest.mark.parametrize("seed", range(3))
def test_copying_is_flagged_with_the_items_behind_it(seed: int) -> None:
    codes, truth = _copy_scenario(seed, copy=True)
    codes[codes < 0] = np.nan
    flags = copying_flags(codes, rater_names=NAMES)
    assert {(f.rater, f.partner) for f in flags} <= {("llm", "eve"), ("eve", "llm")}
    flag = next(f for f in flags if f.rater == "llm")
    assert flag.kappa_with_partner > flag.kappa_with_majority
    assert flag.shared_deviations > 5 * flag.expected_shared
    items = np.array(flag.items)
    assert np.all(codes[5, items] == codes[4, items])
    # the items behind the flag are the llm's copied mistakes, eve's bias (0 called 1) prominent
    assert np.mean(codes[5, items] != truth[items]) > 0.8
    bias = (truth == 0) & (codes[5] == 1)
    assert bias[items].mean() > 3 * bias.mean()


@pytest.mark.parametrize("seed", range(3))
def test_independent_raters_are_not_flagged(seed: int) -> None:
    codes, _ = _copy_scenario(seed, copy=False)
    codes[codes < 0] = np.nan
    assert copying_flags(codes, rater_names=NAMES) == []


def test_two_experts_among_a_noisy_crowd_are_not_flagged() -> None:
    # They depart from a noisy consensus together because both are right, not because one copies.
    rng = np.random.default_rng(5)
    truth = rng.integers(0, 4, 3000)
    accuracy = np.array([0.98, 0.98, 0.4, 0.4, 0.4, 0.4])[:, None]
    codes = np.where(rng.random((6, 3000)) < accuracy, truth, rng.integers(0, 4, (6, 3000)))
    assert copying_flags(codes) == []


def test_three_raters_cannot_be_checked() -> None:
    assert copying_flags([HUMAN_A, HUMAN_B, LLM]) == []


def test_gold_accuracy_intervals_match_statsmodels() -> None:
    from statsmodels.stats.proportion import proportion_confint

    gold = ["a", "b", "a", None, "b", "a", "b", "a", "a", "b"]
    rater = ["a", "b", "b", "a", "b", "a", "a", "a", None, "b"]  # 6 of 8 judged right
    for method, sm_method in (("wilson", "wilson"), ("clopper-pearson", "beta")):
        (result,) = gold_accuracy([rater], gold, method=method)
        assert (result.n_gold, result.correct, result.accuracy) == (8, 6, 0.75)
        low, high = proportion_confint(6, 8, alpha=0.05, method=sm_method)
        assert (result.low, result.high) == pytest.approx((low, high))


def test_gold_accuracy_without_gold_items_is_uninformative() -> None:
    (result,) = gold_accuracy([["a", "b"]], [None, None], labels=["a", "b"])
    assert (result.n_gold, result.accuracy, result.low, result.high) == (0, None, 0.0, 1.0)


def test_mix_gold_keeps_queue_order_and_rate() -> None:
    queue = [f"q{i}" for i in range(900)]
    gold = [f"g{i}" for i in range(500)]
    mixed, is_gold = mix_gold(queue, gold, rate=0.1, random_state=0)
    assert [x for x, g in zip(mixed, is_gold, strict=True) if not g] == queue
    golds = [x for x, g in zip(mixed, is_gold, strict=True) if g]
    assert len(golds) == 100 and len(set(golds)) == 100 and set(golds) <= set(gold)
    positions = np.flatnonzero(is_gold)
    assert positions.min() < 200 and positions.max() > 800  # spread over the whole queue
    assert mix_gold(queue, gold[:5], rate=0.5, random_state=0)[1].sum() == 5
    with pytest.raises(ValueError):
        mix_gold(queue, gold, rate=1.0)


@pytest.mark.parametrize("seed", range(10))
def test_leave_one_out_majority_equals_removing_the_vote(seed: int) -> None:
    from labelloop.agreement._encode import count_table
    from labelloop.agreement.raters import plurality

    rng = np.random.default_rng(seed)
    n_raters, k = 2 + seed % 6, 2 + seed % 4
    codes = rng.integers(-1, k, (n_raters, 500))
    table = count_table(codes, k)
    for min_votes in (1, 2):
        fast = loo_majority_codes(codes, k, min_votes)
        for r in range(n_raters):
            assert fast[r].tolist() == plurality(table, [codes[r]], min_votes).tolist()
