"""Learning-curve simulation on a labeled file: gold labels play the annotator."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..active import get_embedder, plot_learning_curves
from ..active import simulate as run_simulation
from ..active.strategies import STRATEGIES
from ..data.readers import read_file
from ..errors import InputError
from ..review.common import Result


@dataclass(frozen=True, slots=True)
class Simulated(Result):
    """A simulation on a labeled file: the curves `labelloop.active.simulate` measured (its
    `strategies`, accuracies and settings, sent first and flat), the file's size and labels,
    the embedder, and the plot when one was drawn."""

    curves: dict[str, Any]
    items: int
    labels: list[str]
    embedder: str
    plot: str | None = None

    def to_dict(self) -> dict[str, Any]:
        sent = {**self.curves, "items": self.items, "labels": self.labels}
        sent["embedder"] = self.embedder
        if self.plot is not None:
            sent["plot"] = self.plot
        return sent


def load_labeled(file: str | Path, text_col: str, label_col: str) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for line, record in read_file(file):
        text, label = record.get(text_col), record.get(label_col)
        if not isinstance(text, str) or not text.strip():
            raise InputError(
                "the text is missing or empty", file=str(file), line=line, column=text_col
            )
        if label is None or str(label).strip() == "":
            raise InputError(
                "every row needs a label for the simulation",
                file=str(file),
                line=line,
                column=label_col,
            )
        texts.append(text)
        labels.append(str(label).strip())
    if len(set(labels)) < 2:
        raise InputError("the simulation needs at least two distinct labels", file=str(file))
    return texts, labels


def simulate(
    file: str | Path,
    strategies: list[str],
    *,
    text_col: str = "text",
    label_col: str = "label",
    seed_size: int = 20,
    batch: int = 20,
    rounds: int = 10,
    repeats: int = 5,
    target_fraction: float = 0.95,
    cold_start: bool = False,
    plot: str | Path | None = None,
    embedder: Any = None,
    random_state: int = 0,
) -> Simulated:
    """Learning curves, area under them and labels to reach the target, per strategy."""
    unknown = [name for name in strategies if name not in STRATEGIES]
    if unknown or not strategies:
        raise InputError(
            f"unknown strategy {', '.join(unknown) or '(none given)'}; choose from "
            + ", ".join(STRATEGIES)
        )
    for name, value in (
        ("--seed-size", seed_size),
        ("--batch", batch),
        ("--rounds", rounds),
        ("--repeats", repeats),
    ):
        if value < 1:
            raise InputError(f"{name} must be at least 1, not {value}")
    texts, labels = load_labeled(file, text_col, label_col)
    needed = seed_size + batch * rounds
    if needed > 0.75 * len(texts):
        raise InputError(
            f"the simulation labels up to {needed} items but the pool (75% of {len(texts)} rows)"
            " is smaller; lower --rounds, --batch or --seed-size"
        )
    embedder = embedder or get_embedder("auto")
    X = embedder.fit(texts).embed(texts) if hasattr(embedder, "fit") else embedder.embed(texts)
    names = sorted(set(labels))
    y = np.array([names.index(label) for label in labels])
    curves = run_simulation(
        X,
        y,
        strategies,
        seed_size=seed_size,
        batch=batch,
        rounds=rounds,
        repeats=repeats,
        target_fraction=target_fraction,
        cold_start=cold_start,
        random_state=random_state,
    )
    drawn = None
    if plot is not None:
        drawn = str(plot_learning_curves(curves, plot, title=Path(file).name))
    return Simulated(curves, len(texts), names, embedder.model_id, drawn)
