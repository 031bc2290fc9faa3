"""Security headers, login rate limiting and CSRF checks for the review server."""

from __future__ import annotations

import hmac
import threading
import time
from collections import deque

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# No inline scripts or styles anywhere: every script and stylesheet is a file under /static.
# Referrer-Policy same-origin rather than no-referrer: with no-referrer browsers send
# "Origin: null" on form posts, which the CSRF origin check must refuse.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]
NO_STORE = (b"cache-control", b"no-store")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class SecurityHeaders:
    """Pure ASGI middleware adding the security headers to every HTTP response.

    Pages and API answers are also marked `no-store`: they hold item texts and session data.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cacheable = scope["path"].startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                extra = [h for h in HEADERS if h[0] not in names]
                if not cacheable and NO_STORE[0] not in names:
                    extra.append(NO_STORE)
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def same_token(sent: str | None, expected: str | None) -> bool:
    """Constant-time comparison of CSRF tokens; a missing token never matches."""
    if not sent or not expected:
        return False
    return hmac.compare_digest(sent.encode(), expected.encode())


class LoginLimiter:
    """Failed logins in a sliding window of `window_s` seconds, counted three ways.

    Policy (addresses are the peer's, or the client a trusted proxy names: `serve
    --forwarded-allow-ips`; a client cannot choose its own):

    - per address: after `per_address` failures an address may try no account at all;
    - per account and address: after `per_pair` failures an address may not try that account;
    - per account: after `per_account` failures from anywhere the account is under attack, and
      an address may try it only while it has no failure on it in the window. A guesser spread
      over many addresses gets one guess per address and window instead of `per_pair`, while
      the account's owner, from an address that has not failed, still logs in with the right
      password: nobody's failures lock an account for everyone.

    A successful login clears its (account, address) count. In memory (the server is one
    process); keys whose failures have all left the window are dropped.
    """

    def __init__(
        self,
        per_address: int = 30,
        per_pair: int = 5,
        per_account: int = 20,
        window_s: float = 300.0,
        max_keys: int = 100_000,
    ) -> None:
        self.per_address = per_address
        self.per_pair = per_pair
        self.per_account = per_account
        self.window_s = window_s
        self.max_keys = max_keys
        self._failures: dict[tuple[str, ...], deque[float]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _keys(account: str, address: str) -> tuple[tuple[str, ...], ...]:
        return ("address", address), ("pair", account, address), ("account", account)

    def _times(self, key: tuple[str, ...], now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def retry_after(self, account: str, address: str) -> float:
        """Seconds before this address may try this account again (0: it may now)."""
        now = time.monotonic()
        by_address, pair, by_account = self._keys(account, address)
        with self._lock:
            under_attack = len(self._times(by_account, now)) >= self.per_account
            limits = ((by_address, self.per_address), (pair, 1 if under_attack else self.per_pair))
            waits = [
                times[-limit] + self.window_s - now
                for key, limit in limits
                if len(times := self._times(key, now)) >= limit
            ]
        return max(waits, default=0.0)

    def failed(self, account: str, address: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._failures) >= self.max_keys:
                for key in list(self._failures):
                    self._times(key, now)
            for key in self._keys(account, address):
                self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, account: str, address: str) -> None:
        with self._lock:
            self._failures.pop(self._keys(account, address)[1], None)
