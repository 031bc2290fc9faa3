"""Guidelines and label descriptions: checked on the way in, rendered safely on the way out.

A project's guidelines are Markdown written by its admins and read by annotators in the review
page. Markdown allows raw HTML and links to any scheme; here neither passes: raw HTML is shown
as text, links keep only http(s) targets (any other becomes plain text) and images are not
loaded (the review page's CSP would block a remote image anyway). Pure: text in, text out.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

from .errors import InputError

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

__all__ = [
    "MAX_DESCRIPTION_CHARS",
    "MAX_GUIDELINES_CHARS",
    "canonical_label",
    "check_description",
    "check_guidelines",
    "merge_descriptions",
    "parse_descriptions",
    "render_markdown",
]

MAX_GUIDELINES_CHARS = 100_000
MAX_DESCRIPTION_CHARS = 1_000
# Controls other than tab and newline, and bidi overrides: they hide or reorder what is read.
_HIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]")
_SAFE_LINK = re.compile(r"^https?://", re.I)


def check_guidelines(text: str) -> str:
    """Guidelines as stored: newlines normalised, hidden characters refused, bounded."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if len(text) > MAX_GUIDELINES_CHARS:
        raise InputError(
            f"the guidelines have {len(text):,} characters; at most {MAX_GUIDELINES_CHARS:,}"
        )
    found = _HIDDEN.search(text)
    if found:
        line = text.count("\n", 0, found.start()) + 1
        code = f"U+{ord(found.group()):04X}"
        raise InputError(f"the guidelines hold a control or bidi character ({code}) on line {line}")
    return text


def check_description(label: str, description: str) -> str:
    """One label's description: one paragraph of plain text, bounded."""
    cleaned = " ".join(unicodedata.normalize("NFC", str(description)).split())
    if _HIDDEN.search(cleaned):
        raise InputError(f"the description of {label!r} holds a control or bidi character")
    if len(cleaned) > MAX_DESCRIPTION_CHARS:
        raise InputError(
            f"the description of {label!r} has {len(cleaned)} characters; "
            f"at most {MAX_DESCRIPTION_CHARS}"
        )
    return cleaned


def parse_descriptions(raw: str, labels: Sequence[str]) -> dict[str, str]:
    """Label descriptions from a JSON object ``{"label": "description", ...}``.

    Labels are matched to the project's case-insensitively and written as the project spells
    them; an unknown label is bad input (a typo would otherwise describe nothing).
    """
    try:
        data: Any = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputError(f"label descriptions are not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise InputError('label descriptions must be a JSON object {"label": "description"}')
    return {canonical_label(name, labels): text for name, text in data.items()}


def canonical_label(name: str, labels: Sequence[str]) -> str:
    """The project's spelling of a label named case- and space-insensitively."""
    key = " ".join(str(name).split()).casefold()
    for label in labels:
        if label.casefold() == key:
            return label
    raise InputError(f"{name!r} is not one of the project's labels ({', '.join(labels)})")


def merge_descriptions(
    current: Mapping[str, str], changes: Mapping[str, str], labels: Sequence[str]
) -> dict[str, str]:
    """Descriptions after `changes` (an empty text removes one), checked, in label-set order."""
    merged = dict(current)
    for label, text in changes.items():
        merged[label] = check_description(label, text)
    return {label: merged[label] for label in labels if merged.get(label)}


@cache
def _renderer() -> MarkdownIt:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.disable("image")
    md.validateLink = lambda url: bool(_SAFE_LINK.match(url.strip()))  # type: ignore[method-assign]
    md.add_render_rule("link_open", _link_open)
    return md


def _link_open(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
    """Links open elsewhere and tell the target nothing of the page they came from."""
    tokens[idx].attrSet("rel", "noopener noreferrer nofollow")
    tokens[idx].attrSet("target", "_blank")
    return str(self.renderToken(tokens, idx, options, env))


def render_markdown(text: str) -> str:
    """HTML for guidelines: raw HTML escaped, only http(s) links, no images."""
    return str(_renderer().render(text))
