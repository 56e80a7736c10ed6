"""The runs of open days without a read, as a bill states them (``missing_ranges`` of the bill row):
the vectorised twin used by the bill run equals the per-household rule and hand-worked cases."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings

from tests.strategies import presence_rows
from wattbill.diagnostics.dense import missing_ranges, missing_ranges_json


def _rule(present, first, last, year) -> list[str]:
    return [json.dumps([[a.isoformat(), b.isoformat()] for a, b in missing_ranges(present[i], int(first[i]),
                                                                                  int(last[i]), year)])
            for i in range(present.shape[0])]


@settings(max_examples=200, deadline=None)
@given(presence_rows())
def test_many_households_at_once_equal_the_rule_per_household(case) -> None:
    present, first, last, year = case
    assert missing_ranges_json(present, first, last, year) == _rule(present, first, last, year)


def test_hand_worked_ranges() -> None:
    """2024 (a leap year): open 1 Feb to 31 Dec; no reads 1-3 Feb, 29 Feb and 31 Dec; a household not
    open; one with every day read."""
    present = np.ones((3, 366), dtype=bool)
    present[0, [31, 32, 33, 59, 365]] = False  # 1-3 Feb, 29 Feb, 31 Dec (day indexes from 1 Jan)
    present[1, :10] = False  # not open: its days do not count
    got = missing_ranges_json(present, np.array([31, -1, 0]), np.array([365, -1, 365]), 2024)
    assert json.loads(got[0]) == [["2024-02-01", "2024-02-03"], ["2024-02-29", "2024-02-29"],
                                  ["2024-12-31", "2024-12-31"]]
    assert got[1:] == ["[]", "[]"]
    assert missing_ranges_json(np.ones((0, 365), dtype=bool), np.array([]), np.array([]), 2025) == []
