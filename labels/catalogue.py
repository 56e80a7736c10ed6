"""The label catalogue: definitions read from ``labels/catalogue.toml`` (data, not code)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from wattbill.diagnostics import FEATURES
from wattbill.errors import WattbillError

CATALOGUE_PATH = Path(__file__).with_name("catalogue.toml")
OPS = ("<", "<=", ">", ">=", "==", "!=", "is_not_null", "is_null")
LANGUAGES = ("zh", "en")
TEXT_PARTS = ("title", "evidence", "why", "do")

PEER_BAR = 75.0
"""A label's words may compare a household with its peers only when its rule puts the household in
the top (or bottom) quarter of them [percentile]: a sentence ``{peer_x_pct:p100}`` ("more than N % of
similar households") needs the rule ``peer_x_pct >= 75`` or higher, a sentence ``{peer_x_pct:inv100}``
("... than 100 - N % of similar households") needs ``peer_x_pct <= 25`` or lower. Together with the
label's absolute bar the claim then holds on any population, not only on the synthetic generator's
(issue 12, item 7). Without a peer group (``null_means_yes``) the label rests on its absolute bar and
the comparison sentence is left out (its placeholder is null)."""

_PEER_PLACEHOLDER = re.compile(r"\{(peer_[a-z_]+):(p100|inv100)\}")


class CatalogueError(WattbillError, ValueError):
    """The catalogue file is malformed (names the label and the key)."""


@dataclass(frozen=True)
class Condition:
    """``feature op value``; ``reason`` is kept when a need fails.

    Attributes
    ----------
    feature : str
        A column of ``diagnostics.FEATURES``.
    op : str
        One of ``OPS``.
    value : Any
        The documented constant (in the feature's unit), None for the null tests.
    reason : str
        Why a label is withheld when this condition (a need) fails.
    """

    feature: str
    op: str
    value: Any = None
    reason: str = ""

    def describe(self) -> str:
        """``"share_valley < 0.15"``."""
        return f"{self.feature} {self.op}" + ("" if self.value is None else f" {self.value}")


@dataclass(frozen=True)
class LabelDef:
    """One label of the catalogue.

    Attributes
    ----------
    code, group : str
        Stable code, and ``usage`` | ``tariff`` | ``payment``.
    name : dict[str, str]
        Short name per language.
    when : tuple[Condition, ...]
        The rule: all must hold.
    needs, deny_needs : tuple[Condition, ...]
        Data requirements before the rule is applied / before a "no" is concluded.
    null_means_no : tuple[str, ...]
        Features of ``when`` whose null counts as "condition false" rather than "undecidable".
    null_means_yes : tuple[str, ...]
        Features of ``when`` whose null counts as "condition true": peer percentiles, null without
        a peer group (the label then rests on its absolute bar; see ``PEER_BAR``).
    evidence : tuple[str, ...]
        Features kept as evidence.
    saving : str or None
        Feature giving the saving [fen].
    texts : dict[str, dict[str, tuple[str, ...]]]
        ``texts[language][part]``: sentences (templates) of ``title``, ``evidence``, ``why``, ``do``.
    note : str
        Why the constants are what they are.
    """

    code: str
    group: str
    name: dict[str, str]
    when: tuple[Condition, ...]
    needs: tuple[Condition, ...] = ()
    deny_needs: tuple[Condition, ...] = ()
    null_means_no: tuple[str, ...] = ()
    null_means_yes: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()
    saving: str | None = None
    texts: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    note: str = ""

    @property
    def params(self) -> dict[str, Any]:
        """The rule's constants, ``{"share_valley <": 0.15, ...}``."""
        return {f"{c.feature} {c.op}": c.value for c in self.when if c.value is not None}


def _conditions(code: str, key: str, raw: Any, with_reason: bool) -> tuple[Condition, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise CatalogueError(f"label {code}: {key} must be a list of [feature, op, value]")
    out = []
    for item in raw:
        if not isinstance(item, list) or len(item) < 2:
            raise CatalogueError(f"label {code}: {key}: bad condition {item!r}")
        feature, op = item[0], item[1]
        if feature not in FEATURES:
            raise CatalogueError(f"label {code}: {key}: unknown feature {feature!r}")
        if op not in OPS:
            raise CatalogueError(f"label {code}: {key}: unknown op {op!r} (use one of {', '.join(OPS)})")
        value = item[2] if len(item) > 2 and op not in ("is_null", "is_not_null") else None
        if op not in ("is_null", "is_not_null") and len(item) < 3:
            raise CatalogueError(f"label {code}: {key}: {feature} {op} needs a value")
        reason = ""
        if with_reason:
            rest = item[3:] if op not in ("is_null", "is_not_null") else item[2:]
            reason = str(rest[0]) if rest else f"needs {feature} {op} {value}"
        out.append(Condition(feature, op, value, reason))
    return tuple(out)


def _check_peer_claims(code: str, when: tuple[Condition, ...], texts: dict[str, dict[str, tuple[str, ...]]]) -> None:
    """Every sentence comparing with peers is backed by the rule (``PEER_BAR``); else CatalogueError."""
    for lang, parts in texts.items():
        for part, sentences in parts.items():
            for sentence in sentences:
                for feature, fmt in _PEER_PLACEHOLDER.findall(sentence):
                    ok = any(
                        c.feature == feature and isinstance(c.value, int | float) and (
                            (fmt == "p100" and c.op in (">=", ">") and c.value >= PEER_BAR)
                            or (fmt == "inv100" and c.op in ("<=", "<") and c.value <= 100 - PEER_BAR))
                        for c in when)
                    if not ok:
                        bar = f">= {PEER_BAR:g}" if fmt == "p100" else f"<= {100 - PEER_BAR:g}"
                        raise CatalogueError(
                            f"label {code}: text.{lang}.{part} compares with peers ({{{feature}:{fmt}}}) but the "
                            f"rule does not require {feature} {bar}: the comparison would not hold on every population")


def parse_catalogue(data: dict[str, Any]) -> list[LabelDef]:
    """Validate a parsed catalogue document (see ``catalogue.toml``'s header for the format)."""
    defs: list[LabelDef] = []
    seen: set[str] = set()
    for raw in data.get("label", []):
        code = raw.get("code")
        if not isinstance(code, str) or not code:
            raise CatalogueError("a label without a code")
        if code in seen:
            raise CatalogueError(f"label {code}: duplicate code")
        seen.add(code)
        name = raw.get("name") or {}
        texts: dict[str, dict[str, tuple[str, ...]]] = {}
        for lang in LANGUAGES:
            if lang not in name:
                raise CatalogueError(f"label {code}: name.{lang} missing")
            t = (raw.get("text") or {}).get(lang)
            if t is None:
                raise CatalogueError(f"label {code}: text.{lang} missing")
            texts[lang] = {}
            for part in TEXT_PARTS:
                v = t.get(part, [])
                v = [v] if isinstance(v, str) else v
                if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                    raise CatalogueError(f"label {code}: text.{lang}.{part} must be a list of strings")
                texts[lang][part] = tuple(v)
        evidence = tuple(raw.get("evidence", []))
        for e in evidence:
            if e not in FEATURES:
                raise CatalogueError(f"label {code}: evidence: unknown feature {e!r}")
        saving = raw.get("saving")
        if saving is not None and saving not in FEATURES:
            raise CatalogueError(f"label {code}: saving: unknown feature {saving!r}")
        when = _conditions(code, "when", raw.get("when"), False)
        if not when:
            raise CatalogueError(f"label {code}: when is empty")
        _check_peer_claims(code, when, texts)
        null_yes = tuple(raw.get("null_means_yes", []))
        for f in null_yes:
            if not f.startswith("peer_"):
                raise CatalogueError(f"label {code}: null_means_yes: only peer features may be missing ({f!r})")
        defs.append(LabelDef(
            code=code, group=raw.get("group", "usage"), name=dict(name), when=when,
            needs=_conditions(code, "needs", raw.get("needs"), True),
            deny_needs=_conditions(code, "deny_needs", raw.get("deny_needs"), True),
            null_means_no=tuple(raw.get("null_means_no", [])), null_means_yes=null_yes, evidence=evidence,
            saving=saving,
            texts=texts, note=raw.get("note", ""),
        ))
    return defs


@lru_cache(maxsize=8)
def _load(path: str) -> tuple[LabelDef, ...]:
    with open(path, "rb") as fh:
        return tuple(parse_catalogue(tomllib.load(fh)))


def load_catalogue(path: Path | str | None = None) -> list[LabelDef]:
    """The label definitions (the shipped ``labels/catalogue.toml`` by default).

    Parameters
    ----------
    path : path or None
        Another catalogue file of the same format.

    Raises
    ------
    CatalogueError
        The file is malformed (unknown feature, op, missing text ...).
    """
    return list(_load(str(path or CATALOGUE_PATH)))


def catalogue_by_code(catalogue: list[LabelDef] | None = None) -> dict[str, LabelDef]:
    """``{code: LabelDef}``."""
    return {d.code: d for d in (catalogue if catalogue is not None else load_catalogue())}
