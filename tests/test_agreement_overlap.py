"""Adaptive overlap: when an item needs another answer, and which item needs one most."""

from __future__ import annotations

import numpy as np
import pytest

from labelloop.agreement import Answers, OverlapPolicy, WeightedConsensus, expected_gain

GOOD = np.array([[0.9, 0.1], [0.1, 0.9]])


def test_stops_at_the_target_or_the_cap_and_never_before_the_minimum() -> None:
    policy = OverlapPolicy(target=0.95, max_answers=3, min_answers=1)
    posterior = np.array([[0.5, 0.5], [0.97, 0.03], [0.6, 0.4], [0.99, 0.01], [0.7, 0.3]])
    n_answers = np.array([1, 1, 3, 0, 2])
    assert policy.needs_more(posterior, n_answers).tolist() == [True, False, False, True, True]
    assert bool(policy.needs_more(np.array([0.5, 0.5]), 2)[0])


def test_fixed_overlap_is_the_same_policy() -> None:
    fixed = OverlapPolicy.fixed(3)
    posterior = np.array([[1.0, 0.0], [0.5, 0.5], [0.99, 0.01]])
    assert fixed.needs_more(posterior, np.array([2, 3, 0])).tolist() == [True, False, True]


def test_expected_gain_is_zero_when_certain_and_largest_when_undecided() -> None:
    posterior = np.array([[1.0, 0.0], [0.5, 0.5], [0.8, 0.2], [0.97, 0.03]])
    gain = expected_gain(posterior, GOOD)
    assert gain[0] == pytest.approx(0.0)
    assert gain[1] == pytest.approx(0.4)  # 0.5 → 0.9 whatever the answer
    assert gain[1] > gain[2] > 0
    assert gain[3] == pytest.approx(0.0)  # one answer cannot overturn 0.97 against 0.9 ...
    two = expected_gain(posterior, GOOD, n_answers=2)
    assert two[3] > 0  # ... but two can: the policy looks two answers ahead
    by_hand = [
        sum(
            max(p * GOOD[k, a] * GOOD[k, b] for k, p in enumerate(row))
            for a in (0, 1)
            for b in (0, 1)
        )
        - max(row)
        for row in posterior
    ]
    assert two == pytest.approx(by_hand)
    useless = np.full((2, 2), 0.5)  # an annotator who answers at random teaches nothing
    assert expected_gain(posterior, useless) == pytest.approx(np.zeros(4))


def test_queue_puts_unanswered_items_first_then_the_most_useful() -> None:
    policy = OverlapPolicy(target=0.95, max_answers=4)
    posterior = np.array([[0.8, 0.2], [0.5, 0.5], [0.99, 0.01], [0.6, 0.4], [0.7, 0.3]])
    n_answers = np.array([1, 2, 1, 0, 4])
    assert policy.queue(posterior, n_answers, GOOD).tolist() == [3, 1, 0]
    assert policy.queue(posterior, n_answers, GOOD, limit=2).tolist() == [3, 1]
    assert np.isneginf(policy.priority(posterior, n_answers, GOOD)[[2, 4]]).all()
    # without an annotator model the least certain goes first
    assert policy.queue(posterior, n_answers).tolist() == [3, 1, 0]


def test_adaptive_overlap_spends_answers_where_labels_are_uncertain() -> None:
    """A stream on a synthetic crowd: adaptive overlap matches a fixed overlap of 3 with fewer
    answers, because items a reliable annotator and a confident model settle get no more."""
    rng = np.random.default_rng(0)
    n_items, accuracy = 600, np.array([0.95, 0.9, 0.7, 0.65, 0.6])
    truth = rng.integers(0, 2, n_items)
    confident = rng.random(n_items) < 0.5  # the model is sure of half the items (and right)
    p_true = np.where(confident, 0.97, 0.6)
    proba = np.where(truth[:, None] == np.arange(2), p_true[:, None], 1 - p_true[:, None])

    def answer(item: int, taken: set[int]) -> tuple[int, int]:
        who = int(rng.choice([r for r in range(5) if r not in taken]))
        right = rng.random() < accuracy[who]
        return who, int(truth[item] if right else 1 - truth[item])

    def run(policy: OverlapPolicy) -> tuple[float, int]:
        rows: list[tuple[int, int, int]] = []
        seen: dict[int, set[int]] = {i: set() for i in range(n_items)}
        while True:
            answers = Answers.from_records(
                [r[0] for r in rows],
                [r[1] for r in rows],
                [r[2] for r in rows],
                label_set=[0, 1],
                n_items=n_items,
                annotator_names=list(range(5)),
            )
            fit = WeightedConsensus(random_state=0).fit(answers, model_proba=proba)
            wanted = policy.queue(fit.posterior_, fit.n_answers_, fit.typical_confusion_)
            if wanted.size == 0:
                return float((fit.consensus_index_ == truth).mean()), len(rows)
            for item in wanted[:150]:
                who, label = answer(int(item), seen[int(item)])
                seen[int(item)].add(who)
                rows.append((int(item), who, label))

    fixed_accuracy, fixed_answers = run(OverlapPolicy.fixed(3))
    adaptive_accuracy, adaptive_answers = run(OverlapPolicy(target=0.95, max_answers=5))
    assert fixed_answers == 3 * n_items
    assert adaptive_answers < 0.9 * fixed_answers
    assert adaptive_accuracy >= fixed_accuracy


def test_bad_policies_are_refused() -> None:
    with pytest.raises(ValueError, match="target"):
        OverlapPolicy(target=0.0)
    with pytest.raises(ValueError, match="min_answers"):
        OverlapPolicy(min_answers=4, max_answers=3)
    with pytest.raises(ValueError, match="labels × labels"):
        expected_gain(np.array([[0.5, 0.5]]), np.eye(3))
