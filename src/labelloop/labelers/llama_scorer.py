"""Fast teacher-forced scoring of continuations with llama.cpp (low-level API).

The shared prompt prefix (instructions + few-shot examples) is evaluated once into sequence 0 of
a unified KV cache. For a chunk of items, sequence 0 is copied (cells are shared, not duplicated)
into one sequence per item, and per continuation that needs more than one token; one
``llama_decode`` then evaluates every item's own tokens and the continuations' leading tokens as
parallel sequences. Only the logits needed to score the continuations are computed. Per item the
cost is its own tokens, not the whole prompt: this is what makes a 135M model label tens of items
per second on two cores.

llama.cpp's threads meet at a barrier after every operation, so a thread that loses its core to
other work stalls the others. Many items are therefore best decoded by several single-threaded
contexts side by side on the same weights (`LlamaScorer.sibling`, `LlamaWeights`); a decode of a
few tokens runs on one thread; otherwise how many threads run a decode is measured, not assumed
(`ThreadTuner`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from labelloop.labelers.base import FEATURE_DEPTH, FEATURE_VIEWS

__all__ = [
    "FEATURE_DEPTH",
    "LAST",
    "MIDDLE",
    "THREADS_ENV",
    "HiddenCapture",
    "LlamaScorer",
    "LlamaWeights",
    "ThreadTuner",
    "available_cores",
    "threads_override",
]

#: Decodes of fewer tokens (the prompt prefix, the content-free inputs, a few items) run on one
#: thread: split between threads they save little, and when another process holds a core the
#: threads wait for each other at every operation (measured 10x the CPU time of one thread).
SMALL_DECODE = 64

#: Environment variable fixing the embedded model's thread count (otherwise measured).
THREADS_ENV = "LABELLOOP_THREADS"

_INIT_LOCK = threading.Lock()
_BACKEND_READY = False
_QUIET = None


def _llama():
    """Import llama_cpp lazily (it is heavy) and quiet its logging once."""
    global _BACKEND_READY, _QUIET
    # llama.cpp's OpenMP threads spin while they wait; on a busy machine the spinning steals the
    # CPU from the threads doing the work (measured 10× slower). Sleeping waiters avoid it.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import llama_cpp

    with _INIT_LOCK:
        if not _BACKEND_READY:
            _QUIET = _quiet_callback()  # kept referenced: llama.cpp holds the pointer
            llama_cpp.llama_log_set(_QUIET, ctypes.c_void_p(0))  # model-loading chatter on stderr
            llama_cpp.llama_backend_init()
            _BACKEND_READY = True
    return llama_cpp


#: The model's states an item's features are read from, by view (`FEATURE_VIEWS`): the mean of
#: the layers' outputs at `FEATURE_DEPTH` ("middle"), and the last layer, normed ("last"). A
#: linear probe on a language model's middle layers can learn a task from fewer labels than one
#: on its last, shaped to predict the next word; which is better depends on the task (embedded
#: 270M model, 200 labels: Rotten Tomatoes 0.83 against 0.80, BBC News 0.84 against 0.94), so
#: both are kept and `learn` chooses out of fold.
MIDDLE, LAST = FEATURE_VIEWS
#: The graph node llama.cpp names the last layer's normed output (the output layer's input).
LAST_NODE = b"result_norm"


def feature_layers(n_layer: int) -> tuple[int, ...]:
    """The layers whose outputs are averaged into the "middle" view (`FEATURE_DEPTH`)."""
    low, high = (round(share * (n_layer - 1)) for share in FEATURE_DEPTH)
    return tuple(range(low, max(low, high) + 1))


_GGML: Any = None


def _ggml() -> Any:
    """ggml's tensor functions (from the library llama_cpp ships) that reading a node needs."""
    global _GGML
    if _GGML is None:
        import llama_cpp

        folder = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
        lib = ctypes.CDLL(os.path.join(folder, "libggml-base.so"))
        lib.ggml_get_name.restype = ctypes.c_char_p
        lib.ggml_get_name.argtypes = [ctypes.c_void_p]
        lib.ggml_nelements.restype = ctypes.c_int64
        lib.ggml_nelements.argtypes = [ctypes.c_void_p]
        lib.ggml_nbytes.restype = ctypes.c_size_t
        lib.ggml_nbytes.argtypes = [ctypes.c_void_p]
        lib.ggml_backend_tensor_get.restype = None
        lib.ggml_backend_tensor_get.argtypes = [
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_size_t,
        ]
        _GGML = lib
    return _GGML


class HiddenCapture:
    """Keeps hidden states of the output rows of a decode, read from the graph as it runs
    (llama.cpp's evaluation callback): the chosen layers' outputs (nodes ``l_out-<layer>``)
    and the last layer's normed output, so one decode yields both the rows' logits and an
    item's features.

    Asking llama.cpp for embeddings instead gives the last layer only, and makes it compute the
    output layer for every token of the batch (a 262k-word vocabulary: several times the cost
    of the decode itself)."""

    def __init__(self, n_embd: int, layers: Sequence[int]) -> None:
        self.n_embd = n_embd
        self.middle = {f"l_out-{layer}".encode() for layer in layers}
        self.parts: dict[bytes, list[np.ndarray]] = {}
        self._lib = _ggml()
        self.callback = _llama().ggml_backend_sched_eval_callback(self._on_node)

    def _on_node(self, tensor: int, ask: bool, user_data: Any) -> bool:
        lib = self._lib
        name = lib.ggml_get_name(tensor)
        if name != LAST_NODE and name not in self.middle:
            return not ask  # not wanted; after a computed node: go on
        if ask:
            return True
        values = np.empty(int(lib.ggml_nelements(tensor)), dtype=np.float32)
        lib.ggml_backend_tensor_get(tensor, values.ctypes.data, 0, lib.ggml_nbytes(tensor))
        self.parts.setdefault(name, []).append(values.reshape(-1, self.n_embd))
        return True

    def rows(self, outputs: Sequence[int], n_tokens: int) -> dict[str, np.ndarray]:
        """Each view's rows for the outputs of the last decode, in output order. A layer holds
        every token of the batch, or (the last ones, which llama.cpp cuts to the outputs
        early) the output rows only."""
        parts, self.parts = self.parts, {}
        if len(parts) != len(self.middle) + 1:
            raise RuntimeError(f"the model computed {len(parts)} of {len(self.middle) + 1} states")

        def at_outputs(name: bytes) -> np.ndarray:
            layer = np.concatenate(parts[name])
            if len(layer) == n_tokens:
                return layer[list(outputs)]
            if len(layer) != len(outputs):
                raise RuntimeError(
                    f"{name.decode()} has {len(layer)} rows for {n_tokens} tokens and "
                    f"{len(outputs)} outputs"
                )
            return layer

        middle = np.mean([at_outputs(name) for name in sorted(self.middle)], axis=0)
        return {MIDDLE: middle.astype(np.float32), LAST: at_outputs(LAST_NODE)}


def _ignore_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    """llama.cpp log sink: failures surface as return codes, which are checked."""


def _quiet_callback():
    import llama_cpp

    return llama_cpp.llama_log_callback(_ignore_log)


def _log_softmax_at(row: np.ndarray, ids: np.ndarray, work: np.ndarray) -> np.ndarray:
    """log p(ids) under the softmax of one float32 logits row, computed in float64.

    `work` is a float64 buffer of the row's length, reused from row to row: allocating (and
    faulting in) a fresh 2 MB array for each of Gemma's 262k-token rows took 4x as long as the
    arithmetic. The operations, and so the results, are those of converting the row first."""
    peak = np.float64(row.max())
    np.subtract(row, peak, out=work, dtype=np.float64)
    np.exp(work, out=work)
    return row[ids].astype(np.float64) - (peak + np.log(work.sum()))


def available_cores() -> int:
    """CPUs this process may run on (its affinity mask, which containers and `taskset` set),
    rather than the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def threads_override() -> int | None:
    """The thread count fixed by ``LABELLOOP_THREADS``, or None (then it is measured)."""
    raw = os.environ.get(THREADS_ENV, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{THREADS_ENV} must be a whole number of threads, not {raw!r}") from None
    if not 1 <= value <= 256:
        raise ValueError(f"{THREADS_ENV} must be between 1 and 256, not {value}")
    return value


class ThreadTuner:
    """Chooses the thread count of each decode from the speed measured on earlier ones.

    Candidates are `most` threads, halved down to 1. Each is tried on real work (no separate
    calibration run), one thread first: on a busy machine a first decode on many threads waits
    at every barrier for a thread that lost its core, and a short run may decode only once.
    Each is rated by its seconds per token, an exponential average; the fastest is used.
    Other work on the machine comes and goes, so the others are tried again now and then:
    soon after the choice changed, seldom (up to every `longest` decodes) while it holds, which
    keeps the cost of checking near 1% on a quiet machine. Decodes of fewer than `min_tokens`
    tokens are not rated (their fixed cost would dominate). Thread count does not change
    results: each output of a llama.cpp operation is computed whole by one thread.
    """

    def __init__(
        self,
        most: int,
        *,
        shortest: int = 4,
        longest: int = 64,
        smoothing: float = 0.5,
        min_tokens: int = 64,
    ) -> None:
        halvings = {max(1, most >> k) for k in range(most.bit_length())}
        self.candidates = sorted(halvings)
        self.shortest, self.longest = shortest, longest
        self.smoothing, self.min_tokens = smoothing, min_tokens
        self.rate: dict[int, float] = {}  # threads -> seconds per token
        self.measured_at: dict[int, int] = {}  # threads -> decode number of its last rating
        self.decodes = 0
        self._interval = shortest
        self._next_check = shortest

    @property
    def best(self) -> int:
        """The fastest candidate measured so far (one thread before any measurement)."""
        return min(self.rate, key=self.rate.__getitem__) if self.rate else self.candidates[0]

    def choose(self) -> int:
        """Threads for the next decode."""
        untried = [n for n in self.candidates if n not in self.rate]
        if untried:
            return untried[0]
        if self.decodes >= self._next_check:
            return min(self.candidates, key=self.measured_at.__getitem__)
        return self.best

    def record(self, threads: int, seconds: float, tokens: int) -> None:
        """Account for a decode of `tokens` tokens on `threads` threads that took `seconds`."""
        if tokens < self.min_tokens:
            return
        rechecked = len(self.rate) == len(self.candidates) and threads != self.best
        before = self.best
        self.decodes += 1
        per_token = seconds / tokens
        old = self.rate.get(threads)
        self.rate[threads] = per_token if old is None else old + self.smoothing * (per_token - old)
        self.measured_at[threads] = self.decodes
        if rechecked:  # check again soon if the choice changed, later and later while it holds
            held = self.best == before
            self._interval = min(2 * self._interval, self.longest) if held else self.shortest
            self._next_check = self.decodes + self._interval


class LlamaWeights:
    """A GGUF model loaded once, shared by the scorers (contexts) that run it: each context
    adds only its KV cache and work buffers."""

    def __init__(self, model_path: str) -> None:
        ll = self._ll = _llama()
        mparams = ll.llama_model_default_params()
        # Plain CPU weight buffers: llama.cpp's AMX weight buffers (chosen automatically when it
        # was built on a CPU with AMX) run tile instructions on threads whose tiles were never
        # configured, and the process dies with SIGILL.
        mparams.use_extra_bufts = False
        self.model = ll.llama_model_load_from_file(str(model_path).encode(), mparams)
        if not self.model:
            raise ValueError(f"could not load a GGUF model from {model_path}")
        self.vocab = ll.llama_model_get_vocab(self.model)
        self.n_vocab = int(ll.llama_vocab_n_tokens(self.vocab))
        self.add_bos = bool(ll.llama_vocab_get_add_bos(self.vocab))
        self.users = 0  # scorers running it: the model is freed when the last one closes

    def release(self) -> None:
        """One scorer is done with the weights; the last one frees them."""
        self.users -= 1
        if self.users <= 0 and self.model:
            self._ll.llama_model_free(self.model)
            self.model = None


class LlamaScorer:
    """Scores continuations of ``prefix + suffix`` for many suffixes, reusing the prefix's KV.

    Not thread-safe: one scorer per thread (each owns a llama context).

    ``n_threads``: a fixed thread count; None (the default) takes ``LABELLOOP_THREADS`` when
    set, else measures the best count up to the cores available (`ThreadTuner`).
    """

    def __init__(
        self,
        model_path: str,
        *,
        n_threads: int | None = None,
        n_batch: int = 512,
        n_ubatch: int = 512,
        n_seq_max: int = 64,
        weights: LlamaWeights | None = None,
        hidden: bool = False,
    ) -> None:
        ll = _llama()
        self._ll = ll
        self.weights = weights or LlamaWeights(model_path)
        self.weights.users += 1
        self._model = self.weights.model
        self._vocab = self.weights.vocab
        self.n_vocab, self.add_bos = self.weights.n_vocab, self.weights.add_bos
        fixed = n_threads if n_threads is not None else threads_override()
        self.n_threads = fixed or available_cores()
        self.tuner = None if fixed else ThreadTuner(self.n_threads)
        self._threads_now = self.n_threads
        #: A thread count that overrides the tuner while set (decodes run beside others').
        self.pinned: int | None = None
        self.n_batch, self.n_ubatch = n_batch, n_ubatch
        self.n_seq_max = n_seq_max
        self._batch = ll.llama_batch_init(n_batch, 0, n_seq_max)
        self._ctx = None
        self.n_ctx = 0
        self._prefix: list[int] | None = None
        n_embd = int(ll.llama_model_n_embd(self._model))
        layers = feature_layers(int(ll.llama_model_n_layer(self._model)))
        #: With `hidden`, each `score` also keeps every item's hidden states (`HiddenCapture`)
        #: at the position that predicts its label (`take_hidden`).
        self._capture = HiddenCapture(n_embd, layers) if hidden else None
        self._hidden: dict[str, np.ndarray] | None = None

    @property
    def hidden(self) -> bool:
        return self._capture is not None

    def take_hidden(self) -> dict[str, np.ndarray] | None:
        """The hidden states of the items of the last `score` by view (`MIDDLE`, `LAST`), each
        of shape (n, n_embd), once; None unless the scorer keeps them."""
        hidden, self._hidden = self._hidden, None
        return hidden

    def sibling(self) -> LlamaScorer:
        """Another single-threaded scorer on the same loaded weights, with a context (and KV
        cache) of its own, for running decodes side by side; closed before this one."""
        return LlamaScorer(
            "",
            n_threads=1,
            n_batch=self.n_batch,
            n_ubatch=self.n_ubatch,
            n_seq_max=self.n_seq_max,
            weights=self.weights,
            hidden=self.hidden,
        )

    def _context_for(self, n_prefix: int) -> None:
        """A context just large enough for the prefix plus one batch of items.

        Attention runs over the cache's used span, so an oversized cache (positions wander as
        chunks come and go) makes every token slower; sizing it to the prompt keeps it tight."""
        ll = self._ll
        need = (n_prefix + self.n_batch + 255) // 256 * 256
        if self._ctx is not None and need <= self.n_ctx <= 2 * need:
            return
        if self._ctx is not None:
            ll.llama_free(self._ctx)
            self._ctx = None
        cparams = ll.llama_context_default_params()
        cparams.n_ctx = need
        cparams.n_batch = self.n_batch
        cparams.n_ubatch = self.n_ubatch
        cparams.n_seq_max = self.n_seq_max
        cparams.n_threads = self.n_threads
        cparams.n_threads_batch = self.n_threads
        cparams.no_perf = True
        if self._capture is not None:
            cparams.cb_eval = self._capture.callback
        for name, value in (("kv_unified", True), ("swa_full", True)):
            if hasattr(cparams, name):  # shared prefix cells across sequences, no SWA eviction
                setattr(cparams, name, value)
        self._ctx = ll.llama_init_from_model(self._model, cparams)
        if not self._ctx:
            raise RuntimeError("could not create a llama.cpp context")
        self._mem: Any = ll.llama_get_memory(self._ctx)  # a llama.cpp handle
        self.n_ctx = need
        self._prefix = None
        self._threads_now = self.n_threads
        self._warm: bool = False  # the first decode of a context pages the weights in: not timed

    # -- tokens ---------------------------------------------------------------------------
    def tokenize(self, text: str, *, bos: bool = False) -> list[int]:
        """Token ids of ``text``; special-token syntax inside it is treated as plain text."""
        data = text.encode("utf-8", errors="replace")
        size = len(data) + 16
        buf = (self._ll.llama_token * size)()
        n = self._ll.llama_tokenize(self._vocab, data, len(data), buf, size, bos, False)
        if n < 0:
            size = -n
            buf = (self._ll.llama_token * size)()
            n = self._ll.llama_tokenize(self._vocab, data, len(data), buf, size, bos, False)
        return list(buf[:n])

    # -- prefix ---------------------------------------------------------------------------
    def set_prefix(self, tokens: Sequence[int]) -> None:
        """Evaluate ``tokens`` into sequence 0 (skipped when it is already there)."""
        tokens = list(tokens)
        self._context_for(len(tokens))
        if tokens == self._prefix:
            return
        self._ll.llama_memory_clear(self._mem, True)
        self._prefix = None
        for start in range(0, len(tokens), self.n_batch):
            part = tokens[start : start + self.n_batch]
            self._fill([(t, start + k, (0,), False) for k, t in enumerate(part)])
            self._decode()
        self._prefix = tokens

    # -- scoring --------------------------------------------------------------------------
    def score(
        self, suffixes: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]]
    ) -> np.ndarray:
        """``log p(continuation | prefix + suffix)`` summed over its tokens, shape (n, k)."""
        if self._prefix is None:
            raise RuntimeError("set_prefix must be called first")
        out = np.empty((len(suffixes), len(continuations)))
        hidden: dict[str, np.ndarray] | None = {} if self._capture is not None else None
        for rows in self._chunks(suffixes, continuations):
            out[rows], states = self._score_chunk([suffixes[i] for i in rows], continuations)
            if hidden is None or states is None:
                hidden = None  # every item's features, or none
                continue
            for view, values in states.items():
                hidden.setdefault(view, np.empty((len(suffixes), values.shape[1]), np.float32))
                hidden[view][rows] = values
        self._hidden = hidden
        return out

    def _chunks(
        self, suffixes: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]]
    ) -> list[list[int]]:
        """Group items so each group fits one batch and the sequence budget."""
        branch_tokens = sum(len(c) - 1 for c in continuations)
        seqs_per_item = 1 + sum(len(c) > 1 for c in continuations)
        max_items = max(1, (self.n_seq_max - 1) // seqs_per_item)
        groups: list[list[int]] = []
        current: list[int] = []
        used = 0
        for i, suffix in enumerate(suffixes):
            need = len(suffix) + branch_tokens
            if need > self.n_batch:
                raise ValueError(
                    f"an item needs {need} tokens, more than the batch ({self.n_batch})"
                )
            if current and (used + need > self.n_batch or len(current) >= max_items):
                groups.append(current)
                current, used = [], 0
            current.append(i)
            used += need
        if current:
            groups.append(current)
        return groups

    def _score_chunk(
        self, suffixes: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]]
    ) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
        """The items' label scores, and (when kept) their hidden states at the label position."""
        ll, mem = self._ll, self._mem
        n_prefix = len(self._prefix or [])
        multi = [j for j, c in enumerate(continuations) if len(c) > 1]
        tokens: list[tuple[int, int, tuple[int, ...], bool]] = []
        # (item, continuation or -1 for the trunk, token position in the continuation) per logit
        wanted: list[tuple[int, int, int]] = []
        seq = 1
        used_seqs: list[int] = []
        for item, suffix in enumerate(suffixes):
            trunk = seq
            branches = {j: seq + 1 + k for k, j in enumerate(multi)}
            seq += 1 + len(multi)
            item_seqs = (trunk, *branches.values())
            for s in item_seqs:
                ll.llama_memory_seq_cp(mem, 0, s, -1, -1)
            used_seqs += item_seqs
            for k, token in enumerate(suffix):
                last = k == len(suffix) - 1
                tokens.append((token, n_prefix + k, item_seqs, last))
            wanted.append((item, -1, 0))
            for j, s in branches.items():
                for k, token in enumerate(continuations[j][:-1]):
                    tokens.append((token, n_prefix + len(suffix) + k, (s,), True))
                    wanted.append((item, j, k + 1))
        try:
            self._fill(tokens)
            self._decode()
            scores = np.zeros((len(suffixes), len(continuations)))
            firsts = np.array([c[0] for c in continuations])
            work = np.empty(self.n_vocab)
            for out_index, (item, j, k) in enumerate(wanted):
                row = self._logits(out_index)
                if j < 0:  # the trunk's last token predicts every continuation's first token
                    scores[item] += _log_softmax_at(row, firsts, work)
                else:
                    wanted_token = np.array([continuations[j][k]])
                    scores[item, j] += _log_softmax_at(row, wanted_token, work)[0]
            return scores, self._trunk_states(wanted)
        finally:
            for s in used_seqs:
                ll.llama_memory_seq_rm(mem, s, -1, -1)

    def _trunk_states(self, wanted: list[tuple[int, int, int]]) -> dict[str, np.ndarray] | None:
        """Each item's hidden states where its label is predicted (its trunk's output row)."""
        if self._capture is None:
            return None
        trunks = [index for index, (_, j, _) in enumerate(wanted) if j < 0]
        try:
            views = self._capture.rows(self._outputs, self._batch.n_tokens)
        except RuntimeError:  # a model whose graph names its layers otherwise: answers only
            return None
        return {view: rows[trunks] for view, rows in views.items()}

    def _fill(self, tokens: Sequence[tuple[int, int, tuple[int, ...], bool]]) -> None:
        batch = self._batch
        if len(tokens) > self.n_batch:
            raise ValueError("batch overflow")
        self._outputs = []
        for i, (token, pos, seqs, logits) in enumerate(tokens):
            batch.token[i] = token
            batch.pos[i] = pos
            batch.n_seq_id[i] = len(seqs)
            for k, s in enumerate(seqs):
                batch.seq_id[i][k] = s
            batch.logits[i] = 1 if logits else 0
            if logits:
                self._outputs.append(i)
        batch.n_tokens = len(tokens)

    def _decode(self) -> None:
        small = self._batch.n_tokens < SMALL_DECODE
        tuned = self.tuner is not None and self._warm and self.pinned is None and not small
        if small:
            threads = 1
        elif tuned and self.tuner:
            threads = self.tuner.choose()
        else:
            threads = self.pinned or self.n_threads
        if threads != self._threads_now:
            self._ll.llama_set_n_threads(self._ctx, threads, threads)
            self._threads_now = threads
        began = time.perf_counter()
        if self._capture is not None:
            self._capture.parts = {}
        status = self._ll.llama_decode(self._ctx, self._batch)
        if status != 0:
            raise RuntimeError(f"llama_decode failed with status {status}")
        if tuned and self.tuner:
            self.tuner.record(threads, time.perf_counter() - began, self._batch.n_tokens)
        self._warm = True

    def _logits(self, out_index: int) -> np.ndarray:
        """One output's logits: a float32 view of llama.cpp's buffer, valid until the next
        decode."""
        pointer = self._ll.llama_get_logits_ith(self._ctx, self._outputs[out_index])
        return np.ctypeslib.as_array(
            ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), shape=(self.n_vocab,)
        )

    # -- baseline -------------------------------------------------------------------------
    def score_naive(
        self, prompts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]]
    ) -> np.ndarray:
        """Score each full prompt on its own, with no shared prefix and no batching of items:
        the slow way, kept as the reference that the fast path is checked and timed against."""
        self.set_prefix([])
        return np.vstack([self.score([prompt], continuations) for prompt in prompts])

    def close(self) -> None:
        ll = self._ll
        if getattr(self, "_model", None):
            if self._ctx is not None:
                ll.llama_free(self._ctx)
            ll.llama_batch_free(self._batch)
            self.weights.release()
            self._ctx = self._model = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown
            self.close()
