"""What the server accepts, and how it says no: body sizes, strict JSON, error replies.

Bad input gets a 4xx, never a 500: request bodies are bounded before they are read, JSON is
RFC 8259 JSON whose strings the store can hold (no NaN, no Infinity, no number that overflows a
float, no lone surrogate, no NUL), and an error reply renders whatever input it echoes.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.utils import is_body_allowed_for_status_code
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Largest request body of most routes (answers, settings, logins): far above any real one.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
#: Largest body of the routes that carry whole tasks or long id lists (`BULK_PATHS`).
DEFAULT_MAX_BULK_BODY_BYTES = 64 * 1024 * 1024
#: The Label Studio ML-backend routes (tasks with their data, annotations) and bulk enqueues.
BULK_PATHS = re.compile(r"/(setup|predict|webhook)|/api/v1/queues/[^/]+/items")
#: The escapes that can make a string the store cannot hold: a surrogate half, or NUL.
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:[dD][89a-fA-F]|0000)")


# ----------------------------------------------------------------------------- body size
class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        # Closing the connection spares reading the rest of the body.
        super().__init__(
            413, f"the request body is larger than {limit} bytes", {"Connection": "close"}
        )


class BodyLimit:
    """Pure ASGI middleware refusing request bodies over a size limit with 413.

    A declared `Content-Length` over the limit is refused before the app runs. A body sent
    without one (chunked) is counted as it arrives; the chunk that passes the limit never
    reaches the app, which sees `BodyTooLarge` instead, so no more than the limit is buffered.
    Paths matching `bulk_paths` have `bulk_max_bytes` instead.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int | None = None,
        *,
        bulk_max_bytes: int | None = None,
        bulk_paths: re.Pattern[str] = BULK_PATHS,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes or DEFAULT_MAX_BODY_BYTES
        self.bulk_max_bytes = bulk_max_bytes or DEFAULT_MAX_BULK_BODY_BYTES
        if self.max_bytes < 1 or self.bulk_max_bytes < 1:
            raise ValueError("body limits must be positive byte counts")
        self.bulk_paths = bulk_paths

    def limit_for(self, path: str) -> int:
        return self.bulk_max_bytes if self.bulk_paths.fullmatch(path) else self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        if _declared_length(scope) > limit:
            await _http_error(None, BodyTooLarge(limit))(scope, receive, send)
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge as exc:  # read outside a route (routes answer it themselves)
            if started:
                raise
            await _http_error(None, exc)(scope, receive, send)


def _declared_length(scope: Scope) -> int:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0  # the HTTP server refuses malformed lengths itself
    return 0


# ----------------------------------------------------------------------------- strict JSON
def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _refuse_what_text_cannot_hold(value: Any) -> None:
    pending = [value]
    while pending:
        node = pending.pop()
        if isinstance(node, str):
            if "\x00" in node:
                raise ValueError("a string holds NUL (\\u0000), which the store cannot hold")
            if not node.isascii():
                try:
                    node.encode("utf-8")
                except UnicodeEncodeError:
                    raise ValueError("a string holds a lone UTF-16 surrogate escape") from None
        elif isinstance(node, dict):
            pending.extend(node)
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)


def parse_json(body: bytes) -> Any:
    """A request body as JSON, refusing what is not JSON text or what the store cannot hold.

    Python's `json` module reads NaN, Infinity, numbers that overflow to infinity, lone
    surrogate escapes (`"\\ud800"`, not Unicode text) and NUL (`"\\u0000"`, which PostgreSQL
    text cannot hold), none of which the store, the password hasher or a JSON reply can take:
    they end here as a `json.JSONDecodeError` (a 422 for FastAPI).
    """
    try:
        value = json.loads(body, parse_constant=_not_json, parse_float=_finite)
        if _SUSPECT_ESCAPE.search(body):
            _refuse_what_text_cannot_hold(value)
    except json.JSONDecodeError:
        raise
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        message = str(exc) if isinstance(exc, ValueError) else "nested too deeply"
        raise json.JSONDecodeError(message, "", 0) from None
    return value


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    """A route whose JSON body is read by `parse_json` (give it to a router as `route_class`)."""

    def get_route_handler(self) -> Any:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict_handler


# ----------------------------------------------------------------------------- error replies
def printable(value: Any) -> Any:
    """`value` with what JSON cannot carry made visible: non-finite floats become their names
    and lone surrogates backslash escapes (error replies echo the input they refuse)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {printable(k): printable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [printable(v) for v in value]
    return value


class ErrorResponse(JSONResponse):
    """A JSON error reply that renders whatever it is given (see `printable`)."""

    def render(self, content: Any) -> bytes:
        return super().render(printable(jsonable_encoder(content)))


def _invalid_request(request: Request | None, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return ErrorResponse({"detail": exc.errors()}, status_code=422)


def _http_error(request: Request | None, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = getattr(exc, "headers", None)
    if not is_body_allowed_for_status_code(exc.status_code):
        return Response(status_code=exc.status_code, headers=headers)
    return ErrorResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)


def guard(
    app: FastAPI, *, max_body_bytes: int | None = None, max_bulk_body_bytes: int | None = None
) -> None:
    """Bound `app`'s request bodies (None: the defaults) and make its refusals (422, HTTP
    errors) always render."""
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_middleware(BodyLimit, max_body_bytes, bulk_max_bytes=max_bulk_body_bytes)
