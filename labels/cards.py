"""Label cards: the catalogue's advice templates filled with a household's evidence (final texts)."""

from __future__ import annotations

import json
import math
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from wattbill import formats
from wattbill.formats import format_yuan
from wattbill.labels.catalogue import LabelDef, catalogue_by_code, load_catalogue


@dataclass(frozen=True)
class LabelCard:
    """Everything a bill shows for one label, texts final.

    Attributes
    ----------
    code : str
    title : str
    evidence_text : str
        One short line with the key number ("谷段用电占比 48%").
    why : str
    what_to_do : str
    saving_fen : int or None
        The yearly saving the advice would bring [fen], where computable and positive.
    """

    code: str
    title: str
    evidence_text: str
    why: str
    what_to_do: str
    saving_fen: int | None


class _Missing(Exception):
    """A placeholder has no usable value: the sentence is left out."""


class _Formatter(string.Formatter):
    def __init__(self, language: str) -> None:
        super().__init__()
        self.language = language

    def get_value(self, key, args, kwargs):
        v = kwargs.get(key)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            raise _Missing(key)
        return v

    def format_field(self, value: Any, spec: str) -> str:
        match spec:
            case "pct":
                return formats.share(float(value))
            case "p100":
                return formats.pct(float(value))
            case "inv100":
                return formats.pct(100.0 - float(value))
            case "yuan" | "yuan+":
                fen = int(value)
                if fen != value:
                    raise TypeError("money must be whole fen")
                if spec == "yuan+" and fen <= 0:
                    raise _Missing("not positive")
                return format_yuan(fen)
            case "kwh":
                return formats.kwh_from_wh(round(float(value)), 0)
            case "kwh1":
                return formats.kwh_from_wh(round(float(value)), 1)
            case "w" | "int":
                return formats.number(float(value))
            case "x1":
                return formats.number(float(value), 1)
            case "date":
                return formats.day_month(value, self.language)
            case "":
                return str(value)
        return format(value, spec)


def render(sentences: Iterable[str], values: Mapping[str, Any], language: str) -> str:
    """Join the sentences whose placeholders all have values (see ``catalogue.toml``'s header)."""
    f = _Formatter(language)
    out = []
    for s in sentences:
        try:
            out.append(f.vformat(s, (), dict(values)))
        except _Missing:
            continue
    sep = "" if language == "zh" else " "
    return sep.join(out)


_PLACEHOLDER = re.compile(r"{([a-zA-Z0-9_]+)")


def advice(code: str, evidence: Mapping[str, Any] | str, language: str = "zh",
           catalogue: list[LabelDef] | None = None) -> tuple[str, str, str]:
    """``(title, why, what_to_do)`` of a label for one household's evidence.

    Parameters
    ----------
    code : str
        Label code.
    evidence : dict or JSON str
        The label's evidence (``assign_labels`` output).
    language : {"zh", "en"}
    catalogue : list[LabelDef] or None
    """
    c = card(code, evidence, None, language, catalogue)
    return c.title, c.why, c.what_to_do


def card(code: str, evidence: Mapping[str, Any] | str | None, saving_fen: int | None, language: str = "zh",
         catalogue: list[LabelDef] | None = None) -> LabelCard:
    """One :class:`LabelCard`."""
    lang = language if language in ("zh", "en") else "zh"
    d = catalogue_by_code(catalogue if catalogue is not None else load_catalogue())[code]
    ev = json.loads(evidence) if isinstance(evidence, str) else dict(evidence or {})
    t = d.texts[lang]
    title = render(t["title"], ev, lang) or d.name[lang]
    saving = None if saving_fen is None else int(saving_fen)
    return LabelCard(
        code=code, title=title, evidence_text=render(t["evidence"], ev, lang), why=render(t["why"], ev, lang),
        what_to_do=render(t["do"], ev, lang), saving_fen=saving if saving is not None and saving > 0 else None,
    )


def label_cards(assigned_rows, language: str = "zh", catalogue: list[LabelDef] | None = None) -> list[LabelCard]:
    """Cards for one customer's assigned labels, in catalogue order.

    Parameters
    ----------
    assigned_rows : pl.DataFrame or list of dict
        Rows of ``assign_labels(...)[0]`` for one customer: ``code``, ``evidence`` (JSON str or dict),
        ``saving_fen`` (int [fen] or None).
    language : {"zh", "en"}
        Anything else falls back to ``zh``.
    catalogue : list[LabelDef] or None
        ``load_catalogue()`` by default.

    Returns
    -------
    list[LabelCard]
        Texts final (numbers formatted; money from integer fen).
    """
    rows = assigned_rows.to_dicts() if hasattr(assigned_rows, "to_dicts") else list(assigned_rows)
    cat = catalogue if catalogue is not None else load_catalogue()
    order = {d.code: i for i, d in enumerate(cat)}
    rows = sorted((r for r in rows if r["code"] in order), key=lambda r: order[r["code"]])
    return [card(r["code"], r.get("evidence"), r.get("saving_fen"), language, cat) for r in rows]


def placeholders(template: str) -> list[str]:
    """Feature names used by a template."""
    return _PLACEHOLDER.findall(template)
