"""Adaptive overlap: ask for another answer only while an item's label is still uncertain.

A fixed overlap of three pays three people for every item, including the many that the first
answer, from a reliable annotator agreeing with a confident model, already settles. The rule here
reads the item's posterior over the true label (from :class:`WeightedConsensus`: the answers so
far weighted by who gave them, with the model's calibrated probabilities as prior) and stops once
the leading label's posterior reaches `target`, or at `max_answers`.

Which uncertain item to send next follows ActiveLab (Goh & Mueller 2023, arXiv:2301.11856):
spend the next answer where it is expected to do the most good. Here that is the expected gain in
the probability that the item's final label is right per answer from typical annotators, looking
one and two answers ahead: a single answer often cannot overturn a leaning label while two can,
and a one-step look-ahead would then never come back to the item (the myopia of one-step value
of information). Ties go to the least certain item. A fixed overlap of k is the same policy with
``min_answers = max_answers = k``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labelloop.agreement.consensus import row_max


def _as_rows(posterior: np.ndarray, n_answers: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
    post = np.atleast_2d(np.asarray(posterior, dtype=np.float64))
    counts = np.broadcast_to(np.asarray(n_answers, dtype=np.int64), post.shape[:1])
    if post.ndim != 2 or post.shape[1] < 2:
        raise ValueError("posterior must be (items, labels) with at least two labels")
    return post, counts


def expected_gain(posterior: np.ndarray, confusion: np.ndarray, n_answers: int = 1) -> np.ndarray:
    """(N,) expected rise of the leading label's posterior after `n_answers` (1 or 2) more
    answers from annotators with `confusion` (K × K, rows: true label), never negative:
    Σ over the answers they may give of max_k p_k Π π_k·, minus max_k p_k.

    This is the expected gain in accuracy of the item's final label from those answers.
    """
    post = np.atleast_2d(np.asarray(posterior, dtype=np.float64))
    confusion = np.asarray(confusion, dtype=np.float64)
    n_labels = post.shape[1]
    if confusion.shape != (n_labels, n_labels):
        raise ValueError("confusion must be labels × labels")
    if n_answers not in (1, 2):
        raise ValueError("n_answers must be 1 or 2")
    after = np.zeros(post.shape[0])
    for first in range(n_labels):  # one (N, K) pass per possible answer (pair)
        joint = post * confusion[:, first]
        if n_answers == 1:
            after += row_max(joint)
            continue
        for second in range(first, n_labels):  # pairs are unordered: count (a, b) twice
            after += (1 if second == first else 2) * row_max(joint * confusion[:, second])
    return np.maximum(after - row_max(post), 0.0)


@dataclass(frozen=True)
class OverlapPolicy:
    """When an item needs another answer, and which items need one most.

    An item needs another answer while it has fewer than `min_answers`, or while the posterior
    of its leading label is below `target` and it has fewer than `max_answers`. Gold items are
    checks, not work: the caller leaves them out.
    """

    target: float = 0.95
    max_answers: int = 5
    min_answers: int = 1
    lookahead: int = 2

    def __post_init__(self) -> None:
        if self.lookahead not in (1, 2):
            raise ValueError("lookahead must be 1 or 2")
        if not 0.0 < self.target <= 1.0:
            raise ValueError("target must lie in (0, 1]")
        if self.min_answers < 0 or self.max_answers < max(self.min_answers, 1):
            raise ValueError("need 0 <= min_answers <= max_answers and max_answers >= 1")

    @classmethod
    def fixed(cls, overlap: int) -> OverlapPolicy:
        """The classic fixed overlap: exactly `overlap` answers per item."""
        return cls(target=1.0, max_answers=overlap, min_answers=overlap)

    def needs_more(self, posterior: np.ndarray, n_answers: np.ndarray | int) -> np.ndarray:
        """(N,) whether each item (a row of `posterior`) should get another answer."""
        post, counts = _as_rows(posterior, n_answers)
        settled = row_max(post) >= self.target
        return (counts < self.min_answers) | ((counts < self.max_answers) & ~settled)

    def priority(
        self,
        posterior: np.ndarray,
        n_answers: np.ndarray | int,
        confusion: np.ndarray | None = None,
    ) -> np.ndarray:
        """(N,) how useful another answer is: the expected gain in the final label's accuracy per
        answer, the best over the next one or `lookahead` answers (see :func:`expected_gain`);
        with no `confusion`, the uncertainty 1 − max posterior. +inf below `min_answers`, −inf
        where no answer is needed."""
        post, counts = _as_rows(posterior, n_answers)
        if confusion is None:
            score = 1.0 - row_max(post)
        else:
            score = expected_gain(post, confusion)
            if self.lookahead == 2:
                score = np.maximum(score, expected_gain(post, confusion, 2) / 2.0)
        score = np.where(counts < self.min_answers, np.inf, score)
        return np.where(self.needs_more(post, counts), score, -np.inf)

    def queue(
        self,
        posterior: np.ndarray,
        n_answers: np.ndarray | int,
        confusion: np.ndarray | None = None,
        limit: int | None = None,
    ) -> np.ndarray:
        """Positions of the items that need another answer, most useful first (ties: the least
        certain first, then position); at most `limit` of them."""
        post, counts = _as_rows(posterior, n_answers)
        score = self.priority(post, counts, confusion)
        waiting = np.flatnonzero(score > -np.inf)
        order = np.lexsort((waiting, row_max(post[waiting]), -score[waiting]))
        picked = waiting[order]
        return picked if limit is None else picked[:limit]
