"""Write one benchmark's figures into its own section of docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import re
from datetime import date
from pathlib import Path

REPORT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = (
    "# Benchmarks\n\n"
    "Each section is written by the script in `bench/` named in it, run by hand. Timings are\n"
    "reported as ratios against a baseline measured in the same run, because the machines are\n"
    "shared and noisy; absolute figures are given for orientation only.\n"
)


def machine() -> str:
    """A one-line description of the machine the figures come from."""
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_section(name: str, markdown: str, command: str) -> None:
    """Replace (or append) the section `name` of docs/benchmarks.md."""
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    text = REPORT.read_text() if REPORT.exists() else HEADER
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    body = (
        f"{begin}\n## {name}\n\n"
        f"`{command}` — {date.today().isoformat()}, {machine()}\n\n"
        f"{markdown.strip()}\n{end}"
    )
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    text = (
        pattern.sub(lambda _: body, text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + body + "\n"
    )
    REPORT.write_text(text)
