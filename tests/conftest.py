"""Shared pytest fixtures.

Database part (owned by ingest/store): ``pg_url`` starts the project's PostgreSQL + TimescaleDB cluster
with ``scripts/pg.sh start`` (or uses ``WATTBILL_TEST_PG_URL``) once per session and stops it at the end
if this session started it; ``pg_store_url`` gives each test a fresh, empty database on it. Tests that
use them are marked ``@pytest.mark.db``. Importing this file needs no database.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PG_SH = REPO / "scripts" / "pg.sh"


# --- database (TimescaleDB) ------------------------------------------------------------------


def _pg(cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(PG_SH), cmd], capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a running PostgreSQL with TimescaleDB preloaded (started here when needed)."""
    env_url = os.environ.get("WATTBILL_TEST_PG_URL")
    if env_url:
        yield env_url
        return
    if not Path("/usr/lib/postgresql/15/bin/initdb").exists() and not os.environ.get("PGBIN"):
        pytest.skip("PostgreSQL 15 server binaries are not installed (scripts/setup.sh installs them)")
    was_running = _pg("status").returncode == 0
    started = _pg("start")
    if started.returncode != 0:
        pytest.fail(f"scripts/pg.sh start failed: {started.stderr.strip() or started.stdout.strip()}")
    url = started.stdout.strip().splitlines()[-1]
    try:
        yield url
    finally:
        if not was_running and not os.environ.get("WATTBILL_KEEP_PG"):
            _pg("stop")


@pytest.fixture
def pg_store_url(pg_url: str) -> Iterator[str]:
    """A fresh database on the test cluster for one test; dropped afterwards."""
    import psycopg

    name = f"wb_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = _with_db(pg_url, name)
    try:
        yield url
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _with_db(url: str, db: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + db, parts.query, parts.fragment))
