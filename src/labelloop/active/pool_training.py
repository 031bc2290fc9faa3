"""Students that learn from more than the trusted labels.

Two cheap ways to get more out of a pool where few items carry a person's label:

- **soft labels for the unlabeled items** (self-training / distillation, as in FreeAL and
  HAST): the stack's probabilities for items no person labeled become extra training rows,
  one row per (item, label) weighted by that label's probability, so a confident item counts
  almost fully for its label and an uncertain one is spread thin instead of being forced
  into a hard, possibly wrong, label;
- **word and character n-grams fitted on the pool** (TF-IDF), a second student beside the one
  on sentence embeddings: on topic corpora the words themselves often say more than a frozen
  sentence vector, and the stack weighs the two on the trusted labels.

Pure computations on arrays and texts; `workflows.learn` decides when to use them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

__all__ = ["SoftLabels", "ngram_features", "soft_labels"]

#: A label's share below which its duplicated row is not worth its cost.
MIN_SHARE = 1e-3


@dataclass(frozen=True)
class SoftLabels:
    """Extra training rows: pool row index, label index and sample weight, one per entry."""

    rows: NDArray[np.intp]
    labels: NDArray[np.intp]
    weights: NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.rows)

    @classmethod
    def empty(cls) -> SoftLabels:
        return cls(np.zeros(0, np.intp), np.zeros(0, np.intp), np.zeros(0, np.float64))


def soft_labels(
    proba: NDArray[np.floating],
    candidates: NDArray[np.bool_],
    *,
    min_confidence: float = 0.0,
    max_items: int | None = None,
    weight: float = 1.0,
) -> SoftLabels:
    """Soft training rows for the `candidates` (items without a trusted label).

    Items whose top probability is below `min_confidence` are left out; of the rest, the
    `max_items` most confident are kept (so the people's labels are never outweighed by
    guesses on a huge pool). Each kept item yields one row per label holding at least
    `MIN_SHARE` of its probability, weighted by that probability times `weight`.
    """
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or len(proba) != len(candidates):
        raise ValueError("proba must have one row per pool item")
    if not 0.0 <= min_confidence <= 1.0 or weight < 0:
        raise ValueError("min_confidence must lie in [0, 1] and weight be non-negative")
    usable = np.asarray(candidates, dtype=bool) & np.isfinite(proba).all(axis=1)
    confidence = np.where(usable, proba.max(axis=1, initial=0.0), -1.0)
    chosen = np.flatnonzero(usable & (confidence >= min_confidence))
    if max_items is not None and len(chosen) > max_items:
        order = np.argsort(-confidence[chosen], kind="stable")
        chosen = np.sort(chosen[order[: max(0, max_items)]])
    if len(chosen) == 0 or weight == 0:
        return SoftLabels.empty()
    shares = proba[chosen] / proba[chosen].sum(axis=1, keepdims=True)
    item, label = np.nonzero(shares >= MIN_SHARE)
    return SoftLabels(
        rows=chosen[item].astype(np.intp),
        labels=label.astype(np.intp),
        weights=shares[item, label] * weight,
    )


def ngram_features(
    texts: Sequence[str], *, max_features: int = 50_000, fit_on: int = 20_000, seed: int = 0
) -> sp.csr_matrix:
    """TF-IDF of word 1–2-grams and character 2–5-grams within words, fitted on the pool.

    The vocabulary comes from at most `fit_on` texts drawn at random (a 100,000-item pool
    costs a sample's fit and one pass to transform); each half is L2-normalised and scaled
    by 1/√2, so neither outweighs the other in a linear model and a row's norm is at most 1.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize

    texts = [t if isinstance(t, str) else "" for t in texts]
    rng = np.random.default_rng(seed)
    sample = texts
    if len(texts) > fit_on:
        sample = [texts[i] for i in rng.choice(len(texts), size=fit_on, replace=False)]
    min_df = 2 if len(sample) >= 50 else 1
    parts = []
    for analyzer, ngrams in (("word", (1, 2)), ("char_wb", (2, 5))):
        vectorizer = TfidfVectorizer(
            analyzer=analyzer,
            ngram_range=ngrams,
            min_df=min_df,
            max_features=max_features,
            sublinear_tf=True,
            strip_accents="unicode",
            lowercase=True,
            dtype=np.float32,
        )
        try:
            vectorizer.fit(sample)
        except ValueError:  # an empty vocabulary: no text holds a usable token
            continue
        parts.append(normalize(vectorizer.transform(texts)))
    if not parts:
        return sp.csr_matrix((len(texts), 1), dtype=np.float32)
    out = sp.hstack(parts, format="csr")
    out.data *= np.float32(1 / np.sqrt(len(parts)))
    return out
