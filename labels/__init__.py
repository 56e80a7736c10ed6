"""Behaviour labels: the catalogue (``catalogue.toml``, data), rules that assign labels with their
evidence, withheld labels with a reason, and advice cards (zh, en). Pure.

See ``docs/interfaces.md`` ("labels", "Label cards").
"""

from wattbill.labels.cards import LabelCard, advice, card, format_yuan, label_cards
from wattbill.labels.catalogue import CatalogueError, Condition, LabelDef, load_catalogue, parse_catalogue
from wattbill.labels.rules import ASSIGNED_SCHEMA, WITHHELD_SCHEMA, assign_labels

__all__ = [
    "ASSIGNED_SCHEMA",
    "WITHHELD_SCHEMA",
    "CatalogueError",
    "Condition",
    "LabelCard",
    "LabelDef",
    "advice",
    "assign_labels",
    "card",
    "format_yuan",
    "label_cards",
    "load_catalogue",
    "parse_catalogue",
]
