"""Final labels weighted by who gave them.

An item's answers are not equally good evidence: a careful annotator's label is worth more than
a hurried one's, and an annotator who falls back on a favourite label when unsure says little
when they give it. :class:`WeightedConsensus` fits each annotator's confusion matrix against the
latent true label by EM (Dawid & Skene 1979) over every item with answers. Gold items enter with
their label known, so they measure annotators directly and anchor the latent classes. The
model's calibrated probabilities are each item's prior over the true label (Raykar et al. 2010),
tempered by `model_weight`, so the model votes like one more, weak, annotator whose strength is
its calibrated confidence — the idea behind CROWDLAB (Goh, Tkachenko & Mueller 2022), here inside
the likelihood rather than as an ensemble of scores.

How much structure each confusion matrix gets depends on how many answers support it
(``confusion="auto"``): a full K × K matrix has K(K-1) free values and a one-coin model only one,
so an annotator needs about ten answers per free value before the richer model earns its keep.
Every level is shrunk toward the simpler one (full → class-conditional → one-coin → the crowd's
pooled accuracy) with `smoothing` pseudo-answers, a Dirichlet prior centred on the simpler model,
so a new annotator starts as an average one rather than as a guess.

References: A. P. Dawid & A. M. Skene (1979), Maximum likelihood estimation of observer
error-rates using the EM algorithm, Applied Statistics 28(1). V. C. Raykar et al. (2010),
Learning from crowds, JMLR 11. H. W. Goh, U. Tkachenko & J. Mueller (2022), CROWDLAB: supervised
learning to infer consensus labels and quality scores for data with multiple annotators,
arXiv:2210.06812. L. D. Brown, T. T. Cai & A. DasGupta (2001), Interval estimation for a binomial
proportion, Statistical Science 16(2) (the Jeffreys interval).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from scipy import sparse, stats

from labelloop.agreement.answers import Answers, gold_codes
from labelloop.agreement.bootstrap import Interval

Method = Literal["dawid_skene", "majority"]
ConfusionKind = Literal["auto", "full", "class_conditional", "one_coin"]

#: Confusion structures from the simplest up; ``confusion_kind_`` holds these names.
KINDS: tuple[str, ...] = ("one_coin", "class_conditional", "full")
#: Answers an annotator needs per free value of a confusion structure before `auto` picks it.
ANSWERS_PER_PARAMETER = 10
_FLOOR = 1e-6  # no probability is exactly zero: one odd answer must not veto a label


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class AnnotatorQuality:
    """One annotator's estimated accuracy, measured two ways.

    `against_gold` counts right answers on gold items (None without any). `against_consensus`
    is, with Dawid–Skene, the mean posterior probability that each of their answers on other
    items is right; with the plain majority, the mean share of the *other* answers on the item
    that agree with theirs (items with a single answer left out). `modelled_accuracy` is what
    the fitted confusion matrix implies, Σ_k prior_k · π_kk. Intervals are Jeffreys intervals
    (soft counts for the consensus).
    """

    annotator: str
    n_answers: int
    n_gold: int
    against_gold: Interval | None
    against_consensus: Interval | None
    modelled_accuracy: float
    confusion_kind: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DriftWindow:
    """Accuracy over `n_answers` consecutive answers, from the annotator's `first` answer on."""

    first: int
    n_answers: int
    accuracy: Interval


@dataclass(frozen=True)
class AnnotatorDrift:
    """Accuracy in windows of an annotator's answers in time order, and whether it moved lately:
    `recent_change` is the last window's accuracy minus that of all their earlier answers (None
    with a single window)."""

    annotator: str
    windows: list[DriftWindow]
    recent_change: Interval | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def jeffreys_interval(successes: float, n: float, confidence: float = 0.95) -> Interval | None:
    """Share `successes / n` with the Jeffreys interval (Beta(½ + s, ½ + n − s) quantiles); soft
    (fractional) successes are allowed. None when `n` is 0."""
    if n <= 0:
        return None
    tail = (1.0 - confidence) / 2.0
    low, high = stats.beta.ppf([tail, 1.0 - tail], successes + 0.5, n - successes + 0.5)
    share = successes / n
    return Interval(float(share), float(min(low, share)), float(max(high, share)))


# --------------------------------------------------------------------------- pure pieces
def auto_confusion_kinds(n_answers: np.ndarray, n_labels: int) -> np.ndarray:
    """Index into `KINDS` per annotator: the richest structure their answer count supports."""
    k = n_labels
    kinds = np.zeros(n_answers.shape, dtype=np.int64)
    kinds[n_answers >= ANSWERS_PER_PARAMETER * k] = 1
    kinds[n_answers >= ANSWERS_PER_PARAMETER * k * (k - 1)] = 2
    return kinds


def _coin_rows(accuracy: np.ndarray) -> np.ndarray:
    """(R, K, K) matrices with `accuracy` (R, K) on the diagonal, errors spread evenly."""
    n_labels = accuracy.shape[1]
    off = (1.0 - accuracy) / (n_labels - 1)
    out = np.repeat(off[:, :, None], n_labels, axis=2)
    diagonal = np.arange(n_labels)
    out[:, diagonal, diagonal] = accuracy
    return out


def estimate_confusions(counts: np.ndarray, kinds: np.ndarray, smoothing: float) -> np.ndarray:
    """(R, K, K) confusion matrices (rows: true label) from expected answer counts.

    Each level is the posterior mean under a Dirichlet prior of `smoothing` pseudo-answers
    centred on the level below: crowd accuracy → one-coin → class-conditional → full.
    """
    per_row = counts.sum(axis=2)
    right = np.einsum("rkk->rk", counts)
    crowd = (right.sum() + 1.0) / (per_row.sum() + 2.0)
    one_coin = (right.sum(axis=1) + smoothing * crowd) / (per_row.sum(axis=1) + smoothing)
    coin = _coin_rows(np.repeat(one_coin[:, None], counts.shape[1], axis=1))
    by_class = (right + smoothing * one_coin[:, None]) / (per_row + smoothing)
    class_conditional = _coin_rows(by_class)
    full = (counts + smoothing * coin) / (per_row[:, :, None] + smoothing)
    kind = kinds[:, None, None]
    chosen = np.where(kind == 0, coin, np.where(kind == 1, class_conditional, full))
    chosen = np.maximum(chosen, _FLOOR)
    return chosen / chosen.sum(axis=2, keepdims=True)


def row_max(values: np.ndarray) -> np.ndarray:
    """(N,) maximum of each row of an (N, K) array, one column at a time: NumPy's own reduction
    along a short last axis is many times slower, and labels are few."""
    out = values[:, 0].copy()
    for k in range(1, values.shape[1]):
        np.maximum(out, values[:, k], out=out)
    return out


def row_sum(values: np.ndarray) -> np.ndarray:
    """(N,) sum of each row of an (N, K) array, one column at a time (see `row_max`)."""
    out = values[:, 0].copy()
    for k in range(1, values.shape[1]):
        out += values[:, k]
    return out


def logsumexp_rows(log_values: np.ndarray) -> np.ndarray:
    """(N,) log Σ_k exp of each row, stable for very negative logs."""
    top = row_max(log_values)
    return top + np.log(row_sum(np.exp(log_values - top[:, None])))


def softmax_rows(log_values: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for very negative logs."""
    out = np.exp(log_values - row_max(log_values)[:, None])
    out /= row_sum(out)[:, None]
    return out


def check_proba(model_proba: Any, n_items: int, n_labels: int) -> np.ndarray | None:
    """Validated (n_items, n_labels) probabilities, rows renormalised; None passes through."""
    if model_proba is None:
        return None
    proba = np.asarray(model_proba, dtype=np.float64)
    if proba.shape != (n_items, n_labels):
        raise ValueError(
            f"model_proba must have shape (items, labels) = ({n_items}, {n_labels}), "
            f"got {proba.shape}"
        )
    if not np.all(np.isfinite(proba)) or np.any(proba < 0):
        raise ValueError("model_proba must hold finite, non-negative probabilities")
    sums = proba.sum(axis=1, keepdims=True)
    if np.any(sums <= 0):
        raise ValueError(f"model_proba row {int(np.argmax(sums.ravel() <= 0))} sums to zero")
    return proba / sums


def log_item_prior(
    class_prior: np.ndarray, model_proba: np.ndarray | None, model_weight: float
) -> np.ndarray:
    """Each item's log prior over the true label: the model's probabilities raised to
    `model_weight` times the class prior raised to ``1 - model_weight`` (a geometric blend, so
    weight 1 trusts the calibrated model fully and weight 0 ignores it). Shape (N, K) or (1, K)."""
    return _model_term(model_proba, model_weight) + _class_term(
        class_prior, model_proba, model_weight
    )


def _model_term(model_proba: np.ndarray | None, model_weight: float) -> np.ndarray | float:
    """The part of the log item prior that EM does not change (computed once per fit)."""
    if model_proba is None or model_weight == 0:
        return 0.0
    return model_weight * np.log(np.maximum(model_proba, _FLOOR))


def _class_term(
    class_prior: np.ndarray, model_proba: np.ndarray | None, model_weight: float
) -> np.ndarray:
    share = 1.0 if model_proba is None else 1.0 - model_weight
    return share * np.log(np.maximum(class_prior, _FLOOR))[None, :]


def _at_top(scores: np.ndarray) -> np.ndarray:
    top = row_max(scores)[:, None]
    return scores >= top - 1e-12 * np.maximum(np.abs(top), 1.0)


def tied_rows(scores: np.ndarray) -> np.ndarray:
    """Rows whose maximum is shared by two labels or more."""
    return row_sum(_at_top(scores).astype(np.int64)) > 1


def _break_ties(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Index of each row's maximum, drawn at random among exact ties (label order would favour
    the first label)."""
    winner = scores.argmax(axis=1)
    tied = tied_rows(scores)
    if np.any(tied):
        at_top = _at_top(scores[tied])
        noise = rng.random(at_top.shape)
        winner[tied] = np.where(at_top, noise, -1.0).argmax(axis=1)
    return winner


# --------------------------------------------------------------------------- the estimator
class WeightedConsensus:
    """Final labels and annotator quality from the answers, gold labels and model probabilities.

    Parameters
    ----------
    method:
        ``"dawid_skene"`` (answers weighted by each annotator's estimated confusion matrix) or
        ``"majority"`` (one vote per answer; ties reported in ``tied_``).
    confusion:
        ``"auto"`` chooses per annotator by answer count (see the module docstring); or force
        ``"full"``, ``"class_conditional"`` or ``"one_coin"``.
    max_iter, tol:
        At most `max_iter` E-steps; stop once no posterior moves by `tol` in an iteration.
    model_weight:
        0..1, how far the item prior follows the model's calibrated probabilities rather than
        the class frequencies. 1 is exact Bayes if the model is calibrated *per item* and the
        annotators err independently of it; calibration from a few hundred gold items only holds
        on average, so the default stays below.
    smoothing:
        Pseudo-answers of the Dirichlet prior that pulls each confusion matrix toward the simpler
        structure (and a one-coin accuracy toward the crowd's).
    random_state:
        Seeds the choice among exactly tied labels.

    Fitted attributes: ``classes_`` (the label set), ``annotators_``, ``posterior_`` (items ×
    labels), ``consensus_`` (label of highest posterior), ``consensus_index_``, ``confidence_``
    (its posterior), ``tied_``, ``n_answers_`` (per item), ``class_prior_``, ``confusion_``
    (annotators × true × given), ``confusion_kind_``, ``typical_confusion_`` (answer-weighted
    mean, for annotators not seen in fitting), ``answer_correctness_`` (per answer, its
    posterior probability of being right, as in `AnnotatorQuality`; exact on gold items),
    ``annotator_quality_``, ``n_iter_``, ``converged_``.
    """

    def __init__(
        self,
        method: Method = "dawid_skene",
        *,
        confusion: ConfusionKind = "auto",
        model_weight: float = 0.7,
        smoothing: float = 2.0,
        max_iter: int = 300,
        tol: float = 1e-5,
        confidence: float = 0.95,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.method = method
        self.confusion = confusion
        self.model_weight = model_weight
        self.smoothing = smoothing
        self.max_iter = max_iter
        self.tol = tol
        self.confidence = confidence
        self.random_state = random_state

    # -- fitting ----------------------------------------------------------------------------
    def _check_params(self) -> None:
        if self.method not in ("dawid_skene", "majority"):
            raise ValueError("method must be 'dawid_skene' or 'majority'")
        if self.confusion not in ("auto", *KINDS):
            raise ValueError(f"confusion must be 'auto' or one of {KINDS}")
        if not 0.0 <= self.model_weight <= 1.0:
            raise ValueError("model_weight must lie in [0, 1]")
        if self.max_iter < 1:
            raise ValueError("max_iter must be at least 1")
        if self.smoothing <= 0:
            raise ValueError("smoothing must be positive")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError("confidence must lie strictly between 0 and 1")

    def fit(
        self,
        answers: Answers,
        *,
        gold: Any = None,
        model_proba: Any = None,
    ) -> WeightedConsensus:
        """Fit on `answers`; `gold` gives known labels (one per item, None where unknown, or a
        mapping position → label); `model_proba` is the model's calibrated (items × labels)
        probabilities in label-set order."""
        self._check_params()
        if not isinstance(answers, Answers):
            raise TypeError("answers must be an Answers (see Answers.from_records/from_matrix)")
        n_items, n_labels, n_annotators = answers.n_items, answers.n_labels, answers.n_annotators
        gold_code = gold_codes(gold, answers.labels, n_items)
        proba = check_proba(model_proba, n_items, n_labels)
        rng = np.random.default_rng(self.random_state)
        self.classes_ = np.asarray(answers.labels, dtype=object)
        self.annotators_ = list(answers.annotators)
        self.answers_ = answers
        self.n_answers_ = answers.answers_per_item()
        per_annotator = np.bincount(answers.annotator, minlength=n_annotators)
        if self.confusion == "auto":
            kinds = auto_confusion_kinds(per_annotator, n_labels)
        else:
            kinds = np.full(n_annotators, KINDS.index(self.confusion), dtype=np.int64)
        self.confusion_kind_ = [KINDS[k] for k in kinds]
        one_hot = sparse.csr_matrix(
            (
                np.ones(answers.n_answers),
                (answers.item, answers.annotator * n_labels + answers.label),
            ),
            shape=(n_items, n_annotators * n_labels),
        )
        is_gold = gold_code >= 0
        if self.method == "majority":
            posterior, scores, correctness = self._majority(answers, proba, gold_code)
            self.n_iter_, self.converged_ = 0, True
            self.class_prior_ = self._class_prior(posterior, is_gold)
            self.confusion_ = estimate_confusions(
                self._expected_counts(one_hot.T.tocsr(), posterior), kinds, self.smoothing
            )
        else:
            posterior = self._em(one_hot, answers, proba, gold_code, kinds)
            scores = posterior
            correctness = self._posterior_correctness(answers, posterior, gold_code)
        self.posterior_ = posterior
        self.consensus_index_ = _break_ties(scores, rng)
        self.tied_ = tied_rows(posterior)
        self.consensus_ = self.classes_[self.consensus_index_]
        self.confidence_ = posterior[np.arange(n_items), self.consensus_index_]
        self.answer_correctness_ = correctness
        weights = per_annotator / max(per_annotator.sum(), 1)
        if per_annotator.sum():
            self.typical_confusion_ = np.einsum("r,rkl->kl", weights, self.confusion_)
        else:
            self.typical_confusion_ = estimate_confusions(
                np.zeros((1, n_labels, n_labels)), np.zeros(1, np.int64), self.smoothing
            )[0]
        self.annotator_quality_ = self._quality(answers, is_gold, per_annotator)
        return self

    @staticmethod
    def _expected_counts(one_hot_t: sparse.csr_matrix, posterior: np.ndarray) -> np.ndarray:
        """(R, K, K) expected answers of each annotator per (true label, given label), from the
        transposed answer indicator (rows: annotator × given label)."""
        n_labels = posterior.shape[1]
        stacked = np.asarray(one_hot_t @ posterior)  # columns: true label
        return stacked.reshape(-1, n_labels, n_labels).transpose(0, 2, 1)

    @staticmethod
    def _class_prior(posterior: np.ndarray, informed: np.ndarray) -> np.ndarray:
        prior = informed.astype(np.float64) @ posterior + 1.0
        return prior / prior.sum()

    def _em(
        self,
        one_hot: sparse.csr_matrix,
        answers: Answers,
        proba: np.ndarray | None,
        gold_code: np.ndarray,
        kinds: np.ndarray,
    ) -> np.ndarray:
        """EM from the soft vote (the model voting with `model_weight`), gold rows fixed.

        Plain EM crawls when answers are sparse (a hundred steps for three answers per item), so
        its steps are extrapolated by SQUAREM (Varadhan & Roland 2008, Scand. J. Statist. 35),
        keeping an extrapolated step only when it does not lower the likelihood of a plain one.
        """
        n_labels = answers.n_labels
        is_gold = gold_code >= 0
        gold_rows = np.eye(n_labels)[gold_code[is_gold]]
        informed = (is_gold | (self.n_answers_ > 0)).astype(np.float64)
        one_hot_t = one_hot.T.tocsr()
        model_term = _model_term(proba, self.model_weight)
        blended = proba is not None and 0.0 < self.model_weight < 1.0
        n_confusion = answers.n_annotators * n_labels * n_labels
        e_steps = 0

        def unpack(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return theta[:n_confusion].reshape(-1, n_labels, n_labels), theta[n_confusion:]

        def maximise(posterior: np.ndarray) -> np.ndarray:
            counts = self._expected_counts(one_hot_t, posterior)
            confusion = estimate_confusions(counts, kinds, self.smoothing)
            return np.concatenate([confusion.ravel(), self._class_prior(posterior, informed)])

        def expect(theta: np.ndarray) -> tuple[np.ndarray, float]:
            """Posterior and log-likelihood (answers and gold labels) under `theta`."""
            nonlocal e_steps
            e_steps += 1
            confusion, prior = unpack(theta)
            log_prior = model_term + _class_term(prior, proba, self.model_weight)
            if blended:  # a geometric blend is not normalised
                log_prior = log_prior - logsumexp_rows(log_prior)[:, None]
            log_joint = one_hot @ np.log(confusion).transpose(0, 2, 1).reshape(-1, n_labels)
            log_joint += log_prior
            log_evidence = logsumexp_rows(log_joint)
            posterior = np.exp(log_joint - log_evidence[:, None])
            log_like = log_evidence[~is_gold].sum() + log_joint[is_gold, gold_code[is_gold]].sum()
            posterior[is_gold] = gold_rows
            return posterior, float(log_like)

        def project(theta: np.ndarray) -> np.ndarray:
            """Back into the parameter space after an extrapolation."""
            confusion, prior = unpack(np.maximum(theta, _FLOOR))
            confusion = confusion / confusion.sum(axis=2, keepdims=True)
            return np.concatenate([confusion.ravel(), prior / prior.sum()])

        start = answers.votes().astype(np.float64)
        if proba is not None:
            start += self.model_weight * proba
        start[row_sum(start) == 0] = 1.0
        theta = maximise(start / row_sum(start)[:, None])
        posterior, _ = expect(theta)
        self.converged_ = False
        while e_steps < self.max_iter:
            theta_1 = maximise(posterior)
            posterior_1, _ = expect(theta_1)
            theta_2 = maximise(posterior_1)
            step = (theta_2, *expect(theta_2))
            r, v = theta_1 - theta, theta_2 - 2.0 * theta_1 + theta
            v_norm = float(np.linalg.norm(v))
            alpha = min(-float(np.linalg.norm(r)) / v_norm, -1.0) if v_norm > 0 else -1.0
            if alpha < -1.0 and e_steps + 2 <= self.max_iter:
                jump = project(theta - 2.0 * alpha * r + alpha**2 * v)
                jump = maximise(expect(jump)[0])  # a plain step from the jump steadies it
                trial = (jump, *expect(jump))
                if trial[2] >= step[2] - 1e-9 * abs(step[2]):
                    step = trial
            change = float(np.abs(step[1] - posterior).max()) if posterior.size else 0.0
            theta, posterior = step[0], step[1]
            if change < self.tol:
                self.converged_ = True
                break
        self.n_iter_ = e_steps
        confusion, self.class_prior_ = unpack(theta)
        self.confusion_ = confusion.copy()
        return posterior

    @staticmethod
    def _posterior_correctness(
        answers: Answers, posterior: np.ndarray, gold_code: np.ndarray
    ) -> np.ndarray:
        """Per answer, the posterior probability that it is right (exact on gold items).

        Averaged over an annotator's answers this estimates their accuracy without bias when the
        model holds (the answer is part of what the posterior conditions on). Leaving the answer
        out would not: an item's other answers alone say too little when there are one or two.
        """
        correctness = posterior[answers.item, answers.label]
        on_gold = gold_code[answers.item] >= 0
        correctness[on_gold] = answers.label[on_gold] == gold_code[answers.item[on_gold]]
        return correctness

    def _majority(
        self, answers: Answers, proba: np.ndarray | None, gold_code: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Vote shares; the model's probabilities only break ties and stand in for items with
        no answer. Returns the posterior, the scores the label is chosen by, the correctness."""
        votes = answers.votes().astype(np.float64)
        n = self.n_answers_
        is_gold = gold_code >= 0
        fallback = proba if proba is not None else np.full_like(votes, 1.0 / votes.shape[1])
        posterior = np.where(n[:, None] > 0, votes / np.maximum(n, 1)[:, None], fallback).astype(
            np.float64
        )
        posterior[is_gold] = np.eye(votes.shape[1])[gold_code[is_gold]]
        scores = posterior + (0.0 if proba is None else 1e-6 * proba)  # ties go to the model
        shared = n[answers.item] - 1
        correctness = np.divide(
            votes[answers.item, answers.label] - 1,
            shared,
            out=np.full(answers.n_answers, np.nan),
            where=shared > 0,
        )
        on_gold = is_gold[answers.item]
        correctness[on_gold] = answers.label[on_gold] == gold_code[answers.item[on_gold]]
        return posterior, scores, correctness

    def _quality(
        self, answers: Answers, is_gold: np.ndarray, per_annotator: np.ndarray
    ) -> list[AnnotatorQuality]:
        n_annotators = answers.n_annotators
        correctness = self.answer_correctness_
        on_gold = is_gold[answers.item]
        judged = ~on_gold & np.isfinite(correctness)

        def sums(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            who = answers.annotator[mask]
            return (
                np.bincount(who, weights=correctness[mask], minlength=n_annotators),
                np.bincount(who, minlength=n_annotators),
            )

        gold_right, gold_n = sums(on_gold)
        consensus_right, consensus_n = sums(judged)
        modelled = np.einsum("k,rkk->r", self.class_prior_, self.confusion_)
        return [
            AnnotatorQuality(
                name,
                int(per_annotator[r]),
                int(gold_n[r]),
                jeffreys_interval(gold_right[r], gold_n[r], self.confidence),
                jeffreys_interval(consensus_right[r], consensus_n[r], self.confidence),
                float(modelled[r]),
                self.confusion_kind_[r],
            )
            for r, name in enumerate(self.annotators_)
        ]

    # -- using the fit ----------------------------------------------------------------------
    def drift(self, window: int = 50) -> list[AnnotatorDrift]:
        """Each annotator's accuracy in windows of `window` consecutive answers (time order),
        scored like ``annotator_quality_`` (exact on gold items, the consensus elsewhere)."""
        if window < 1:
            raise ValueError("window must be at least 1")
        answers, correctness = self.answers_, self.answer_correctness_
        scored = np.isfinite(correctness)
        result = []
        for r, name in enumerate(self.annotators_):
            rows = np.flatnonzero((answers.annotator == r) & scored)
            values = correctness[rows[np.argsort(answers.order[rows], kind="stable")]]
            windows = []
            for first in range(0, values.size, window):
                part = values[first : first + window]
                accuracy = jeffreys_interval(float(part.sum()), part.size, self.confidence)
                windows.append(DriftWindow(first, int(part.size), accuracy))  # type: ignore[arg-type]
            change = None
            if len(windows) > 1:
                last = values[windows[-1].first :]
                earlier = values[: windows[-1].first]
                change = _difference(last, earlier, self.confidence)
            result.append(AnnotatorDrift(name, windows, change))
        return result

    def annotator_model(self) -> dict[str, Any]:
        """What `posterior_of` needs, as JSON values: a store keeps it so that an answer arriving
        between two refits is weighed at once, without refitting (`from_annotator_model`)."""
        return {
            "method": self.method,
            "model_weight": self.model_weight,
            "labels": list(self.classes_.tolist()),
            "annotators": list(self.annotators_),
            "class_prior": self.class_prior_.tolist(),
            "confusion": self.confusion_.tolist(),
            "typical_confusion": self.typical_confusion_.tolist(),
        }

    @classmethod
    def from_annotator_model(cls, state: dict[str, Any]) -> WeightedConsensus:
        """A fitted model for `posterior_of` from `annotator_model`'s values."""
        model = cls(state["method"], model_weight=float(state["model_weight"]))
        model.classes_ = np.asarray(state["labels"], dtype=object)
        model.annotators_ = [str(a) for a in state["annotators"]]
        model.class_prior_ = np.asarray(state["class_prior"], dtype=np.float64)
        model.confusion_ = np.asarray(state["confusion"], dtype=np.float64).reshape(
            len(model.annotators_), model.classes_.size, model.classes_.size
        )
        model.typical_confusion_ = np.asarray(state["typical_confusion"], dtype=np.float64)
        return model

    def posterior_of(
        self,
        annotators: Sequence[str],
        labels: Sequence[Any],
        model_proba: Any = None,
    ) -> np.ndarray:
        """(K,) posterior of one item from its answers so far, with the fitted annotator model:
        what a newly arrived answer does before the next refit. Annotators not seen in fitting
        count as typical ones."""
        n_labels = self.classes_.size
        codes = [list(self.classes_).index(v) if v in list(self.classes_) else -1 for v in labels]
        if len(codes) != len(annotators):
            raise ValueError("one annotator per label is needed")
        if -1 in codes:
            bad = labels[codes.index(-1)]
            raise ValueError(f"label {bad!r} is not in the label set {list(self.classes_)!r}")
        proba = check_proba(
            None if model_proba is None else np.reshape(model_proba, (1, -1)), 1, n_labels
        )
        if self.method == "majority":
            if not codes:
                return proba[0] if proba is not None else np.full(n_labels, 1.0 / n_labels)
            return np.bincount(codes, minlength=n_labels) / len(codes)
        log_post = log_item_prior(self.class_prior_, proba, self.model_weight)[0].copy()
        index = {name: r for r, name in enumerate(self.annotators_)}
        for who, code in zip(annotators, codes, strict=True):
            name = str(who)  # names are kept as text, as `Answers` stores them
            matrix = self.confusion_[index[name]] if name in index else self.typical_confusion_
            log_post += np.log(matrix[:, code])
        return softmax_rows(log_post[None, :])[0]


def _difference(a: np.ndarray, b: np.ndarray, confidence: float) -> Interval:
    """Mean of `a` minus mean of `b`, with a normal-approximation interval."""
    mean_a, mean_b = float(a.mean()), float(b.mean())
    spread = float(
        np.sqrt(
            max(mean_a * (1 - mean_a), 1e-12) / a.size + max(mean_b * (1 - mean_b), 1e-12) / b.size
        )
    )
    z = float(stats.norm.ppf(0.5 + confidence / 2.0))
    diff = mean_a - mean_b
    return Interval(diff, diff - z * spread, diff + z * spread)
