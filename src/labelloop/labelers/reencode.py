"""BF16 copies of GGUF models: the same (already quantized) weights, faster kernels.

The embedded models ship with 4- and 5-bit block-quantized weights. On CPUs with AVX-512 BF16
llama.cpp's BF16 products are faster than its kernels for those formats (measured 1.3× for
Gemma 3 270M and 2.7× for SmolLM2's Q4_1 on 2 cores), so the labeler runs a copy whose matrix
weights are the dequantized values stored as BF16. BF16 keeps 8 bits of mantissa, so the copy
is at least as close to the full-precision model as the shipped file. The token embedding is
left as shipped: it is read a row at a time and is most of a small model's size.

The copy is written once, next to nothing the user owns: under ``LABELLOOP_MODEL_CACHE`` (or
``~/.cache/labelloop/models``), named by the source file's content hash, atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["bf16_copy", "cpu_has_bf16", "file_digest", "model_cache_dir"]

logger = logging.getLogger(__name__)

#: Tensors kept as shipped: looked up row by row, and the bulk of a small model.
KEEP_AS_SHIPPED = ("token_embd.weight",)
#: GGUF `general.file_type` of a mostly-BF16 model.
MOSTLY_BF16 = 32
_VERSION = "bf16-v1"  # part of the cache key: bump when the re-encoding changes


def model_cache_dir() -> Path:
    folder = os.environ.get("LABELLOOP_MODEL_CACHE")
    return Path(folder) if folder else Path.home() / ".cache" / "labelloop" / "models"


def cpu_has_bf16() -> bool:
    """Whether this llama.cpp build runs BF16 products natively (AVX-512 BF16)."""
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode(errors="replace")
    return "AVX512_BF16 = 1" in info


def _content_hash(path: Path) -> str:
    """Names the BF16 copy of a file version (and the re-encoding's version)."""
    return file_digest(path, salt=_VERSION.encode())[:16]


def file_digest(path: str | Path, *, salt: bytes = b"") -> str:
    """SHA-256 of ``salt`` + the file's bytes, remembered in the model cache by the file's path,
    size and modification time: a model file is hundreds of MB, and hashing it again cost every
    run of the embedded model about a second before it labeled anything."""
    path = Path(path).resolve()
    stat = path.stat()
    version = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    key = hashlib.sha256(f"{path}\0{salt.hex()}".encode()).hexdigest()[:32]
    stamp = model_cache_dir() / "digests" / f"{key}.json"
    try:
        known = json.loads(stamp.read_text())
        if {k: known.get(k) for k in version} == version and isinstance(known.get("sha256"), str):
            return str(known["sha256"])
    except (OSError, ValueError):
        pass  # not remembered yet, or unreadable: hash the file
    digest = hashlib.sha256(salt)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    _write_atomically(stamp, json.dumps({**version, "sha256": digest.hexdigest()}))
    return digest.hexdigest()


def _write_atomically(target: Path, text: str) -> None:
    """Write a small file so that readers see the old or the new content, never half of it."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, partial = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".partial")
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.replace(partial, target)
    except OSError:  # a read-only cache only costs the next run a hash
        logger.debug("could not remember %s", target, exc_info=True)


def bf16_copy(source: str | Path, cache_dir: str | Path | None = None) -> Path:
    """Path of the BF16 copy of `source`, written first if it is not in the cache yet."""
    source = Path(source)
    folder = Path(cache_dir) if cache_dir is not None else model_cache_dir()
    target = folder / f"{source.stem}.{_content_hash(source)}.bf16.gguf"
    if target.is_file():
        return target
    # Shown by default (a one-time pause of seconds, and a file of hundreds of MB in the cache).
    logger.warning("writing a BF16 copy of %s to %s (once)", source.name, target)
    folder.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=folder, prefix=".", suffix=".partial")
    os.close(handle)
    try:
        _write_bf16(source, Path(partial))
        os.replace(partial, target)  # readers never see a half-written file
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return target


def _write_bf16(source: Path, target: Path) -> None:
    from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter
    from gguf.quants import dequantize, quantize

    reader = GGUFReader(source)
    architecture = reader.fields["general.architecture"].contents()
    writer = GGUFWriter(target, architecture)
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue  # written by the writer itself
        if name == "general.file_type":
            writer.add_uint32(name, MOSTLY_BF16)
            continue
        kind = field.types[0]
        if kind == GGUFValueType.ARRAY:
            writer.add_array(name, field.contents())
        else:
            writer.add_key_value(name, field.contents(), kind)
    plain = (GGMLQuantizationType.F32, GGMLQuantizationType.F16, GGMLQuantizationType.BF16)
    for tensor in reader.tensors:
        # Shapes are taken from the arrays: the writer reads a byte array's shape as bytes.
        shape = tuple(int(n) for n in reversed(tensor.shape))
        if tensor.name in KEEP_AS_SHIPPED or len(shape) < 2 or tensor.tensor_type in plain:
            writer.add_tensor(tensor.name, tensor.data, raw_dtype=tensor.tensor_type)
            continue
        values = dequantize(tensor.data, tensor.tensor_type).astype(np.float32).reshape(shape)
        encoded = quantize(values, GGMLQuantizationType.BF16)
        writer.add_tensor(tensor.name, encoded, raw_dtype=GGMLQuantizationType.BF16)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
