"""Selection at scale: 1,000 items from a 1,000,000 × 384 float32 pool with 10,000 labeled.

Each measurement runs in its own subprocess so that its peak resident memory
(`resource.getrusage`) is its own; the pool is generated inside it (not timed). The seed's
original functions build the full N×M distance matrix; they are timed on the largest pool
they fit in memory here, against ours on the same pool.

    PYTHONPATH=src python bench/bench_active_scale.py [--n 1000000] [--seed-n 100000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np

DIM, N_LABELED, K = 384, 10_000, 1_000


def _pool(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clustered unit-scale embeddings (like sentence embeddings), probabilities, labeled mask."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, DIM), dtype=np.float32)
    centers = rng.standard_normal((200, DIM), dtype=np.float32) * 2
    for start in range(0, n, 65536):  # in place: the pool is the only big allocation
        rows = slice(start, min(start + 65536, n))
        x[rows] += centers[rng.integers(0, 200, rows.stop - rows.start)]
    proba = rng.dirichlet(np.ones(4), size=n)
    labeled = np.zeros(n, dtype=bool)
    labeled[rng.choice(n, N_LABELED, replace=False)] = True
    return x, proba, labeled


def _seed_original(name: str, x, proba, labeled) -> np.ndarray:
    """The seed's code as printed (full cosine_distances matrix)."""
    from sklearn.metrics.pairwise import cosine_distances

    if name == "uncertainty":
        entropy = -np.sum(proba * np.log(proba + 1e-10), axis=1)
        return np.argsort(entropy)[-K:]
    min_distances = cosine_distances(x, x[labeled]).min(axis=1)
    if name == "diversity":
        return np.argsort(min_distances)[-K:]
    entropy = -np.sum(proba * np.log(proba + 1e-10), axis=1)
    combined = 0.6 * entropy / np.log(proba.shape[1]) + 0.4 * min_distances / min_distances.max()
    return np.argsort(combined)[-K:]


def measure(kind: str, name: str, n: int) -> dict:
    """Run one selection in this process; returns seconds and peak RSS."""
    from labelloop.active import (
        diversity_sampling,
        get_strategy,
        hybrid_acquisition,
        uncertainty_sampling,
    )

    x, proba, labeled = _pool(n)
    t0 = time.perf_counter()
    if kind == "seed-original":
        _seed_original(name, x, proba, labeled)
    elif kind == "seed-compatible":
        if name == "uncertainty":
            uncertainty_sampling(proba, K)
        elif name == "diversity":
            diversity_sampling(x, x[labeled], K)
        else:
            hybrid_acquisition(proba, x, x[labeled], K)
    else:
        strategy = get_strategy(name)
        picked = strategy.select(K, proba=proba, embeddings=x, labeled_mask=labeled)
        seconds = time.perf_counter() - t0
        labeled[picked] = True  # the next round reuses the cached distances
        t0 = time.perf_counter()
        strategy.select(K, proba=proba, embeddings=x, labeled_mask=labeled)
        next_round = time.perf_counter() - t0
    if kind != "strategy":
        seconds, next_round = time.perf_counter() - t0, None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "seconds": seconds,
        "next_round": next_round,
        "peak_bytes": peak,
        "pool_bytes": x.nbytes,
    }


def _run(kind: str, name: str, n: int) -> dict | None:
    cmd = [sys.executable, __file__, "--child", kind, name, str(n)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"{kind} {name} n={n} failed: {done.stderr.strip()[-300:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--seed-n", type=int, default=100_000)
    parser.add_argument("--child", nargs=3)
    args = parser.parse_args()
    if args.child:
        kind, name, n = args.child
        print(json.dumps(measure(kind, name, int(n))))
        return
    from _report import write_section

    rows = [
        "| selection | pool | time (s) | peak RSS / pool | target |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    goals = {"entropy": "≤ 10 s", "diversity": "≤ 10 s", "hybrid": "≤ 10 s", "coreset": "≤ 60 s"}
    for name, goal in goals.items():
        r = _run("strategy", name, args.n)
        rows.append(_row(f"`{name}` strategy", args.n, r, goal))
        if r is not None:
            again = {**r, "seconds": r["next_round"]}
            rows.append(_row(f"`{name}`, next round (+1,000 labels, cached)", args.n, again, ""))
        print(rows[-2:], flush=True)
    ratios = [
        "| function | pool | seed's code (s) | ours (s) | speed-up | seed peak / ours peak |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in ("uncertainty", "diversity", "hybrid"):
        ours_big = _run("seed-compatible", name, args.n)
        function = "hybrid_acquisition" if name == "hybrid" else f"{name}_sampling"
        rows.append(_row(f"`{function}` (seed-compatible)", args.n, ours_big, ""))
        seed = _run("seed-original", name, args.seed_n)
        ours = _run("seed-compatible", name, args.seed_n)
        if seed and ours:
            ratios.append(
                f"| `{name}` | {args.seed_n:,} | {seed['seconds']:.2f} | {ours['seconds']:.2f} | "
                f"{seed['seconds'] / ours['seconds']:.1f}× | "
                f"{seed['peak_bytes'] / ours['peak_bytes']:.1f}× |"
            )
        print(ratios[-1], flush=True)
    matrix_gb = args.n * N_LABELED * 4 / 1e9
    text = (
        f"Pool {args.n:,} × {DIM} float32 (clustered), {N_LABELED:,} labeled, select {K:,}; "
        "one subprocess per line.\n\n" + "\n".join(rows) + "\n\n"
        f"Against the seed's code (full `cosine_distances` matrix, float32 inputs), on "
        f"{args.seed_n:,} items; at {args.n:,} items its matrix alone would take "
        f"{matrix_gb:.0f} GB (the machine has 24 GB):\n\n" + "\n".join(ratios)
    )
    write_section(
        "Active learning: selection at scale",
        text,
        "PYTHONPATH=src python bench/bench_active_scale.py",
    )


def _row(label: str, n: int, r: dict | None, goal: str) -> str:
    if r is None:
        return f"| {label} | {n:,} | failed | — | {goal} |"
    return (
        f"| {label} | {n:,} | {r['seconds']:.2f} | {r['peak_bytes'] / r['pool_bytes']:.2f}× "
        f"| {goal} |"
    )


if __name__ == "__main__":
    main()
