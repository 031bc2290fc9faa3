"""Real-browser tests: Debian's Chromium driven by Playwright against a live review server."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The page tests reuse the store seeding of tests/test_review_service.py.
TESTS = str(Path(__file__).resolve().parents[1])
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

CHROMIUM = os.environ.get("LABELLOOP_CHROMIUM", "/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def need_chromium() -> None:
    """Skip locally, but fail under CI, when Chromium or Playwright is missing."""
    reason = None
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        reason = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    else:
        try:
            import playwright  # noqa: F401
        except ImportError:
            reason = "playwright is not installed (pip install playwright pytest-playwright)"
    if reason is not None:
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    need_chromium()
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": ARGS}


@pytest.fixture(autouse=True)
def _chromium_present() -> None:
    need_chromium()


@pytest.fixture
def live_server(request, make_project, fast_password_hashing) -> Iterator[tuple[str, object]]:
    """(base URL, project): uvicorn serving the review app on a free loopback port.

    Indirect parameters are the project's options: `labels`, `task`, `multi_label`.
    """
    from labelloop.server import create_app
    from labelloop.testing.server import serve_app

    project = make_project(**getattr(request, "param", {}))
    with serve_app(create_app(project)) as base:
        yield base, project
