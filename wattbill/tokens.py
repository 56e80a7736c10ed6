"""Signed tokens: portal links and API tokens, and the statement page's session cookie (itsdangerous).

A **token** is ``URLSafeSerializer(secret, salt=SALT).dumps({"c": customer_id, "exp": unix_seconds,
"n": nonce})``: one customer, an expiry and a random nonce (so that two tokens are never equal and a
portal link can be used once). It is checked on every request: signature first, then expiry.

A **session** (the page's cookie, see ``wattbill.web``) has the same shape under another salt
(``SESSION_SALT``), so a session cookie is not a token and a token is not a session.

Key rotation: tokens and sessions are signed with the current secret (``WATTBILL_SECRET``) and
accepted when signed with it or with the previous one (``WATTBILL_SECRET_PREVIOUS``, optional):
rotate by moving the current secret to ``WATTBILL_SECRET_PREVIOUS`` and setting a new one; tokens
signed with the old secret keep working until they expire or the previous secret is removed.
Without a current secret, no token can be made or checked.
"""

from __future__ import annotations

import secrets as _secrets
import time
from dataclasses import dataclass

from wattbill.errors import BadToken, MissingExtra, WattbillError

try:
    from itsdangerous import BadSignature, URLSafeSerializer
except ImportError as exc:  # the [web] extra is not installed
    raise MissingExtra("download tokens", "itsdangerous", "web") from exc


SALT = "wattbill-statement-v1"
SESSION_SALT = "wattbill-session-v1"
MIN_SECRET_LENGTH = 16


@dataclass(frozen=True)
class Keys:
    """The secrets tokens are checked with: ``current`` signs, ``previous`` (optional) still verifies."""

    current: str
    previous: str | None = None

    def verifying(self) -> list[str]:
        """Secrets in itsdangerous' order: oldest first, the signing one last."""
        return [self.previous, self.current] if self.previous else [self.current]


@dataclass(frozen=True)
class Claims:
    """What a valid token or session says: the customer, the expiry [unix s] and the nonce."""

    customer_id: str
    expires: int
    nonce: str


def _check_secret(name: str, value: str) -> None:
    if len(value) < MIN_SECRET_LENGTH:
        raise WattbillError(f"{name} must be set to a secret of at least {MIN_SECRET_LENGTH} characters")


def keys_from_env() -> Keys:
    """``Keys`` from the settings ``secret`` and ``secret_previous`` (``WATTBILL_SECRET``,
    ``WATTBILL_SECRET_PREVIOUS``; ``wattbill.settings``).

    Raises
    ------
    WattbillError
        When the current secret is missing or shorter than ``MIN_SECRET_LENGTH``, or the previous
        one is set but too short.
    """
    from wattbill.settings import get_settings

    settings = get_settings()
    current = settings.secret.get_secret_value()
    _check_secret("WATTBILL_SECRET", current)
    previous = settings.secret_previous.get_secret_value() if settings.secret_previous else None
    if previous is not None:
        _check_secret("WATTBILL_SECRET_PREVIOUS", previous)
    return Keys(current, previous)


def secret_from_env() -> str:
    """The current secret (``WATTBILL_SECRET``); see ``keys_from_env``."""
    return keys_from_env().current


def _as_keys(secret: str | Keys) -> Keys:
    return secret if isinstance(secret, Keys) else Keys(secret)


def _dumps(customer_id: str, keys: Keys, salt: str, ttl: int, now: float | None) -> str:
    if ttl <= 0:
        raise WattbillError("--ttl must be a positive number of seconds")
    exp = int((time.time() if now is None else now) + ttl)
    payload = {"c": customer_id, "exp": exp, "n": _secrets.token_urlsafe(9)}
    return URLSafeSerializer(keys.current, salt=salt).dumps(payload)


def _loads(token: str, keys: Keys, salt: str, now: float | None) -> Claims:
    try:
        payload = URLSafeSerializer(keys.verifying(), salt=salt).loads(token)
    except BadSignature as exc:
        raise BadToken("invalid token") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("c"), str) or not isinstance(payload.get("exp"), int):
        raise BadToken("invalid token")
    if payload["exp"] < (time.time() if now is None else now):
        raise BadToken("token expired")
    nonce = payload.get("n")
    return Claims(payload["c"], payload["exp"], nonce if isinstance(nonce, str) else "")


def make_token(customer_id: str, secret: str | Keys, ttl: int = 3600, now: float | None = None) -> str:
    """A token for ``customer_id`` valid for ``ttl`` [s], signed with the current secret.

    Raises
    ------
    WattbillError
        When ``ttl`` is not positive.
    """
    return _dumps(customer_id, _as_keys(secret), SALT, ttl, now)


def read_token(token: str, secret: str | Keys, now: float | None = None) -> Claims:
    """The claims of a valid token (current or previous secret).

    Raises
    ------
    BadToken
        When the token is forged, malformed, signed with an unknown secret or expired.
    """
    return _loads(token, _as_keys(secret), SALT, now)


def check_token(token: str, secret: str | Keys, now: float | None = None) -> str:
    """The customer id of a valid token; ``BadToken`` if forged, malformed or expired."""
    return read_token(token, secret, now).customer_id


def make_session(customer_id: str, secret: str | Keys, ttl: int, now: float | None = None) -> str:
    """The value of the page's session cookie for ``customer_id``, valid for ``ttl`` [s]."""
    return _dumps(customer_id, _as_keys(secret), SESSION_SALT, ttl, now)


def read_session(value: str, secret: str | Keys, now: float | None = None) -> Claims:
    """The claims of a valid session cookie; ``BadToken`` otherwise (see ``read_token``)."""
    return _loads(value, _as_keys(secret), SESSION_SALT, now)

