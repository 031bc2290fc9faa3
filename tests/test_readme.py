"""The README's walkthrough, run command by command on a fresh project, so it cannot drift from
the command line.

The bash blocks of its sections "The loop" and "Reviewing" are read from README.md and every
line is run as written, in order, in a temporary folder that holds the files the walkthrough
names (`unlabeled.csv`, `trusted.csv`: the bundled sample). `cd` changes the folder for the
lines after it; `VAR=value` before a command sets that variable for it; `labelloop ...` runs the
command line in this process, where `serve` answers one request instead of serving forever.
Any other line fails the test: the walkthrough should only hold what a user types.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from labelloop.cli import run
from labelloop.testing.fake_openai import serve_fake_openai

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SAMPLE = ROOT / "src" / "labelloop" / "sample_data"
WALKTHROUGH = ("The loop", "Reviewing")
#: What the README writes where the reader puts a value of their own.
PLACEHOLDERS = {"…": "a-long-test-password"}


def bash_blocks(text: str, sections: tuple[str, ...]) -> Iterator[str]:
    """The ```bash blocks under the headings named `sections` (and their sub-headings)."""
    current = None
    for part in re.split(r"(?m)^(#{2,3} .*)$", text):
        heading = re.match(r"#{2,3} (.*)", part)
        if heading:
            current = heading.group(1).strip()
            continue
        if current in sections:
            yield from re.findall(r"```bash\n(.*?)```", part, re.S)


def command_lines(block: str) -> Iterator[tuple[list[str], str]]:
    """Each command of a block as (words, comment): continuation lines joined, comments kept
    apart (they sometimes name the alternative a user may type)."""
    for line in block.replace("\\\n", " ").splitlines():
        code, _, comment = line.partition("  #")
        words = shlex.split(code, comments=True)
        if words:
            yield [_fill(word) for word in words], comment.strip()


def _fill(word: str) -> str:
    """`VAR=…` with a value of the test's where the README leaves the value to the reader."""
    name, sep, value = word.partition("=")
    return f"{name}={PLACEHOLDERS[value]}" if sep and value in PLACEHOLDERS else word


def walkthrough() -> list[tuple[list[str], str]]:
    text = README.read_text(encoding="utf-8")
    return [line for block in bash_blocks(text, WALKTHROUGH) for line in command_lines(block)]


def test_the_walkthrough_is_found_and_holds_the_loop() -> None:
    """The parser sees what a reader sees: the loop's commands in order, then reviewing."""
    commands = [words[1] for words, _ in walkthrough() if words[0] == "labelloop"]
    loop = ["init", "import", "import", "prelabel", "calibrate", "route", "stats", "export"]
    assert commands[: len(loop)] == loop
    assert "serve" in commands and "user" in commands


def play(
    folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    adjust: Callable[[list[str], str], list[str]] = lambda words, comment: words,
) -> list[list[str]]:
    """Run the walkthrough in `folder`; returns the labelloop commands as run."""
    import labelloop.server

    served: list[int] = []

    def serve_one_request(app, **options) -> None:  # `serve` answers, then returns
        with TestClient(app) as client:
            served.append(client.get("/health").status_code)

    monkeypatch.setattr(labelloop.server, "run", serve_one_request)
    monkeypatch.chdir(folder)
    ran = []
    for words, comment in walkthrough():
        env = {}
        while "=" in words[0] and not words[0].startswith("-"):
            name, _, value = words.pop(0).partition("=")
            env[name] = value
        if words[0] == "cd":
            monkeypatch.chdir(Path.cwd() / words[1])
            continue
        assert words[0] == "labelloop", f"the walkthrough runs {words[0]!r}: {' '.join(words)}"
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        args = adjust(words[1:], comment)
        assert run(args) == 0, f"`labelloop {shlex.join(args)}` failed"
        for name in env:
            monkeypatch.delenv(name)
        ran.append(args)
    assert served == [200] * sum(args[0] == "serve" for args in ran)
    return ran


def fresh_folder(tmp_path: Path) -> Path:
    """Where a reader starts: their two files in the folder the walkthrough works in."""
    project = tmp_path / "reviews"
    project.mkdir()
    shutil.copy(SAMPLE / "reviews_pool.csv", project / "unlabeled.csv")
    shutil.copy(SAMPLE / "reviews_gold.csv", project / "trusted.csv")
    return tmp_path


def check_outcome(folder: Path) -> None:
    rows = [json.loads(line) for line in (folder / "reviews" / "labels.jsonl").open()]
    assert len(rows) == 400
    assert {"id", "text", "state", "label", "label_source", "llm_label"} <= set(rows[0])
    assert sum(r["state"] == "human_labeled" for r in rows) == 100  # the trusted file
    pool = [r for r in rows if r["state"] != "human_labeled"]
    assert all(r["llm_label"] in ("positive", "negative", "neutral") for r in pool)
    assert {r["state"] for r in pool} <= {"auto_accepted", "in_review"}


def test_the_readme_walkthrough_runs_with_an_endpoint(tmp_path, monkeypatch) -> None:
    """Every command as written, but `prelabel` takes the alternative its comment gives
    (`--model NAME --base-url URL`), answered by the fake OpenAI-compatible server."""
    folder = fresh_folder(tmp_path)
    with serve_fake_openai() as fake:

        def at_the_endpoint(args: list[str], comment: str) -> list[str]:
            if args[0] != "prelabel":
                return args
            assert "--model NAME --base-url URL" in comment  # the README says so
            return [*args, "--model", "fake-model", "--base-url", fake.base_url]

        ran = play(folder, monkeypatch, at_the_endpoint)
        assert fake.stats.total >= 300
    assert any(args[0] == "prelabel" for args in ran)
    check_outcome(folder)


@pytest.mark.slow
def test_the_readme_walkthrough_runs_as_written(tmp_path, monkeypatch) -> None:
    """Every command exactly as written: `prelabel` runs the embedded model."""
    folder = fresh_folder(tmp_path)
    play(folder, monkeypatch)
    check_outcome(folder)
