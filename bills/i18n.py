"""Message catalogues: ``bills/locale/<language>.toml``, one flat namespace of dotted message ids.

The same templates serve every language; they call ``_("section.id", **values)``. Messages are plain
text (no markup): the template's autoescape escapes the whole formatted string, values included.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = str(value)
    return out


@functools.cache
def catalogue(language: str) -> dict[str, str]:
    if language not in LANGUAGES:
        language = DEFAULT_LANGUAGE
    with open(LOCALE_DIR / f"{language}.toml", "rb") as fh:
        return _flatten(tomllib.load(fh))


def normalise_language(language: str | None) -> str:
    lang = (language or DEFAULT_LANGUAGE).strip().lower()
    if lang.startswith("en"):
        return "en"
    return "zh"


class MissingMessage(KeyError):
    pass


def translator(language: str) -> Callable[..., str]:
    """Return ``_(msgid, **values)`` for ``language``; falls back to Chinese, then raises."""
    messages = catalogue(normalise_language(language))
    fallback = catalogue(DEFAULT_LANGUAGE)

    def _(msgid: str, /, **values: Any) -> str:
        text = messages.get(msgid)
        if text is None:
            text = fallback.get(msgid)
        if text is None:
            raise MissingMessage(msgid)
        return text.format(**values) if values else text

    return _


def has_message(language: str, msgid: str) -> bool:
    return msgid in catalogue(normalise_language(language))
