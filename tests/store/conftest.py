"""Fixtures of the store tests: one store of each kind, the same tests on both."""

from __future__ import annotations

from pathlib import Path

import pytest

from wattbill.store import open_store


@pytest.fixture(params=["embedded", pytest.param("timescale", marks=pytest.mark.db)])
def store(request, tmp_path: Path):
    """An empty store: an embedded one in ``tmp_path``, or one on the test cluster's TimescaleDB."""
    if request.param == "embedded":
        st = open_store(tmp_path / "store")
    else:
        st = open_store(request.getfixturevalue("pg_store_url"))
    yield st
    st.close()
