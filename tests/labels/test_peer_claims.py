"""Labels whose words compare with peers hold on populations unlike the generator's (issue 12, item 7).

``wattbill.synth`` draws ordinary valley shares from 20-34 % and valley-smart ones from 46-62 %; here
the populations are made differently (everybody ordinary at 35-45 %, everybody valley-heavy, everybody
peak-heavy), one peer group each, and every comparison a label makes is checked against the
population itself.
"""

from __future__ import annotations

import re
import tomllib

import numpy as np
import polars as pl
import pytest

from wattbill.diagnostics import diagnose
from wattbill.labels import assign_labels, label_cards, load_catalogue
from wattbill.labels.catalogue import CATALOGUE_PATH, PEER_BAR, CatalogueError, parse_catalogue

N = 120  # one peer group (same region and size), above diagnostics' minimum of 30
COMPARING = ("valley_smart", "peak_heavy", "high_baseload")


def _population(hh, valley: np.ndarray, level_wh: np.ndarray):
    houses = []
    for i, (v, lvl) in enumerate(zip(valley.tolist(), level_wh.tolist(), strict=True)):
        shares = (0.04, 1 - 0.04 - 0.15 - v, 0.15, v)
        houses.append(hh.House(f"h{i:03d}", hh.flat(int(lvl)), shares=shares))
    f = diagnose(hh.daily_frame(houses), None, hh.customers_frame(houses), None, None, None, hh.YEAR)
    assigned, _withheld = assign_labels(f, load_catalogue())
    return f, assigned


def _given(assigned: pl.DataFrame, code: str) -> set[str]:
    return set(assigned.filter(pl.col("code") == code)["customer_id"])


def test_everybody_ordinary_gets_no_comparison_label(hh):
    """Valley shares 35-45 %, base loads 170-330 W: no household is valley-smart, peak-heavy or
    has a high base load (before the fix, valley_smart went to half of them with N near 50)."""
    rng = np.random.default_rng(12)
    f, assigned = _population(hh, rng.uniform(0.35, 0.45, N), rng.uniform(4000, 8000, N))
    assert f["peer_group_size"].min() == N
    for code in COMPARING:
        assert _given(assigned, code) == set(), code


def _below_share(values: np.ndarray, i: int) -> float:
    """Percent of the other households with a strictly smaller value (independent of diagnostics)."""
    return 100.0 * float((values < values[i]).sum()) / len(values)


@pytest.mark.parametrize("language", ["zh", "en"])
def test_everybody_valley_heavy_only_the_top_quarter_and_the_words_are_true(hh, language):
    rng = np.random.default_rng(7)
    f, assigned = _population(hh, rng.uniform(0.50, 0.62, N), np.full(N, 6000))
    given = _given(assigned, "valley_smart")
    share = f["share_valley"].to_numpy()
    ids = f["customer_id"].to_list()
    assert 0 < len(given) <= N // 4 + 1
    for cid in given:
        i = ids.index(cid)
        assert _below_share(share, i) >= PEER_BAR - 1, cid
        rows = assigned.filter((pl.col("customer_id") == cid) & (pl.col("code") == "valley_smart"))
        (card,) = label_cards(rows.to_dicts(), language)
        percents = [int(x) for x in re.findall(r"(\d+)\s*%", card.why)]
        assert len(percents) == 2, card.why  # the household's share, then N of "more than N %"
        n_claimed = percents[1]
        assert n_claimed >= PEER_BAR, card.why
        assert _below_share(share, i) >= n_claimed - 1, (cid, card.why)  # "more than N % of similar households"
    for cid in set(ids) - given:
        assert _below_share(share, ids.index(cid)) < PEER_BAR + 1, cid


def test_everybody_peak_heavy_only_the_bottom_quarter(hh):
    rng = np.random.default_rng(8)
    f, assigned = _population(hh, rng.uniform(0.05, 0.12, N), np.full(N, 6000))
    given = _given(assigned, "peak_heavy")
    share = f["share_valley"].to_numpy()
    ids = f["customer_id"].to_list()
    assert 0 < len(given) <= N // 4 + 1
    for cid in given:
        above = 100.0 * float((share > share[ids.index(cid)]).sum()) / N
        assert above >= PEER_BAR - 1, cid  # "lower than 100 - N % of similar households"


def test_high_base_load_everywhere_only_the_top_quarter(hh):
    rng = np.random.default_rng(9)
    f, assigned = _population(hh, rng.uniform(0.25, 0.30, N), rng.uniform(10_000, 14_000, N))  # 420-580 W
    given = _given(assigned, "high_baseload")
    base = f["base_load_w"].to_numpy()
    ids = f["customer_id"].to_list()
    assert 0 < len(given) <= N // 4 + 1
    for cid in given:
        assert _below_share(base, ids.index(cid)) >= PEER_BAR - 1, cid


def test_catalogue_refuses_a_peer_sentence_the_rule_does_not_back():
    """Fix the kind: any label comparing with peers without a peer bar is refused at load."""
    data = tomllib.loads(CATALOGUE_PATH.read_text(encoding="utf-8"))
    for label in data["label"]:
        if label["code"] == "valley_smart":
            label["when"] = [c for c in label["when"] if not c[0].startswith("peer_")]
    with pytest.raises(CatalogueError, match=r"valley_smart.*peer_share_valley_pct >= 75"):
        parse_catalogue(data)
    data = tomllib.loads(CATALOGUE_PATH.read_text(encoding="utf-8"))
    for label in data["label"]:
        if label["code"] == "peak_heavy":
            label["when"] = [["share_valley", "<", 0.15], ["peer_share_valley_pct", "<=", 50]]
    with pytest.raises(CatalogueError, match="peak_heavy"):
        parse_catalogue(data)


def test_the_labels_comparing_with_peers_are_the_ones_tested_here():
    peer_labels = {d.code for d in load_catalogue()
                   if any("{peer_" in s for parts in d.texts.values() for ss in parts.values() for s in ss)}
    assert peer_labels == set(COMPARING), peer_labels
