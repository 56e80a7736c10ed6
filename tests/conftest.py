"""Shared pytest fixtures.

Database part (owned by ingest/store): ``pg_url`` starts the project's PostgreSQL + TimescaleDB cluster
with ``scripts/pg.sh start`` (or uses ``WATTBILL_TEST_PG_URL``) once per session and stops it at the end
if this session started it; ``pg_store_url`` gives each test a fresh, empty database on it. Tests that
use them are marked ``@pytest.mark.db``. Importing this file needs no database.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from wattbill.pids import pid_alive

REPO = Path(__file__).resolve().parents[1]
PG_SH = REPO / "scripts" / "pg.sh"

# pytest-xdist (scripts/test.sh runs ``-n 2``): each worker gets its own cluster (port and data folder),
# so a test that stops its server (tests/store/test_db_faults.py) never stops another worker's. Set here,
# before any fixture runs; the CLI subprocesses of the tests inherit it.
# Most fixtures hold days or weeks of reads, not a year: under the default ``bill_max_missing_days`` (31)
# their households would not be billed (``wattbill.bill.incomplete_reads``). The suite bills them (the
# setting's upper bound, inherited by the commands the tests start); the rule's own tests
# (tests/app/test_missing_days.py) set the default back.
os.environ.setdefault("WATTBILL_BILL_MAX_MISSING_DAYS", "366")
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if _WORKER.startswith("gw") and not os.environ.get("WATTBILL_TEST_PG_URL"):
    _port = int(os.environ.get("WATTBILL_PG_PORT", "54329")) + 100 + int(_WORKER[2:])
    os.environ["WATTBILL_PG_PORT"] = str(_port)
    os.environ["WATTBILL_PGDATA"] = str(Path(tempfile.gettempdir()) / f"wattbill-pg-{_port}")


# --- database (TimescaleDB) ------------------------------------------------------------------


def _pg(cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(PG_SH), cmd], capture_output=True, text=True, timeout=180)


def _lease_dir() -> Path:
    d = Path(tempfile.gettempdir()) / f"wattbill-pg-leases-{os.environ.get('WATTBILL_PG_PORT', '54329')}"
    d.mkdir(exist_ok=True)
    return d


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a running PostgreSQL with TimescaleDB preloaded (started here when needed).

    Several pytest sessions may share the cluster: each holds a lease file; the last one to finish
    stops the cluster if a test session started it (``WATTBILL_KEEP_PG=1`` keeps it running).
    """
    env_url = os.environ.get("WATTBILL_TEST_PG_URL")
    if env_url:
        yield env_url
        return
    if not Path("/usr/lib/postgresql/15/bin/initdb").exists() and not os.environ.get("PGBIN"):
        message = "PostgreSQL 15 server binaries are not installed (scripts/setup.sh installs them)"
        if os.environ.get("CI"):
            pytest.fail(message)  # in CI a database test that cannot run is a failure, not a skip
        pytest.skip(message)
    leases = _lease_dir()
    lease = leases / str(os.getpid())
    lease.touch()
    marker = leases / "started-by-tests"
    try:
        if _pg("status").returncode != 0:
            started = _pg("start")
            if started.returncode != 0:
                pytest.fail(f"scripts/pg.sh start failed: {started.stderr.strip() or started.stdout.strip()}")
            marker.touch()
        url = _pg("url").stdout.strip().splitlines()[-1]
        yield url
    finally:
        lease.unlink(missing_ok=True)
        others = [p for p in leases.iterdir() if p.name.isdigit() and pid_alive(int(p.name))]
        if not others and marker.exists() and not os.environ.get("WATTBILL_KEEP_PG"):
            marker.unlink(missing_ok=True)
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


@pytest.fixture(autouse=True)
def _settings_read_afresh():
    """Settings are read once per process (``wattbill.settings.get_settings``); a test that changes the
    environment calls ``reload_settings()``, and no test sees another test's settings."""
    from wattbill.settings import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
