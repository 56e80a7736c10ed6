#!/usr/bin/env bash
# Set up a fresh machine for wattbill: Debian packages, a virtual environment with the Python
# packages, and TimescaleDB built from source. Idempotent: a second run costs seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
APT_PKGS=(fonts-noto-cjk libharfbuzz-subset0 poppler-utils libpango-1.0-0 libpangoft2-1.0-0
          postgresql-15 postgresql-server-dev-15 libkrb5-dev cmake xz-utils
          chromium)
missing=()
for p in "${APT_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev,pdf,timescale,web,dask]'
$SUDO bash scripts/build_timescaledb.sh
# compile every cached numba kernel once, so that the first demo or bill run loads them from the cache
.venv/bin/python -m wattbill.warm
echo "setup: done"
