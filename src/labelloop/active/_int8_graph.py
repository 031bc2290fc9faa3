"""Int8 products for an ONNX graph whose weights are int8 dequantized in the graph.

Graph rewriting (no I/O but reading the CPU's probe): `int8_product_graph` turns each product
by such a weight into onnxruntime's `MatMulIntegerToFloat` with activations quantized row by
row, so results never depend on the other rows of a batch. `OnnxEmbedder` applies it to the
sentence-embedding model.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from pathlib import Path

import numpy as np

__all__ = ["int8_kernels_exact", "int8_product_graph", "int8_products_possible"]

logger = logging.getLogger(__name__)


#: The probe `int8_kernels_exact` runs: one com.microsoft MatMulIntegerToFloat of a uint8
#: input `a` (2×3×64) with per-row scales `a_scale` (2×3×1) by the int8 weight `w` (64×8) with
#: per-column scales, built by `onnx.helper` (tests/test_active_embeddings.py builds it again and
#: compares) and kept serialized, so that probing needs onnxruntime only, not `onnx`.
PROBE_GRAPH = Path(__file__).resolve().parent / "resources" / "int8-probe.onnx"


def probe_values() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(a, a_scale, w, w_scale) of the probe: rows of 255 and of random bytes against columns of
    ±127, the worst case for products added in saturating 16-bit pairs."""
    rng = np.random.default_rng(0)
    a = np.full((2, 3, 64), 255, np.uint8)
    a[1, :, 1::2] = rng.integers(0, 256, (3, 32), dtype=np.uint8)
    w = np.full((64, 8), 127, np.int8)
    w[:, 1::2] = -127
    a_scale = rng.uniform(0.5, 2.0, (2, 3, 1)).astype(np.float32)
    w_scale = rng.uniform(0.5, 2.0, 8).astype(np.float32)
    return a, a_scale, w, w_scale


@functools.cache
def int8_kernels_exact() -> bool:
    """Whether onnxruntime's uint8×int8 products are exact here, with scales per row of A and
    per column of B. x86 CPUs without VNNI add byte products in saturating 16-bit pairs."""
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    a, a_scale, w, w_scale = probe_values()
    try:
        session = ort.InferenceSession(PROBE_GRAPH.read_bytes(), providers=["CPUExecutionProvider"])
        got = session.run(None, {"a": a, "a_scale": a_scale})[0]
    except Exception as exc:  # an onnxruntime without these kernels or scale shapes
        logger.info("int8 products unavailable: %s", exc)
        return False
    want = (a.astype(np.int64) @ w.astype(np.int64)) * a_scale.astype(np.float64) * w_scale
    return bool(np.allclose(got, want, rtol=1e-5, atol=0))


def int8_products_possible() -> bool:
    """Whether `int8_product_graph` can rewrite a graph here: `onnx` is installed (looked up,
    not imported) and this CPU's int8 kernels are exact. Says why not in the log."""
    if importlib.util.find_spec("onnx") is None:
        logger.warning("onnx is not installed; the embedding model runs with float32 products")
        return False
    if not int8_kernels_exact():
        logger.info("this CPU's int8 products are not exact; float32 products are used")
        return False
    return True


def int8_product_graph(graph: bytes) -> bytes | None:
    """`graph` with its products by int8 weights run on int8 kernels, or None when that cannot
    be done here (no `onnx`, inexact kernels) or the graph has no such products.

    A weight is an int8 initializer dequantized in the graph as Mul(Cast(q), scale), the scale
    one per output column. For each activation x feeding such MatMuls, every row r of x is
    quantized on its own: s_r = (max(x_r, 0) - min(x_r, 0)) / 255, z_r = round(-min(x_r, 0) / s_r),
    u = clip(round(x / s_r) + z_r, 0, 255). Each MatMul becomes
    MatMulIntegerToFloat(u, q) · s_r · scale - s_r z_r · Σ_k q[k, :] · scale,
    i.e. (u - z_r) q rescaled, with exact int32 sums. The weights themselves are unchanged.
    """
    if not int8_products_possible():
        return None
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load_from_string(graph)
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    g = model.graph
    if opset < 13 or any(t.data_location == TensorProto.EXTERNAL for t in g.initializer):
        return None  # no per-axis QuantizeLinear before opset 13; weights in other files
    inits = {t.name: t for t in g.initializer}
    producer = {out: node for node in g.node for out in node.output}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in g.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)

    weights: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for node in g.node:
        if node.op_type != "Mul" or len(node.input) != 2 or node.input[1] not in inits:
            continue
        cast = producer.get(node.input[0])
        if cast is None or cast.op_type != "Cast" or cast.input[0] not in inits:
            continue
        q = numpy_helper.to_array(inits[cast.input[0]])
        scale = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32).reshape(-1)
        if q.dtype != np.int8 or q.ndim != 2 or scale.size not in (1, q.shape[1]):
            continue
        users = readers.get(node.output[0], [])
        if users and all(u.op_type == "MatMul" and u.input[1] == node.output[0] for u in users):
            weights[node.output[0]] = (q, np.broadcast_to(scale, (q.shape[1],)).copy())
    matmuls: dict[str, list[onnx.NodeProto]] = {}
    for node in g.node:
        if node.op_type == "MatMul" and node.input[1] in weights and node.input[0] not in inits:
            matmuls.setdefault(node.input[0], []).append(node)
    if not matmuls:
        return None

    added: list[onnx.TensorProto] = []

    def const(name: str, value: np.ndarray) -> str:
        added.append(numpy_helper.from_array(value, name))
        return name

    def row_reduce(op: str, x: str, out: str) -> onnx.NodeProto:
        if opset >= 18:  # axes became an input
            return helper.make_node(op, [x, "rowq_axes"], [out], keepdims=1)
        return helper.make_node(op, [x], [out], axes=[-1], keepdims=1)

    const("rowq_axes", np.array([-1], np.int64))
    const("rowq_flat", np.array([-1], np.int64))
    const("rowq_zero", np.array(0.0, np.float32))
    const("rowq_tiny", np.array(1e-12, np.float32))
    const("rowq_levels", np.array(255.0, np.float32))
    rewritten: dict[int, list[onnx.NodeProto]] = {}
    for i, (x, nodes) in enumerate(matmuls.items()):
        p = f"rowq{i}_"
        k = weights[nodes[0].input[1]][0].shape[0]
        make = helper.make_node
        new = [
            row_reduce("ReduceMax", x, p + "max"),
            row_reduce("ReduceMin", x, p + "min"),
            make("Max", [p + "max", "rowq_zero"], [p + "hi"]),
            make("Min", [p + "min", "rowq_zero"], [p + "lo"]),
            make("Sub", [p + "hi", p + "lo"], [p + "range"]),
            make("Max", [p + "range", "rowq_tiny"], [p + "range1"]),
            make("Div", [p + "range1", "rowq_levels"], [p + "scale"]),
            make("Div", [p + "lo", p + "scale"], [p + "lo_steps"]),
            make("Neg", [p + "lo_steps"], [p + "zero_steps"]),
            make("Round", [p + "zero_steps"], [p + "zero"]),
            make("Mul", [p + "zero", p + "scale"], [p + "offset"]),
            make("Reshape", [p + "zero", "rowq_flat"], [p + "zero_flat"]),
            make("Cast", [p + "zero_flat"], [p + "zero_u8"], to=TensorProto.UINT8),
            make("Reshape", [p + "scale", "rowq_flat"], [p + "scale_flat"]),
            make("Shape", [x], [p + "shape"]),
            make("Reshape", [x, const(p + "rows", np.array([-1, k], np.int64))], [p + "x2d"]),
            make(
                "QuantizeLinear",
                [p + "x2d", p + "scale_flat", p + "zero_u8"],
                [p + "u2d"],
                axis=0,
            ),
            make("Reshape", [p + "u2d", p + "shape"], [p + "u"]),
        ]
        for j, node in enumerate(nodes):
            q, scale = weights[node.input[1]]
            colsum = (q.astype(np.float32).sum(axis=0) * scale).astype(np.float32)
            w, out = f"{p}{j}_", node.output[0]
            new += [
                make(
                    "MatMulIntegerToFloat",
                    [p + "u", const(w + "q", q), p + "scale", const(w + "scale", scale)],
                    [w + "raw"],
                    domain="com.microsoft",
                ),
                make("Mul", [p + "offset", const(w + "colsum", colsum)], [w + "shift"]),
                make("Sub", [w + "raw", w + "shift"], [out]),
            ]
        rewritten[id(nodes[0])] = new
        for node in nodes[1:]:
            rewritten[id(node)] = []
    body: list[onnx.NodeProto] = []
    for node in g.node:
        body.extend(rewritten.get(id(node), [node]))
    del g.node[:]
    g.node.extend(body)
    g.initializer.extend(added)
    _fuse_gelu(g)
    _prune(g)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return model.SerializeToString()


def _fuse_gelu(g) -> None:
    """x · ½(1 + erf(x/√2)), as exported, becomes com.microsoft Gelu (BiasGelu after a bias)."""
    from onnx import helper, numpy_helper

    inits = {t.name: t for t in g.initializer}
    producer = {out: node for node in g.node for out in node.output}
    readers: dict[str, list] = {}
    for node in g.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    outputs = {o.name for o in g.output}

    def is_const(name: str, value: float) -> bool:
        t = inits.get(name)
        if t is None:
            return False
        a = numpy_helper.to_array(t)
        return a.size == 1 and abs(float(a.reshape(-1)[0]) - value) < 1e-6

    def sole_reader(name: str, op: str):
        users = readers.get(name, [])
        ok = len(users) == 1 and users[0].op_type == op and name not in outputs
        return users[0] if ok else None

    replace, drop = {}, set()
    for erf in [node for node in g.node if node.op_type == "Erf"]:
        div = producer.get(erf.input[0])
        if div is None or div.op_type != "Div" or not is_const(div.input[1], 2**0.5):
            continue
        x = div.input[0]
        plus_one = sole_reader(erf.output[0], "Add")
        half = plus_one and sole_reader(plus_one.output[0], "Mul")
        gated = half and sole_reader(half.output[0], "Mul")
        if not gated or not any(is_const(n, 1.0) for n in plus_one.input):
            continue
        if not any(is_const(n, 0.5) for n in half.input) or x not in gated.input:
            continue
        if len(readers.get(x, [])) != 2 or x in outputs:
            continue
        bias = producer.get(x)
        if (
            bias is not None
            and bias.op_type == "Add"
            and bias.input[1] in inits
            and len(inits[bias.input[1]].dims) == 1
        ):
            fused = helper.make_node(
                "BiasGelu", list(bias.input), [gated.output[0]], domain="com.microsoft"
            )
            drop.add(id(bias))
        else:
            fused = helper.make_node("Gelu", [x], [gated.output[0]], domain="com.microsoft")
        drop |= {id(div), id(erf), id(plus_one), id(half)}
        replace[id(gated)] = fused
    body = [replace.get(id(node), node) for node in g.node if id(node) not in drop]
    del g.node[:]
    g.node.extend(body)


def _prune(g) -> None:
    """Drops the nodes whose outputs nothing reads, then the initializers no node reads."""
    wanted = {o.name for o in g.output}
    kept = []
    for node in reversed(list(g.node)):
        if any(out in wanted for out in node.output):
            kept.append(node)
            wanted.update(node.input)
    kept.reverse()
    del g.node[:]
    g.node.extend(kept)
    used = [t for t in g.initializer if t.name in wanted]
    del g.initializer[:]
    g.initializer.extend(used)
