"""The labeler contract, shared prompt pieces and label/text hygiene.

Every backend turns (texts, task) into a stream of ``(index, LabelResult)`` pairs in completion
order, so that the caller can persist results as they arrive and resume after an interruption.
Item texts are untrusted: they are cleaned, bounded and fenced between markers that cannot occur
inside them, so an instruction written in an item cannot change the label set or the answer format.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "FENCE_END",
    "FENCE_START",
    "LabelResult",
    "LabelTask",
    "Labeler",
    "clean_text",
    "escape_fenced",
    "fence",
    "guidance",
    "match_label",
    "normalise_label",
    "select_examples",
    "stable_hash",
]

#: Markers around every item text in a prompt; ``fence`` guarantees neither occurs inside.
FENCE_START = "<<<TEXT"
FENCE_END = "TEXT>>>"
DEFAULT_MAX_CHARS = 2000


#: Where a local model's "middle" view of an item is read: the mean of its layers' outputs from
#: 45% to 60% of its depth (`llama_scorer.feature_layers`).
FEATURE_DEPTH = (0.45, 0.60)
#: The views of an item a labeler's features may hold (`LabelResult.features`): a local
#: model's middle layers (named with their depth, so that vectors read elsewhere in the model
#: are never mixed with them) and its last layer, normed.
FEATURE_VIEWS = ("middle-{:.2f}-{:.2f}".format(*FEATURE_DEPTH), "last")


@dataclass
class LabelTask:
    """What to label: a description, the ordered label set, optional few-shot examples, and
    the project's label descriptions and guidelines (Markdown)."""

    description: str
    labels: list[str]
    examples: list[tuple[str, str]] = field(default_factory=list)
    label_descriptions: dict[str, str] = field(default_factory=dict)
    guidelines: str = ""

    def __post_init__(self) -> None:
        if len(self.labels) < 2:
            raise ValueError("a labeling task needs at least two labels")
        keys = [normalise_label(label) for label in self.labels]
        if len(set(keys)) != len(keys) or "" in keys:
            raise ValueError(f"labels must be distinct and non-empty after normalising: {keys}")


@dataclass
class LabelResult:
    """One item's prediction, or its failure (``label is None`` and ``error`` set)."""

    label: str | None
    probs: dict[str, float] | None
    confidence: float | None
    reasoning: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    latency_s: float = 0.0
    cost_usd: float = 0.0
    error: str | None = None
    raw: str | None = None
    truncated: bool = False  # the text was cut to fit the prompt
    attempts: int = 1  # requests made for this item (retries included)
    votes: dict[str, int] | None = None  # self-consistency or committee votes
    members: list[LabelResult] | None = None  # committee members' own results
    label_logprobs: dict[str, float] | None = None  # uncalibrated log-probabilities, if scored
    # The number the model wrote, kept only where the endpoint gave no usable probabilities
    # (``confidence`` is then that same self-reported number, which routing must not trust).
    reported_confidence: float | None = None
    # The model's own representations of the item where it gives the label, by view (a local
    # model's hidden states: `FEATURE_VIEWS`): features a student can learn the task from.
    # Stored beside the answer.
    features: dict[str, np.ndarray] | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.error is None and self.label is not None


@runtime_checkable
class Labeler(Protocol):
    """A backend that labels texts; results stream back as they complete."""

    model_id: str

    def prompt_version(self, task: LabelTask) -> str:
        """Stable hash of template + settings + chosen examples, the cache key of predictions."""
        ...

    def label_stream(
        self, texts: Sequence[str], task: LabelTask
    ) -> Iterator[tuple[int, LabelResult]]:
        """Yield ``(index into texts, result)`` in completion order; never raise per item."""
        ...

    def close(self) -> None: ...


def stable_hash(*parts: object) -> str:
    """A short, process-independent hash of JSON-serialisable parts (for prompt versions)."""
    payload = json.dumps(parts, sort_keys=True, ensure_ascii=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


#: What a local labeler's features are (their views): stored features are reused only under it.
FEATURES_VERSION = stable_hash(FEATURE_VIEWS)[:12]


def normalise_label(label: str) -> str:
    """Case- and whitespace-insensitive form of a label, for matching answers to the label set."""
    text = unicodedata.normalize("NFKC", str(label)).casefold()
    text = text.strip().strip("\"'`.,;:!*").strip()
    return re.sub(r"\s+", " ", text)


def match_label(answer: object, labels: Sequence[str]) -> str | None:
    """The label of ``labels`` that ``answer`` names (after normalising), else None."""
    if not isinstance(answer, str):
        return None
    key = normalise_label(answer)
    for label in labels:
        if normalise_label(label) == key:
            return label
    return None


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def clean_text(text: object, max_chars: int = DEFAULT_MAX_CHARS) -> tuple[str, bool]:
    """Make an untrusted text safe to put in a prompt: valid UTF-8, no control or bidi
    characters, at most ``max_chars`` characters. Returns ``(text, truncated)``."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    text = str(text).encode("utf-8", errors="replace").decode("utf-8")  # lone surrogates
    text = _CONTROL.sub(" ", text)
    if len(text) <= max_chars:
        return text, False
    return text[:max_chars].rstrip() + " …", True


_FENCE_PARTS = re.compile(r"<{3,}|>{3,}")


def escape_fenced(text: str) -> str:
    """Break up runs of 3+ angle brackets, so no fence marker (nor a look-alike) can appear
    inside a fenced text and close the fence early."""
    return _FENCE_PARTS.sub(lambda m: " ".join(m.group(0)), text)


def fence(text: str) -> str:
    """Put ``text`` between the fence markers, escaped."""
    return f"{FENCE_START}\n{escape_fenced(text)}\n{FENCE_END}"


def guidance(task: LabelTask, max_chars: int) -> str:
    """The label descriptions and the start of the guidelines (at most ``max_chars`` of them),
    as prompt text; empty when the task has neither, so that prompts (and their versions) of
    projects without guidelines stay as they were.

    Written by the project's admins, so they instruct; still cleaned, bounded and kept from
    forming a fence marker.
    """
    parts = []
    described = [
        (label, task.label_descriptions[label])
        for label in task.labels
        if task.label_descriptions.get(label, "").strip()
    ]
    if described:
        lines = [f"- {label}: {clean_text(text, 500)[0]}" for label, text in described]
        parts.append("What the labels mean:\n" + "\n".join(lines))
    if task.guidelines.strip() and max_chars > 0:
        excerpt, cut = clean_text(task.guidelines.strip(), max_chars)
        title = "Annotation guidelines (the beginning)" if cut else "Annotation guidelines"
        parts.append(f"{title}:\n{excerpt}")
    return escape_fenced("\n\n".join(parts))


def instructions(template: str, task: LabelTask, max_chars: int) -> str:
    """The head of a prompt: the task's description (bounded), its guidance (see `guidance`)
    and the label list, filled into ``template``'s ``{description}`` and ``{labels}``."""
    description = clean_text(task.description, 1000)[0].strip()
    extra = guidance(task, max_chars)
    return template.format(
        description=f"{description}\n{extra}" if extra else description,
        labels=", ".join(task.labels),
    )


def select_examples(
    examples: Sequence[tuple[str, str]],
    labels: Sequence[str],
    per_label: int = 1,
    max_chars: int = 300,
) -> list[tuple[str, str]]:
    """A balanced, deterministic few-shot subset: up to ``per_label`` examples per label.

    Within a label, short examples (≤ ``max_chars``) are preferred, then the order of a content
    hash, so the choice does not depend on the order items arrived in and stays mostly stable as
    more labeled items appear. Examples are interleaved label by label (in label-set order) so
    that no label is systematically last, the position small models favour most.
    """
    by_label: dict[str, list[str]] = {label: [] for label in labels}
    for text, answer in examples:
        label = match_label(answer, labels)
        if label is not None and isinstance(text, str) and text.strip():
            by_label[label].append(text)

    def key(text: str) -> tuple[bool, str]:
        return len(text) > max_chars, hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()

    chosen = {label: sorted(set(texts), key=key)[:per_label] for label, texts in by_label.items()}
    out: list[tuple[str, str]] = []
    for rank in range(per_label):
        for label in labels:
            if rank < len(chosen[label]):
                out.append((chosen[label][rank], label))
    return out
