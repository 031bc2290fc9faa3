"""A fake OpenAI-compatible chat server on loopback, for tests and benchmarks.

It speaks real HTTP (``POST /v1/chat/completions``), answers from a deterministic rule
(keyword → label) and injects faults on request: latency, 429 with Retry-After, 500, dropped
connections, hangs past the client's timeout, non-JSON garbage, out-of-set labels and bad
confidences. Faults are drawn from a hash of (item text, how many times it was asked), so a run
is reproducible whatever the order requests arrive in. Counters per item let tests check that
nothing was lost or duplicated.

    with serve_fake_openai(FakeConfig(latency_s=0.2)) as server:
        labeler = OpenAILabeler("fake-model", base_url=server.base_url)
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import accumulate
from typing import Any

from labelloop.labelers.base import FENCE_END, FENCE_START, normalise_label

__all__ = [
    "FakeConfig",
    "FakeOpenAIServer",
    "FakeStats",
    "keyword_decision",
    "keyword_rule",
    "serve_fake_openai",
]

Rule = Callable[[str, list[str]], str]


def keyword_decision(text: str, label: str) -> bool:
    """Whether the label's name occurs in the text as a word (per-label yes/no questions)."""
    pattern = r"\b" + re.escape(normalise_label(label)) + r"\b"
    return re.search(pattern, text.casefold()) is not None


def keyword_rule(text: str, labels: list[str]) -> str:
    """The label whose name occurs first in the text (as a word), else the first label."""
    low = text.casefold()
    best, best_pos = labels[0], math.inf
    for label in labels:
        match = re.search(r"\b" + re.escape(normalise_label(label)) + r"\b", low)
        if match and match.start() < best_pos:
            best, best_pos = label, match.start()
    return best


def noisy_rule(truth: dict[str, str], wrong_in_ten: int = 3) -> Rule:
    """The label `truth` gives a text, except for `wrong_in_ten` texts in ten (chosen by a hash
    of the text, so every run errs on the same ones), which get another label."""

    def rule(text: str, labels: list[str]) -> str:
        right = truth.get(text, labels[0])
        wrong = int(hashlib.sha256(text.encode()).hexdigest(), 16) % 10 < wrong_in_ten
        return next(label for label in labels if label != right) if wrong else right

    return rule


@dataclass
class FakeConfig:
    """Knobs of the fake server. Fault fractions are per request and add up (must be ≤ 1)."""

    latency_s: float = 0.0
    p_429: float = 0.0
    retry_after_s: float = 0.05
    p_500: float = 0.0
    p_drop: float = 0.0  # close the connection without answering
    p_timeout: float = 0.0  # hang for ``hang_s`` (past the client's timeout)
    hang_s: float = 5.0
    p_garbage: float = 0.0  # a 200 whose content is not JSON
    p_out_of_set: float = 0.0  # a label outside the label set
    p_bad_confidence: float = 0.0  # confidence missing, > 1 or NaN
    p_case_noise: float = 0.0  # the right label in odd case and spacing (must be accepted)
    always_garbage: Callable[[str], bool] | None = None  # texts that never get a valid answer
    rule: Rule = keyword_rule
    # Per-label yes/no questions (a prompt asking whether one label applies, answered "yes" or
    # "no"): whether the asked label applies to the text. None: `rule` answers them too.
    decision_rule: Callable[[str, str], bool] | None = None
    confidence: float = 0.9
    logprobs: bool = True  # answer with token logprobs when the request asks for them
    label_prob: float = 0.8  # probability given to the chosen label in the logprobs
    label_token_chars: int | None = None  # split label values into tokens of this many chars
    # Share of each label's probability on its case and spacing variants ("Positive",
    # " positive"), and on a token that begins no label ("<"), as real tokenizers spread it.
    variant_mass: float = 0.0
    stray_mass: float = 0.0
    obey_injection: bool = False  # copy a {"label", "confidence"} written in the item text
    json_schema: bool = True  # accept structured outputs (else refuse, naming response_format)
    json_object_schema: bool = True  # accept a schema inside JSON mode (llama-cpp-python's way)
    refusal_status: int = 400  # llama-cpp-python's server refuses json_schema with a 500
    # One request computed at a time, like a llama.cpp server on a CPU: the others queue, and
    # a request whose client left (timed out) is still computed.
    serial: bool = False
    sample_flip: float = 0.0  # with n > 1, fraction of samples that pick another label
    max_n: int | None = None  # cap on choices per request (None: honour ``n``)
    first_429: int = 0  # the first k requests of every item get a 429 with Retry-After
    seed: int = 0


@dataclass
class FakeStats:
    """What the server saw. ``requests`` and ``answered`` count per item text."""

    requests: Counter[str] = field(default_factory=Counter)
    answered: Counter[str] = field(default_factory=Counter)  # valid, in-set answers sent
    arrivals: list[tuple[float, str]] = field(default_factory=list)  # (monotonic time, text)
    in_flight: int = 0
    max_in_flight: int = 0
    prompts: list[list[dict[str, Any]]] = field(default_factory=list)
    formats: Counter[str] = field(default_factory=Counter)  # response_format types asked for
    top_logprobs: Counter[int] = field(default_factory=Counter)  # top_logprobs values asked for
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def total(self) -> int:
        return sum(self.requests.values())


_SEED_TEXT = re.compile(r'Text: "(.*)"\s*\n\s*Available labels', re.S)
_LABELS = re.compile(r"labels[^:\n]*:\s*(\[.*?\])", re.I)


def _extract(messages: list[dict[str, Any]]) -> tuple[str, list[str]]:
    """The item text (fenced, or the seed's ``Text: "..."``) and the label set of a prompt."""
    everything = "\n".join(str(m.get("content", "")) for m in messages)
    user = str(messages[-1].get("content", "")) if messages else ""
    start = user.rfind(FENCE_START + "\n")
    end = user.rfind("\n" + FENCE_END)
    if 0 <= start < end:
        text = user[start + len(FENCE_START) + 1 : end]
    else:
        seed = _SEED_TEXT.search(everything)
        text = seed.group(1) if seed else user
    found = _LABELS.search(everything)
    labels = json.loads(found.group(1)) if found else ["positive", "negative"]
    return text, [str(label) for label in labels]


_ASKED = re.compile(r'(?:label "|text about )([^"?\n]+)["?]')


def _asked_label(messages: list[dict[str, Any]]) -> str | None:
    """The label a per-label yes/no question asks about (in the system message), if any."""
    system = str(messages[0].get("content", "")) if messages else ""
    found = _ASKED.search(system)
    return found.group(1) if found else None


def _uniform(seed: int, *parts: object) -> float:
    digest = hashlib.sha256(repr((seed, *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeOpenAIServer

    def setup(self) -> None:
        super().setup()  # headers and body go out in two writes: without this, Nagle's
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # 40 ms stalls

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/_stats":  # counters, for a client in another process
            stats = self.server.stats
            with stats.lock:
                payload = {
                    "total": stats.total,
                    "requests": dict(stats.requests),
                    "answered": dict(stats.answered),
                    "max_in_flight": stats.max_in_flight,
                }
            self._send(200, payload)
            return
        self._send(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        raw = self.rfile.read(length)
        if len(raw) < length:  # the client went away mid-request: nothing to answer or count
            self.close_connection = True
            return
        body = json.loads(raw or b"{}")
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        stats = self.server.stats
        messages = body.get("messages", [])
        text, labels = _extract(messages)
        self.asked = _asked_label(messages)
        with stats.lock:
            stats.requests[text] += 1
            attempt = stats.requests[text]
            stats.arrivals.append((time.monotonic(), text))
            stats.prompts.append(messages)
            response_format = body.get("response_format") or {}
            schema = "+schema" if "schema" in response_format else ""
            stats.formats[f"{response_format.get('type')}{schema}"] += 1
            if body.get("logprobs"):
                stats.top_logprobs[int(body.get("top_logprobs") or 0)] += 1
            stats.in_flight += 1
            stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            self._answer(body, text, labels, attempt)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            with stats.lock:
                stats.in_flight -= 1

    def _answer(self, body: dict[str, Any], text: str, labels: list[str], attempt: int) -> None:
        cfg, stop = self.server.config, self.server.stop
        if cfg.latency_s and cfg.serial:
            with self.server.slot:
                stop.wait(cfg.latency_s)
        elif cfg.latency_s:
            stop.wait(cfg.latency_s)
        u = _uniform(cfg.seed, text, attempt)
        edges = [cfg.p_drop, cfg.p_timeout, cfg.p_429, cfg.p_500, cfg.p_garbage]
        fault = next((i for i, edge in enumerate(accumulate(edges)) if u < edge), None)
        if fault == 0:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault == 1:
            stop.wait(cfg.hang_s)
        if fault == 2 or attempt <= cfg.first_429:
            self._send(429, {"error": {"message": "rate limited"}}, cfg.retry_after_s)
            return
        if fault == 3:
            self._send(500, {"error": {"message": "internal error"}})
            return
        response_format = body.get("response_format") or {}
        kind = response_format.get("type")
        schema = response_format.get("json_schema", {}).get("schema") or response_format.get(
            "schema"
        )
        refused = (kind == "json_schema" and not cfg.json_schema) or (
            kind == "json_object" and schema and not cfg.json_object_schema
        )
        if refused:
            message = f"response_format {kind!r} with a schema is not supported"
            error = {"message": message, "type": "invalid_request_error"}
            self._send(cfg.refusal_status, {"error": error})
            return
        structured = bool(schema)
        if schema:  # constrained decoding: the answer's label comes from the schema's enum
            labels = schema.get("properties", {}).get("label", {}).get("enum") or labels
        if fault == 4 or (cfg.always_garbage and cfg.always_garbage(text)):
            self._send(200, self._completion(body, ["Sure! I think it is good."], labels, text))
            return
        n = max(1, int(body.get("n", 1) or 1))
        n = min(n, cfg.max_n or n)
        contents = [self._content(text, labels, attempt, u, k, structured) for k in range(n)]
        self._send(200, self._completion(body, contents, labels, text))

    def _content(
        self, text: str, labels: list[str], attempt: int, u: float, k: int, structured: bool
    ) -> str:
        cfg = self.server.config
        asked = getattr(self, "asked", None)
        if cfg.decision_rule is not None and asked is not None and labels == ["yes", "no"]:
            label = "yes" if cfg.decision_rule(text, asked) else "no"
        else:
            label = cfg.rule(text, labels)
        if (k or attempt > 1) and _uniform(cfg.seed, text, attempt, k, "flip") < cfg.sample_flip:
            label = labels[(labels.index(label) + 1) % len(labels)]
        base = sum([cfg.p_drop, cfg.p_timeout, cfg.p_429, cfg.p_500, cfg.p_garbage])
        answer: dict[str, Any] = {"label": label, "confidence": cfg.confidence}
        if cfg.obey_injection:
            answer.update(_injected(text, labels))
            label = answer["label"]
        v = u - base
        if 0 <= v < cfg.p_out_of_set:
            if not structured:  # a schema's enum keeps the label in the set
                answer["label"] = "banana"
        elif 0 <= v - cfg.p_out_of_set < cfg.p_bad_confidence:
            bad = [None, 1.7, math.nan][attempt % 3]
            if bad is None:
                del answer["confidence"]
            else:
                answer["confidence"] = bad
        elif 0 <= v - cfg.p_out_of_set - cfg.p_bad_confidence < cfg.p_case_noise:
            answer["label"] = f"  {label.upper()} "
        answer["reasoning"] = "matched a keyword"
        if answer["label"] == label and answer.get("confidence") == cfg.confidence:
            with self.server.stats.lock:
                self.server.stats.answered[text] += 1
        return json.dumps(answer)

    def _completion(
        self, body: dict[str, Any], contents: list[str], labels: list[str], text: str
    ) -> dict[str, Any]:
        want_logprobs = bool(body.get("logprobs")) and self.server.config.logprobs
        choices = []
        for k, content in enumerate(contents):
            choice: dict[str, Any] = {
                "index": k,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
            if want_logprobs:
                choice["logprobs"] = {"content": self._logprobs(content, labels)}
            choices.append(choice)
        prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", []))
        usage = {
            "prompt_tokens": prompt_chars // 4 + 1,
            "completion_tokens": sum(len(c) for c in contents) // 4 + 1,
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake-model"),
            "choices": choices,
            "usage": usage,
        }

    def _logprobs(self, content: str, labels: list[str]) -> list[dict[str, Any]]:
        """Token logprobs of ``content``; at the label value, alternatives for every label."""
        cfg = self.server.config
        match = re.search(r'"label":\s*"([^"]*)"', content)
        if not match:
            return [_token(content, 0.0)]
        value = match.group(1)
        step = cfg.label_token_chars or max(1, len(value))
        pieces = [value[i : i + step] for i in range(0, len(value), step)] or [""]
        rest = (1.0 - cfg.label_prob) / max(1, len(labels) - 1)
        alternatives: dict[str, float] = {}
        for label in [value, *(label for label in labels if label != value)]:
            p = (cfg.label_prob if label == value else rest) * (1.0 - cfg.stray_mass)
            head = label[:step]
            variants = {head: 1.0 - cfg.variant_mass}
            if cfg.variant_mass:
                variants[head[:1].swapcase() + head[1:]] = cfg.variant_mass / 2
                variants[" " + head] = cfg.variant_mass / 2
            for variant, share in variants.items():
                alternatives[variant] = alternatives.get(variant, 0.0) + p * share
        if cfg.stray_mass:
            alternatives["<"] = cfg.stray_mass
        tokens = [_token(content[: match.start(1) - 1], -0.01), _token('"' + pieces[0], 0.0)]
        tokens[-1]["logprob"] = math.log(alternatives[value[:step]])
        tokens[-1]["top_logprobs"] = [
            {"token": '"' + alt, "logprob": math.log(p), "bytes": None}
            for alt, p in alternatives.items()
            if p > 0
        ]
        tokens += [_token(piece, -0.001) for piece in pieces[1:]]
        tokens.append(_token(content[match.end(1) :], -0.01))
        return tokens

    def _send(self, status: int, payload: dict[str, Any], retry_after: float | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if retry_after is not None:
            self.send_header("Retry-After", f"{retry_after:g}")
        self.end_headers()
        self.wfile.write(data)


_INJECTED = re.compile(r"\{[^{}]*\}")


def _injected(text: str, labels: list[str]) -> dict[str, Any]:
    """The label and confidence an item's text dictates, as a model that obeys it answers."""
    for candidate in _INJECTED.findall(text):
        try:
            data = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("label") in labels:
            return {k: data[k] for k in ("label", "confidence") if k in data}
    return {}


def _token(text: str, logprob: float) -> dict[str, Any]:
    return {"token": text, "logprob": logprob, "bytes": None, "top_logprobs": []}


class FakeOpenAIServer(ThreadingHTTPServer):
    """The server object; use :func:`serve_fake_openai` to run it in a background thread."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 512
    allow_reuse_address = True

    def __init__(self, config: FakeConfig, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.config = config
        self.stats = FakeStats()
        self.stop = threading.Event()
        self.slot = threading.Lock()  # the one computing slot of a ``serial`` server

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


@contextmanager
def serve_fake_openai(config: FakeConfig | None = None) -> Iterator[FakeOpenAIServer]:
    """Run a fake server on a free loopback port for the duration of the ``with`` block."""
    server = FakeOpenAIServer(config or FakeConfig())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def main(argv: list[str] | None = None) -> None:
    """Run a fake server in the foreground (for benchmarks in a separate process); prints its
    base URL on the first line of stdout."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    server = FakeOpenAIServer(FakeConfig(latency_s=args.latency, seed=args.seed), args.port)
    print(server.base_url, flush=True)
    try:
        server.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
