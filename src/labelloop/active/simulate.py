"""Simulated active learning: gold labels play the human, so strategies can be compared on a
user's own data before anyone labels anything."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.integrate import trapezoid
from sklearn.base import clone
from sklearn.model_selection import train_test_split

from labelloop.active.loop import select_round
from labelloop.active.strategies import QueryStrategy, get_strategy
from labelloop.active.students import LogisticStudent, Student


def simulate(
    X: np.ndarray,
    y: np.ndarray,
    strategies: Sequence[str | QueryStrategy],
    *,
    seed_size: int = 20,
    batch: int = 20,
    rounds: int = 10,
    repeats: int = 5,
    test_size: float = 0.25,
    target_fraction: float = 0.95,
    student: Student | None = None,
    llm_proba: np.ndarray | None = None,
    committee_size: int = 5,
    cold_start: bool = False,
    random_state: int = 0,
) -> dict[str, Any]:
    """Learning curves of each strategy, averaged over `repeats` random test splits and seeds.

    Every repeat draws one held-out test split and one random seed set shared by all
    strategies (a paired comparison). With `cold_start` each strategy instead picks its own
    first `seed_size` items from nothing labeled, as it would on a new project (typical,
    varied items by k-means for most; random picks at random).

    Returns the `simulate --json` shape: `strategies` maps each name to its `curve` (`labels`,
    `accuracy_mean`, `accuracy_std`), `aulc` (mean accuracy over the labeled range, i.e. the
    area under the curve normalised by its width), `labels_to_target` (first point where
    mean accuracy reaches `target_fraction` of the same student trained on the whole pool;
    None if never reached) and `accuracy_by_repeat` (each repeat's curve, from which
    `labels_ratio_interval` says how sure the comparison with a baseline is).
    """
    X, y = np.asarray(X), np.asarray(y)
    classes = np.unique(y)
    student = student if student is not None else LogisticStudent(classes=classes)
    chosen = [get_strategy(s) if isinstance(s, str) else s for s in strategies]
    names = _unique_names(chosen)
    accuracy = {name: np.zeros((repeats, rounds + 1)) for name in names}
    full = np.zeros(repeats)
    labels = np.zeros(rounds + 1, dtype=int)
    for r in range(repeats):
        rng = np.random.RandomState(random_state + r)
        split = _split(len(y), y, test_size, rng)
        pool, test = split
        model = clone(student).fit(X[pool], y[pool])
        full[r] = np.mean(model.predict(X[test]) == y[test])
        seed = rng.choice(len(pool), size=min(seed_size, len(pool)), replace=False)
        llm_pool = None if llm_proba is None else np.asarray(llm_proba)[pool]
        for name, strategy in zip(names, chosen, strict=True):
            if cold_start:
                seed = strategy.select(
                    seed_size,
                    embeddings=X[pool],
                    labeled_mask=np.zeros(len(pool), dtype=bool),
                    random_state=rng.randint(2**31 - 1),
                )
            curve, counts = _run(
                strategy,
                student,
                X[pool],
                y[pool],
                X[test],
                y[test],
                seed,
                batch,
                rounds,
                llm_pool,
                committee_size,
                rng.randint(2**31 - 1),
            )
            accuracy[name][r] = curve
            labels = counts
    target = target_fraction * float(full.mean())
    result = {name: _summarise(labels, accuracy[name], target) for name in names}
    return {
        "strategies": result,
        "full_accuracy": float(full.mean()),
        "target_accuracy": target,
        "settings": {
            "seed_size": seed_size,
            "batch": batch,
            "rounds": rounds,
            "repeats": repeats,
            "test_size": test_size,
            "target_fraction": target_fraction,
            "cold_start": cold_start,
            "random_state": random_state,
            "pool_size": len(y),
        },
    }


def _run(
    strategy: QueryStrategy,
    student: Student,
    X: np.ndarray,
    y: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    seed: np.ndarray,
    batch: int,
    rounds: int,
    llm_proba: np.ndarray | None,
    committee_size: int,
    random_state: int,
) -> tuple[np.ndarray, np.ndarray]:
    """One strategy from one seed set: test accuracy and label count after every round."""
    labeled = np.zeros(len(y), dtype=bool)
    labeled[seed] = True
    curve, counts = np.zeros(rounds + 1), np.zeros(rounds + 1, dtype=int)
    for round_ in range(rounds + 1):
        counts[round_] = labeled.sum()
        if round_ == rounds or labeled.all():
            model = clone(student).fit(X[labeled], y[labeled])
            curve[round_] = np.mean(model.predict(X_test) == y_test)
            curve[round_ + 1 :], counts[round_ + 1 :] = curve[round_], counts[round_]
            break
        step = select_round(
            strategy,
            X,
            labeled,
            y,
            batch,
            student=student,
            llm_proba=llm_proba,
            committee_size=committee_size,
            evaluate=False,
            random_state=random_state + round_,
        )
        curve[round_] = np.mean(step.model.predict(X_test) == y_test)
        labeled[step.selected] = True
    return curve, counts


def _split(
    n: int, y: np.ndarray, test_size: float, rng: np.random.RandomState
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified pool/test split when every class can be split, plain otherwise."""
    _, counts = np.unique(y, return_counts=True)
    stratify = y if counts.min() >= 2 else None
    pool, test = train_test_split(
        np.arange(n), test_size=test_size, stratify=stratify, random_state=rng
    )
    return np.sort(pool), np.sort(test)


def _unique_names(strategies: Sequence[QueryStrategy]) -> list[str]:
    names: list[str] = []
    for s in strategies:
        name, i = s.name, 2
        while name in names:
            name, i = f"{s.name}-{i}", i + 1
        names.append(name)
    return names


def _summarise(labels: np.ndarray, accuracy: np.ndarray, target: float) -> dict[str, Any]:
    mean, std = accuracy.mean(axis=0), accuracy.std(axis=0)
    width = labels[-1] - labels[0]
    aulc = float(trapezoid(mean, labels) / width) if width > 0 else float(mean[0])
    reached = _crossing(mean[None, :], labels, target)[0]
    return {
        "curve": [
            {"labels": int(n), "accuracy_mean": float(m), "accuracy_std": float(s)}
            for n, m, s in zip(labels, mean, std, strict=True)
        ],
        "aulc": aulc,
        "labels_to_target": int(reached) if np.isfinite(reached) else None,
        "accuracy_by_repeat": accuracy.tolist(),
    }


def labels_ratio_interval(
    result: dict[str, Any],
    strategy: str,
    baseline: str = "random",
    level: float = 0.9,
    n_boot: int = 2000,
    random_state: int = 0,
) -> tuple[float, float] | None:
    """Bootstrap interval of `strategy`'s labels to target divided by `baseline`'s.

    Repeats are resampled in pairs (both strategies saw the same test split in a repeat), the
    mean curves recomputed and the crossing points read off as for `labels_to_target`. Where
    the target sits on a flat stretch of the curves, a small change of accuracy moves the
    crossing by many labels, and the interval says so. A resample where a curve never reaches
    the target counts that strategy as needing more labels than were simulated (ratio +inf or
    0). None without per-repeat curves or when neither ever reaches the target.
    """
    chosen, base = result["strategies"][strategy], result["strategies"][baseline]
    if "accuracy_by_repeat" not in chosen or "accuracy_by_repeat" not in base:
        return None
    a, b = np.asarray(chosen["accuracy_by_repeat"]), np.asarray(base["accuracy_by_repeat"])
    labels = np.array([p["labels"] for p in chosen["curve"]], dtype=np.float64)
    target = result["target_accuracy"]
    rng = np.random.default_rng(random_state)
    rows = rng.integers(0, a.shape[0], size=(n_boot, a.shape[0]))
    with np.errstate(invalid="ignore"):
        ratios = _crossing(a[rows].mean(axis=1), labels, target) / _crossing(
            b[rows].mean(axis=1), labels, target
        )
    ratios = ratios[~np.isnan(ratios)]  # neither reached the target: no ratio
    if ratios.size == 0:
        return None
    # No interpolation: a bound may be +inf (the strategy often never reached the target).
    low, high = np.quantile(ratios, [(1 - level) / 2, (1 + level) / 2], method="inverted_cdf")
    return float(low), float(high)


def _crossing(curves: np.ndarray, labels: np.ndarray, target: float) -> np.ndarray:
    """First label count where each mean curve (one per row) reaches `target`; inf if never."""
    reached = curves >= target
    first = reached.argmax(axis=1)
    return np.where(reached.any(axis=1), labels[first], np.inf)


def format_simulation(result: dict[str, Any]) -> str:
    """A plain-text table of the simulation for the terminal."""
    lines = [
        f"full-pool accuracy {result['full_accuracy']:.3f}; target {result['target_accuracy']:.3f}",
        f"{'strategy':<24}{'AULC':>8}{'final acc':>12}{'labels to target':>18}"
        f"{'vs random (90% interval)':>28}",
    ]
    for name, s in result["strategies"].items():
        last = s["curve"][-1]
        reached = s["labels_to_target"]
        lines.append(
            f"{name:<24}{s['aulc']:>8.3f}"
            f"{last['accuracy_mean']:>7.3f}±{last['accuracy_std']:.3f}"
            f"{reached if reached is not None else 'not reached':>18}"
            f"{_versus_random(result, name):>28}"
        )
    return "\n".join(lines)


def _versus_random(result: dict[str, Any], name: str) -> str:
    """`0.82 (0.61–1.10)`: labels to target relative to random, with its bootstrap interval."""
    strategies = result["strategies"]
    if name == "random" or "random" not in strategies:
        return ""
    mine, theirs = strategies[name]["labels_to_target"], strategies["random"]["labels_to_target"]
    ratio = f"{mine / theirs:.2f}" if mine and theirs else "—"
    interval = labels_ratio_interval(result, name)
    return ratio + (f" ({format_interval(interval)})" if interval else "")


def format_interval(interval: tuple[float, float]) -> str:
    """`0.61–1.10`, with ∞ for a bound where the target was out of reach."""
    return "–".join("∞" if np.isinf(v) else f"{v:.2f}" for v in interval)


def plot_learning_curves(
    result: dict[str, Any], path: str | Path, title: str | None = None
) -> Path:
    """Mean accuracy ± one std against labels, one line per strategy, written as a PNG."""
    curves = []
    for name, s in result["strategies"].items():
        n = np.array([p["labels"] for p in s["curve"]])
        m = np.array([p["accuracy_mean"] for p in s["curve"]])
        sd = np.array([p["accuracy_std"] for p in s["curve"]])
        curves.append((f"{name} (AULC {s['aulc']:.3f})", n, m, (m - sd, m + sd)))
    return plot_curves(
        curves,
        path,
        target=result["target_accuracy"],
        xlabel="labels",
        ylabel="test accuracy",
        title=title or "Learning curves",
    )


def plot_curves(
    curves: Sequence[tuple[str, np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]],
    path: str | Path,
    *,
    target: float,
    xlabel: str,
    ylabel: str,
    title: str,
) -> Path:
    """One line per (name, x, y, band or None), the band shaded, the target dashed (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for name, x, y, band in curves:
        ax.plot(x, y, label=name)
        if band is not None:
            ax.fill_between(x, band[0], band[1], alpha=0.15)
    ax.axhline(target, color="grey", linestyle="--", linewidth=1, label="target")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
