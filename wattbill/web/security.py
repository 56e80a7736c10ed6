"""The service's protections: response headers, rate limits, used portal links.

- Every response carries ``Cache-Control: no-store``, ``Referrer-Policy: no-referrer``,
  ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY`` and a strict
  ``Content-Security-Policy`` (nothing but this origin's stylesheet and inline SVG; no script).
- Rate limits (``limits``, sliding-window counters in memory, per process: O(1) per request): per client address on every
  request, per address on failed authentications (forged or expired tokens), and per customer of
  the token or session. An exceeded limit answers 429 with ``Retry-After`` [s].
- A portal link's token is exchanged for a session once: ``UsedLinks`` remembers the nonces of the
  exchanged tokens until they expire.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter

CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'")
HEADERS = [
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", CSP.encode()),
]


class RateLimited(Exception):
    """A rate limit is exceeded; ``retry_after`` [s] until a request is allowed again."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"rate limit exceeded, retry after {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Limits:
    """Rate limits in ``limits``' notation (``"120/minute"``)."""

    per_address: str = "300/minute"
    failed_auth_per_address: str = "20/minute"
    per_customer: str = "120/minute"


class Limiter:
    """The three limits of ``Limits`` over one in-memory storage."""

    def __init__(self, config: Limits) -> None:
        self.storage = MemoryStorage()
        self.window = SlidingWindowCounterRateLimiter(self.storage)
        self.address: RateLimitItem = parse(config.per_address)
        self.failed: RateLimitItem = parse(config.failed_auth_per_address)
        self.customer: RateLimitItem = parse(config.per_customer)

    def _retry_after(self, item: RateLimitItem, *keys: str) -> int:
        reset = self.window.get_window_stats(item, *keys).reset_time
        return max(1, math.ceil(reset - time.time()))

    def hit(self, item: RateLimitItem, *keys: str) -> None:
        """Count one request against ``item`` for ``keys``; ``RateLimited`` when over the limit."""
        if not self.window.hit(item, *keys):
            raise RateLimited(self._retry_after(item, *keys))

    def check(self, item: RateLimitItem, *keys: str) -> None:
        """``RateLimited`` when ``keys`` are already over ``item`` (counts nothing)."""
        if not self.window.test(item, *keys):
            raise RateLimited(self._retry_after(item, *keys))


class UsedLinks:
    """Nonces of exchanged portal-link tokens, each kept until its token's expiry."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()

    def first_use(self, nonce: str, expires: int) -> bool:
        """True the first time ``nonce`` is seen (and remembers it), False on a replay."""
        now = time.time()
        with self._lock:
            if len(self._seen) > 1024:
                for k in [k for k, exp in self._seen.items() if exp < now]:
                    del self._seen[k]
            if nonce in self._seen:
                return False
            self._seen[nonce] = expires
            return True


Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


class SecurityMiddleware:
    """ASGI middleware: the per-address limit before the app, the headers on every response."""

    def __init__(self, app: ASGIApp, limiter: Limiter, on_limited: Callable[[Scope, int], Any]) -> None:
        self.app = app
        self.limiter = limiter
        self.on_limited = on_limited

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _v in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *(h for h in HEADERS if h[0] not in names)]
            await send(message)

        address = (scope.get("client") or ("unknown", 0))[0]
        try:
            self.limiter.hit(self.limiter.address, "address", address)
        except RateLimited as exc:
            response = self.on_limited(scope, exc.retry_after)
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)
