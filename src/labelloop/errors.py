"""Errors that the CLI maps to exit codes: bad input is 2, anything else 1."""

from __future__ import annotations


class LabelloopError(Exception):
    """A failure that is not the user's input (exit status 1)."""


class InputError(LabelloopError):
    """Bad input from the user: a file, a value or an option (exit status 2).

    The message names the problem precisely (file, line, column, value) so that it can be fixed
    without reading a traceback.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: str | None = None,
        value: object = None,
    ) -> None:
        self.file, self.line, self.column, self.value = file, line, column, value
        where = ", ".join(
            part
            for part in (
                file and f"{file}",
                line is not None and f"line {line}",
                column and f"column {column!r}",
            )
            if part
        )
        if value is not None:
            shown = repr(value)
            message = f"{message} (value {shown[:80]}{'…' if len(shown) > 80 else ''})"
        super().__init__(f"{where}: {message}" if where else message)


class NotReadyError(InputError):
    """The project lacks something a command needs (no gold labels, no predictions, ...)."""


class NotFoundError(InputError):
    """The item, annotator or answer does not exist (in this project)."""


class ConflictError(InputError):
    """The request clashes with the store's state (already answered, name taken...)."""


class ForbiddenError(LabelloopError):
    """The caller may not do this (an annotator acting on someone else's work)."""
