"""Final labels weighted by who gave them: recovery on synthetic crowds, gold, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelloop.agreement import Answers, WeightedConsensus, jeffreys_interval
from labelloop.agreement.consensus import auto_confusion_kinds

LABELS = ["a", "b", "c"]


def crowd(
    accuracy: list[float],
    n_items: int,
    per_item: int,
    *,
    n_labels: int = 3,
    favourite: dict[int, int] | None = None,
    seed: int = 0,
) -> tuple[Answers, np.ndarray, np.ndarray]:
    """Items answered by `per_item` distinct random annotators each. Annotator r is right with
    probability accuracy[r]; otherwise it gives a uniformly drawn wrong label, or its favourite
    label when it has one (and the truth is another). Returns answers, truth, and each
    annotator's realised accuracy."""
    rng = np.random.default_rng(seed)
    favourite = favourite or {}
    n_annotators = len(accuracy)
    truth = rng.integers(0, n_labels, n_items)
    who = np.argsort(rng.random((n_items, n_annotators)), axis=1)[:, :per_item].ravel()
    item = np.repeat(np.arange(n_items), per_item)
    right = rng.random(item.size) < np.asarray(accuracy)[who]
    wrong = (truth[item] + rng.integers(1, n_labels, item.size)) % n_labels
    for r, label in favourite.items():
        mine = (who == r) & (truth[item] != label)
        wrong[mine] = label
    given_code = np.where(right, truth[item], wrong)
    labels = [f"l{k}" for k in range(n_labels)]
    answers = Answers.from_records(
        item,
        [f"ann{r}" for r in who],
        [labels[k] for k in given_code],
        label_set=labels,
        n_items=n_items,
        annotator_names=[f"ann{r}" for r in range(n_annotators)],
    )
    realised = np.bincount(who, weights=given_code == truth[item], minlength=n_annotators)
    realised /= np.bincount(who, minlength=n_annotators)
    return answers, truth, realised


def test_recovers_annotator_accuracies_within_tolerance() -> None:
    accuracy = [0.55, 0.65, 0.75, 0.85, 0.95, 0.9, 0.6, 0.8]
    answers, truth, realised = crowd(accuracy, 3000, 3)
    fit = WeightedConsensus(random_state=0).fit(answers)
    modelled = np.array([q.modelled_accuracy for q in fit.annotator_quality_])
    consensus = np.array([q.against_consensus.estimate for q in fit.annotator_quality_])
    assert np.abs(modelled - realised).max() < 0.04
    assert np.abs(consensus - realised).max() < 0.04
    covered = [
        q.against_consensus.low - 0.02 <= r <= q.against_consensus.high + 0.02
        for q, r in zip(fit.annotator_quality_, realised, strict=True)
    ]
    assert sum(covered) >= 7
    assert fit.converged_
    assert (fit.consensus_index_ == truth).mean() > 0.85


def test_weighted_labels_beat_the_majority_with_biased_and_adversarial_annotators() -> None:
    # Two careless annotators fall back on "l0"; one is adversarial (mostly wrong).
    accuracy = [0.9, 0.85, 0.55, 0.55, 0.2, 0.8]
    answers, truth, _ = crowd(accuracy, 3000, 3, favourite={2: 0, 3: 0}, seed=1)
    weighted = WeightedConsensus(random_state=0).fit(answers)
    majority = WeightedConsensus("majority", random_state=0).fit(answers)
    weighted_accuracy = (weighted.consensus_index_ == truth).mean()
    majority_accuracy = (majority.consensus_index_ == truth).mean()
    assert weighted_accuracy > majority_accuracy + 0.05
    # The biased annotators' confusion matrices put their errors on their favourite label.
    favourite_column = weighted.confusion_[2, 1:, 0]
    assert favourite_column.min() > 0.3


def test_gold_anchors_the_truth_when_the_crowd_agrees_on_a_wrong_label() -> None:
    # Everyone swaps the two labels: without gold the swap is indistinguishable from the truth.
    answers, truth, _ = crowd([0.15, 0.2, 0.1, 0.2], 600, 3, n_labels=2, seed=2)
    without = WeightedConsensus(random_state=0).fit(answers)
    assert (without.consensus_index_ == truth).mean() < 0.3
    gold = [f"l{t}" if i < 100 else None for i, t in enumerate(truth)]
    anchored = WeightedConsensus(random_state=0).fit(answers, gold=gold)
    rest = np.arange(600) >= 100
    assert (anchored.consensus_index_[rest] == truth[rest]).mean() > 0.9
    assert np.array_equal(anchored.posterior_[:100].argmax(axis=1), truth[:100])
    assert np.all(anchored.posterior_[:100].max(axis=1) == 1.0)
    for quality in anchored.annotator_quality_:
        assert quality.n_gold > 0
        assert quality.against_gold.estimate < 0.35


def test_annotator_who_only_answered_gold_is_measured_and_moves_no_label() -> None:
    answers = Answers.from_records(
        [0, 0, 1, 2, 2, 3],
        ["ann", "bob", "ann", "gold_only", "gold_only", "bob"],
        ["a", "a", "b", "c", "a", "c"],
        label_set=LABELS,
        n_items=4,
    )
    fit = WeightedConsensus().fit(answers, gold={2: "c"})
    quality = {q.annotator: q for q in fit.annotator_quality_}["gold_only"]
    assert quality.n_gold == 2
    assert quality.against_gold.estimate == pytest.approx(0.5)
    assert quality.against_consensus is None
    assert fit.consensus_[2] == "c"


def test_items_without_answers_take_the_model_prior() -> None:
    answers = Answers.from_records([0, 0], ["x", "y"], ["a", "a"], label_set=LABELS, n_items=3)
    proba = np.array([[0.2, 0.5, 0.3], [0.1, 0.1, 0.8], [0.6, 0.3, 0.1]])
    trusted = WeightedConsensus(model_weight=1.0).fit(answers, model_proba=proba)
    assert trusted.posterior_[1:] == pytest.approx(proba[1:])
    assert list(trusted.consensus_[1:]) == ["c", "a"]
    assert trusted.n_answers_.tolist() == [2, 0, 0]
    no_model = WeightedConsensus().fit(answers)
    assert no_model.posterior_[1] == pytest.approx(no_model.class_prior_)


def test_one_annotator_and_all_agree() -> None:
    single = Answers.from_records([0, 1, 2], ["only"] * 3, ["a", "b", "c"], label_set=LABELS)
    fit = WeightedConsensus().fit(single)
    assert list(fit.consensus_) == ["a", "b", "c"]
    assert not fit.tied_.any()
    agree = Answers.from_matrix([["b", "b", "b"]] * 5, label_set=LABELS)
    for method in ("dawid_skene", "majority"):
        fit = WeightedConsensus(method).fit(agree)
        assert set(fit.consensus_) == {"b"}
        assert fit.confidence_.min() > 0.9


def test_majority_reports_ties_and_lets_the_model_break_them() -> None:
    answers = Answers.from_matrix([["a", "b"], ["a", "a"]], label_set=LABELS)
    plain = WeightedConsensus("majority").fit(answers)
    assert plain.tied_.tolist() == [True, False]
    assert plain.posterior_[0] == pytest.approx([0.5, 0.5, 0.0])
    proba = np.array([[0.1, 0.8, 0.1], [0.4, 0.3, 0.3]])
    helped = WeightedConsensus("majority").fit(answers, model_proba=proba)
    assert list(helped.consensus_) == ["b", "a"]
    assert helped.tied_[0]  # the votes are still tied: adjudication may want it
    # with Dawid–Skene the model is a voter, so the tie is gone
    weighted = WeightedConsensus(model_weight=1.0).fit(answers, model_proba=proba)
    assert weighted.consensus_[0] == "b" and not weighted.tied_[0]


def test_ties_are_broken_at_random_not_by_label_order() -> None:
    answers = Answers.from_matrix([["a", "b"]] * 200, label_set=["a", "b"])
    fit = WeightedConsensus("majority", random_state=3).fit(answers)
    assert fit.tied_.all()
    assert 60 < (fit.consensus_ == "a").sum() < 140
    again = WeightedConsensus("majority", random_state=3).fit(answers)
    assert np.array_equal(fit.consensus_, again.consensus_)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: Answers.from_records([0], ["x"], ["zebra"], label_set=LABELS),
            "answer 0: label 'zebra' is not in the label set",
        ),
        (
            lambda: Answers.from_matrix([["a", None], [None, "dog"]], label_set=LABELS),
            "cell 3: label 'dog' is not in the label set",
        ),
        (
            lambda: WeightedConsensus().fit(
                Answers.from_records([0], ["x"], ["a"], label_set=LABELS), gold=["cat"]
            ),
            "gold item 0: label 'cat' is not in the label set",
        ),
        (
            lambda: WeightedConsensus().fit(
                Answers.from_records([0], ["x"], ["a"], label_set=LABELS),
                model_proba=[[0.5, 0.5]],
            ),
            r"model_proba must have shape \(items, labels\) = \(1, 3\)",
        ),
        (
            lambda: Answers.from_records(
                [0, 5], ["x", "y"], ["a", "b"], label_set=LABELS, n_items=3
            ),
            r"item positions must lie in 0..2",
        ),
        (lambda: Answers.from_records([0], ["x"], ["a"], label_set=["a"]), "at least two labels"),
        (
            lambda: Answers.from_records(
                [0, 1], ["x", "mallory"], ["a", "b"], label_set=LABELS, annotator_names=["x"]
            ),
            r"answer 1: annotator 'mallory' is not in the annotator set \['x'\]",
        ),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_posterior_of_one_item_matches_the_fit_and_refuses_unknown_labels() -> None:
    answers, _, _ = crowd([0.9, 0.7, 0.6, 0.8], 400, 3, seed=4)
    proba = np.random.default_rng(0).dirichlet(np.ones(3), size=400)
    fit = WeightedConsensus(model_weight=0.5, tol=1e-10).fit(answers, model_proba=proba)
    rows = np.flatnonzero(answers.item == 7)
    names = [answers.annotators[r] for r in answers.annotator[rows]]
    labels = [answers.labels[k] for k in answers.label[rows]]
    assert fit.posterior_of(names, labels, proba[7]) == pytest.approx(fit.posterior_[7], abs=1e-6)
    numbered = Answers.from_records(  # annotators named by numbers: looked up all the same
        answers.item, answers.annotator, answers.label, label_set=[0, 1, 2], n_items=400
    )
    by_number = WeightedConsensus(tol=1e-10).fit(numbered)
    own = [int(r) for r in answers.annotator[rows]]
    assert by_number.posterior_of(own, [int(k) for k in answers.label[rows]]) == pytest.approx(
        by_number.posterior_[7], abs=1e-6
    )
    newcomer = fit.posterior_of(["someone_new"], ["l1"])
    assert newcomer.argmax() == 1 and newcomer.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="label 'l9' is not in the label set"):
        fit.posterior_of(["ann0"], ["l9"])


def test_a_stored_annotator_model_weighs_one_item_as_the_fit_does() -> None:
    import json

    answers, _, _ = crowd([0.95, 0.55, 0.8, 0.7], 300, 3, seed=6)
    proba = np.random.default_rng(1).dirichlet(np.ones(3), size=300)
    fit = WeightedConsensus(model_weight=0.4, tol=1e-10).fit(answers, model_proba=proba)
    stored = WeightedConsensus.from_annotator_model(json.loads(json.dumps(fit.annotator_model())))
    for position in (3, 11, 42):
        rows = np.flatnonzero(answers.item == position)
        names = [answers.annotators[r] for r in answers.annotator[rows]]
        labels = [answers.labels[k] for k in answers.label[rows]]
        assert stored.posterior_of(names, labels, proba[position]) == pytest.approx(
            fit.posterior_[position], abs=1e-6
        )
    assert stored.posterior_of(["nobody_seen"], ["l2"]) == pytest.approx(
        fit.posterior_of(["nobody_seen"], ["l2"])
    )


def test_confusion_structure_follows_answer_counts() -> None:
    kinds = auto_confusion_kinds(np.array([5, 40, 100]), 3)
    assert kinds.tolist() == [0, 1, 2]  # one-coin < 30 ≤ class-conditional < 60 ≤ full
    answers, _, _ = crowd([0.9, 0.8, 0.7], 30, 1, seed=5)
    fit = WeightedConsensus(confusion="full").fit(answers)
    assert set(fit.confusion_kind_) == {"full"}
    assert np.allclose(fit.confusion_.sum(axis=2), 1.0)


def test_drift_finds_an_annotator_who_got_worse() -> None:
    rng = np.random.default_rng(6)
    n_items = 1200
    truth = rng.integers(0, 2, n_items)
    items, who, given = [], [], []
    for name in ["steady", "tiring", "careful"]:
        accuracy = np.full(n_items, 0.9)
        if name == "tiring":
            accuracy[n_items - 200 :] = 0.6  # the last 200 answers, in time order
        right = rng.random(n_items) < accuracy
        items.append(np.arange(n_items))
        who += [name] * n_items
        given.append(np.where(right, truth, 1 - truth))
    answers = Answers.from_records(
        np.concatenate(items),
        who,
        np.concatenate(given),
        label_set=[0, 1],
        times=np.tile(np.arange(n_items), 3),
    )
    gold = np.where(np.arange(n_items) % 4 == 0, truth, None)
    fit = WeightedConsensus().fit(answers, gold=list(gold))
    drift = {d.annotator: d for d in fit.drift(window=200)}
    assert len(drift["tiring"].windows) == 6
    assert drift["tiring"].recent_change.high < -0.1
    assert drift["steady"].recent_change.low < 0 < drift["steady"].recent_change.high
    first = drift["tiring"].windows[0].accuracy
    assert first.low < 0.9 < first.high


def test_jeffreys_interval_brackets_the_share() -> None:
    interval = jeffreys_interval(45, 50)
    assert interval.estimate == pytest.approx(0.9)
    assert 0.78 < interval.low < 0.9 < interval.high < 0.97
    assert jeffreys_interval(0, 0) is None


answer_rows = st.lists(
    st.tuples(st.integers(0, 5), st.integers(0, 3), st.sampled_from(LABELS)),
    min_size=1,
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(
    rows=answer_rows,
    method=st.sampled_from(["dawid_skene", "majority"]),
    seed=st.integers(0, 9),
)
def test_posterior_is_a_distribution_invariant_to_answer_order(rows, method, seed) -> None:
    proba = np.random.default_rng(seed).dirichlet(np.ones(3), size=6)
    gold = [None, "b", None, None, None, None]

    def fit(order: list) -> WeightedConsensus:
        items, names, labels = zip(*order, strict=True)
        answers = Answers.from_records(
            list(items),
            [f"ann{w}" for w in names],
            list(labels),
            label_set=LABELS,
            n_items=6,
            annotator_names=[f"ann{w}" for w in range(4)],
        )
        return WeightedConsensus(method, tol=1e-12, max_iter=500).fit(
            answers, gold=gold, model_proba=proba
        )

    forward = fit(rows)
    shuffled = fit([rows[i] for i in np.random.default_rng(seed).permutation(len(rows))])
    assert np.all(forward.posterior_ >= 0)
    assert forward.posterior_.sum(axis=1) == pytest.approx(np.ones(6))
    assert forward.posterior_[1] == pytest.approx([0.0, 1.0, 0.0])
    assert shuffled.posterior_ == pytest.approx(forward.posterior_, abs=1e-7)
    assert np.array_equal(forward.tied_, shuffled.tied_)
