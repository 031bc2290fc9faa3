"""The `labelloop` command: parse options, call the service layer, print."""

from __future__ import annotations

import os
import sys
import traceback

from ..errors import InputError, LabelloopError
from . import (
    adjudication,  # noqa: F401
    guidelines,  # noqa: F401
    learning,  # noqa: F401
    serve,  # noqa: F401
)
from .app import app

__all__ = ["app", "main", "run"]


def run(argv: list[str] | None = None) -> int:
    """Run the command line and return its exit status (2 = bad input, 1 = other failure,
    3 = `prelabel` finished but some items failed, 130 = interrupted)."""
    try:
        # Standalone mode: the parser reports usage errors itself (exit status 2).
        app(args=argv, prog_name="labelloop", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except InputError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("interrupted; work done so far is saved, run the command again to go on\n")
        return 130
    except (LabelloopError, Exception) as exc:
        if os.environ.get("LABELLOOP_DEBUG"):
            traceback.print_exc()
        sys.stderr.write(f"error: {type(exc).__name__}: {exc}\n")
        return 1
    return 0


def main() -> None:
    sys.exit(run())
