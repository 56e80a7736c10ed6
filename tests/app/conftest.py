"""Fixtures of the application tests: one demo run shared by the module's tests."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WATTBILL = [sys.executable, "-m", "wattbill.cli"]


@dataclass
class Demo:
    out: Path
    store: Path
    stdout: str


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``wattbill`` in a subprocess (the real console entry point and exit codes)."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("WATTBILL_STORE", None) if env is None or "WATTBILL_STORE" not in env else None
    return subprocess.run([*WATTBILL, *args], capture_output=True, text=True, timeout=timeout, env=full_env, cwd=REPO)


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    out = tmp_path_factory.mktemp("demo")
    proc = run_cli("demo", "--customers", "40", "--year", "2025", "--out", str(out), "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    return Demo(out=out, store=out / "store", stdout=proc.stdout)
