"""A labeler that needs no labeled item: each item's embedding against its labels' embeddings.

Every label stands for a few texts — its name, its description and the guideline lines that name
it — embedded with the same model as the items and averaged into one unit vector (a prototype).
An item's cosine similarity to each prototype becomes a probability by a softmax. Before it, each
label's similarities are centred over the items at hand: a prototype that is close to every item
(a generic name such as "other") would otherwise win everywhere, and centring removes that bias
without any label. The temperature is fixed: in the stack, the component's weight rescales it.

Pure computation, arrays in and out; the embedder is passed in. Its version changes with the
embedder, the label texts and the method, so a project's guidelines change it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
from scipy.special import softmax

from .base import LabelTask, clean_text, normalise_label, stable_hash

__all__ = [
    "TEMPERATURE",
    "ZeroShotLabeler",
    "label_texts",
    "zero_shot_proba",
]

#: Softmax temperature on centred cosine similarities (MiniLM gaps between labels are ~0.02–0.1).
TEMPERATURE = 0.02
MAX_TEXT_CHARS = 500
MAX_GUIDELINE_LINES = 8
METHOD = "prototype-centred-v2"


def _guideline_lines(guidelines: str, label: str) -> list[str]:
    """Guideline lines (paragraphs, bullets, headings) that name `label` as a word."""
    key = normalise_label(label)
    pattern = re.compile(rf"(?<!\w){re.escape(key)}(?!\w)")
    found = []
    for line in re.split(r"\n+", guidelines):
        text = line.strip().lstrip("#*->0123456789. ").strip()
        if text and pattern.search(normalise_label(text)):
            found.append(clean_text(text, MAX_TEXT_CHARS)[0])
    return found[:MAX_GUIDELINE_LINES]


def label_texts(task: LabelTask) -> list[list[str]]:
    """For each label in order: the texts that stand for it (never empty). The name comes after
    the task's own description, which says what kind of label it is ("the topic of ... sport")."""
    out = []
    intro = clean_text(task.description.strip(), MAX_TEXT_CHARS)[0]
    for label in task.labels:
        texts = [f"{intro} {label.replace('_', ' ')}".strip()]
        description = task.label_descriptions.get(label, "").strip()
        if description:
            texts.append(f"{label}: {clean_text(description, MAX_TEXT_CHARS)[0]}")
        if task.guidelines.strip():
            texts.extend(_guideline_lines(task.guidelines, label))
        out.append(texts)
    return out


def prototypes(embedded: Sequence[np.ndarray]) -> np.ndarray:
    """One unit vector per label: the normalised mean of its texts' unit vectors."""
    rows = []
    for vectors in embedded:
        v = np.asarray(vectors, dtype=np.float64)
        v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        mean = v.mean(axis=0)
        rows.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
    return np.vstack(rows)


def zero_shot_proba(
    X: np.ndarray, label_vectors: np.ndarray, temperature: float = TEMPERATURE
) -> np.ndarray:
    """Per-label probabilities, shape (n, K), from item vectors X (n, d) and prototypes (K, d).

    Similarities are centred per label over the rows of X (the pool at hand), then softmaxed."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, not {temperature}")
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or label_vectors.ndim != 2 or X.shape[1] != label_vectors.shape[1]:
        raise ValueError(f"shapes do not match: items {X.shape}, labels {label_vectors.shape}")
    norms = np.maximum(np.linalg.norm(X, axis=1), 1e-12).astype(np.float64)
    sims = (X @ label_vectors.T.astype(np.float32)).astype(np.float64) / norms[:, None]
    if len(sims):
        sims = sims - sims.mean(axis=0, keepdims=True)
    return softmax(sims / temperature, axis=1)


@dataclass
class ZeroShotLabeler:
    """The zero-shot labeler for one task and one embedder: prototypes computed once."""

    task: LabelTask
    embedder: Any
    temperature: float = TEMPERATURE

    def __post_init__(self) -> None:
        texts = label_texts(self.task)
        flat = [t for group in texts for t in group]
        vectors = np.asarray(self.embedder.embed(flat), dtype=np.float64)
        bounds = np.cumsum([0, *map(len, texts)])
        self.label_vectors = prototypes([vectors[a:b] for a, b in pairwise(bounds)])
        self.version = stable_hash(METHOD, self.temperature, self.embedder.model_id, texts)

    @property
    def model_id(self) -> str:
        return "zero-shot"

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probabilities for the items whose embeddings (by the same embedder) are X."""
        return zero_shot_proba(X, self.label_vectors, self.temperature)
