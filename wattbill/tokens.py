"""Signed download tokens: one customer, an expiry, an HMAC signature (itsdangerous).

A token is ``URLSafeSerializer(secret, salt).dumps({"c": customer_id, "exp": unix_seconds})``. It
is checked on every request: signature first, then expiry. The secret comes from
``WATTBILL_SECRET``; without one, no token can be made or checked.
"""

from __future__ import annotations

import time

from wattbill.errors import BadToken, MissingExtra, WattbillError

try:
    from itsdangerous import BadSignature, URLSafeSerializer
except ImportError as exc:  # the [web] extra is not installed
    raise MissingExtra("download tokens", "itsdangerous", "web") from exc

SALT = "wattbill-statement-v1"
MIN_SECRET_LENGTH = 16


def secret_from_env() -> str:
    """The signing secret: the setting ``secret`` (``WATTBILL_SECRET``); raises if shorter than 16."""
    from wattbill.settings import get_settings

    secret = get_settings().secret.get_secret_value()
    if len(secret) < MIN_SECRET_LENGTH:
        raise WattbillError(f"WATTBILL_SECRET must be set to a secret of at least {MIN_SECRET_LENGTH} characters")
    return secret


def make_token(customer_id: str, secret: str, ttl: int = 3600, now: float | None = None) -> str:
    """A token for ``customer_id`` valid for ``ttl`` seconds."""
    if ttl <= 0:
        raise WattbillError("--ttl must be a positive number of seconds")
    exp = int((time.time() if now is None else now) + ttl)
    return URLSafeSerializer(secret, salt=SALT).dumps({"c": customer_id, "exp": exp})


def check_token(token: str, secret: str, now: float | None = None) -> str:
    """The customer id of a valid token; ``BadToken`` if forged, malformed or expired."""
    try:
        payload = URLSafeSerializer(secret, salt=SALT).loads(token)
    except BadSignature as exc:
        raise BadToken("invalid token") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("c"), str) or not isinstance(payload.get("exp"), int):
        raise BadToken("invalid token")
    if payload["exp"] < (time.time() if now is None else now):
        raise BadToken("token expired")
    return payload["c"]
