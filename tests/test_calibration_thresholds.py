"""Exact threshold search against brute force, per-label thresholds, the guarantee and audits."""

import itertools

import numpy as np
import pytest

from labelloop.calibration import (
    accept_mask,
    audit_estimate,
    audit_sample,
    certify_threshold,
    per_label_thresholds,
    threshold_for_accuracy,
    threshold_for_budget,
)


def brute_cuts(conf: np.ndarray, correct: np.ndarray) -> list[tuple[float, int, int]]:
    """(threshold, review count, overall correct) for every distinct cut, by direct counting."""
    cuts = [*np.unique(conf).tolist(), np.inf]
    out = []
    for t in cuts:
        auto = conf >= t
        out.append((t, int((~auto).sum()), int(correct[auto].sum() + (~auto).sum())))
    return out


def random_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n = int(rng.integers(1, 40))
    conf = np.round(rng.uniform(size=n), int(rng.integers(1, 3)))  # rounding makes ties
    return conf, (rng.random(n) < conf).astype(int)


def test_budget_search_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        conf, correct = random_case(rng)
        budget = float(rng.uniform())
        res = threshold_for_budget(conf, correct, budget)
        feasible = [c for c in brute_cuts(conf, correct) if c[1] <= budget * conf.size]
        best = max(c[2] for c in feasible)
        most_review = max(c[1] for c in feasible if c[2] == best)
        assert res.expected_accuracy * conf.size == pytest.approx(best)
        assert res.n_review == most_review
        auto = conf >= res.threshold
        assert (~auto).sum() == res.n_review


def test_accuracy_search_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    for _ in range(300):
        conf, correct = random_case(rng)
        target = float(rng.uniform(0.5, 1.0))
        res = threshold_for_accuracy(conf, correct, target)
        ok = [c for c in brute_cuts(conf, correct) if c[2] >= target * conf.size - 1e-9]
        assert res.n_review == min(c[1] for c in ok)
        acc = threshold_for_accuracy(conf, correct, target, of="accepted")
        if acc.auto_accuracy is not None:
            assert acc.auto_accuracy >= target - 1e-9


def brute_per_label(conf, correct, pred, budget=None, target=None):
    """Every combination of per-label cuts: (review, overall correct)."""
    per = []
    for lab in np.unique(pred):
        m = pred == lab
        per.append(brute_cuts(conf[m], correct[m]))
    best = None
    n = conf.size
    for combo in itertools.product(*per):
        review = sum(c[1] for c in combo)
        right = sum(c[2] for c in combo)
        if budget is not None and review > budget * n + 1e-9:
            continue
        if target is not None and right < target * n - 1e-9:
            continue
        key = (-right, review) if budget is not None else (review, -right)
        if best is None or key < best[0]:
            best = (key, review, right)
    return best[1], best[2]


def test_per_label_thresholds_match_brute_force_on_tiny_inputs() -> None:
    rng = np.random.default_rng(2)
    for _ in range(80):
        n = int(rng.integers(2, 11))
        conf = np.round(rng.uniform(size=n), 1)
        correct = (rng.random(n) < conf).astype(int)
        pred = rng.choice(np.array(["a", "b", "c"]), n)
        budget = float(rng.uniform())
        res = per_label_thresholds(conf, correct, pred, budget=budget)
        review, right = brute_per_label(conf, correct, pred, budget=budget)
        assert (res.n_review, round(res.expected_accuracy * n)) == (review, right)
        # The thresholds, applied by the routing rule, give exactly the reported review count.
        auto = accept_mask(conf, 2.0, pred, res.thresholds)
        assert (~auto).sum() == res.n_review
        target = float(rng.uniform(0.6, 1.0))
        res_t = per_label_thresholds(conf, correct, pred, target_accuracy=target)
        review_t, _ = brute_per_label(conf, correct, pred, target=target)
        assert res_t.n_review == review_t


def test_per_label_never_worse_than_one_global_threshold() -> None:
    rng = np.random.default_rng(3)
    n = 400
    pred = rng.choice(np.array(["x", "y"]), n)
    conf = rng.uniform(size=n)
    # Label y is much less reliable at the same confidence.
    correct = (rng.random(n) < np.where(pred == "x", conf, conf**3)).astype(int)
    glob = threshold_for_budget(conf, correct, 0.3)
    per = per_label_thresholds(conf, correct, pred, budget=0.3)
    assert per.expected_accuracy >= glob.expected_accuracy
    assert per.thresholds["y"] > per.thresholds["x"]


@pytest.mark.slow
def test_guarantee_holds_in_repeated_simulation() -> None:
    # Calibrated model: P(right | c) = c, c ~ U(0.5, 1); the accuracy of items with
    # confidence >= t is (1 + t) / 2, so a threshold misses the 0.9 target iff t < 0.8.
    rng = np.random.default_rng(4)
    level, target, sims = 0.9, 0.9, 500
    misses = certified = 0
    for _ in range(sims):
        conf = rng.uniform(0.5, 1.0, 300)
        correct = rng.random(300) < conf
        res = certify_threshold(conf, correct, target, level)
        if res.certified:
            certified += 1
            misses += (1 + res.threshold) / 2 < target
    assert misses / sims <= (1 - level) + 0.02
    assert certified / sims > 0.5  # it does certify, not just refuse


@pytest.mark.slow
def test_guarantee_on_an_uninformative_model_rarely_certifies_a_false_target() -> None:
    # Accuracy 0.89 everywhere: any certificate of 0.9 is wrong.
    rng = np.random.default_rng(5)
    wrong = sum(
        certify_threshold(rng.uniform(size=400), rng.random(400) < 0.89, 0.9, 0.95).certified
        for _ in range(300)
    )
    assert wrong / 300 <= 0.05 + 0.025


def test_uncertified_result_says_how_many_more_gold_items() -> None:
    rng = np.random.default_rng(6)
    conf = rng.uniform(size=60)
    correct = rng.random(60) < 0.97
    res = certify_threshold(conf, correct, 0.9, 0.99)
    assert not res.certified and res.review_rate == 1.0
    assert res.additional_gold_needed and res.additional_gold_needed > 0
    # With that many more items at a similar (evenly spread) error rate, the bound is met.
    total = 60 + res.additional_gold_needed + 60
    spread = np.arange(total) % 40 != 0  # 2.5% wrong, spread over all confidences
    bigger = certify_threshold(np.linspace(0, 1, total), spread, 0.9, 0.99, "pointwise")
    assert bigger.certified


def test_audit_sample_and_running_estimate() -> None:
    accepted = np.r_[np.ones(1000, bool), np.zeros(500, bool)]
    picked = audit_sample(accepted, 0.05, random_state=7)
    assert picked.sum() == 50 and not picked[~accepted].any()
    assert (audit_sample(accepted, 0.05, random_state=7) == picked).all()
    est = audit_estimate(np.r_[np.ones(45), np.zeros(5)], 0.95)
    assert est["accuracy"] == pytest.approx(0.9)
    assert est["lower"] < 0.9 < est["upper"]
    assert len(est["running_accuracy"]) == 50
    # Intervals shrink as audits accumulate.
    widths = np.array(est["running_upper"]) - np.array(est["running_lower"])
    assert widths[-1] < widths[9]


def test_bad_budget_and_target_raise() -> None:
    with pytest.raises(ValueError, match="budget"):
        threshold_for_budget([0.5], [1], -0.1)
    with pytest.raises(ValueError, match="target_accuracy"):
        threshold_for_accuracy([0.5], [1], 1.5)
    with pytest.raises(ValueError, match="exactly one"):
        per_label_thresholds([0.5], [1], ["a"])
