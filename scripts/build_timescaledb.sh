#!/usr/bin/env bash
# Build TimescaleDB (Apache-only) from Debian trixie's *source* package against the local
# PostgreSQL 15, as ../shared/timescaledb.md describes. Skips when the extension is installed.
set -euo pipefail
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
ext_dir=$("$PG_CONFIG" --sharedir)/extension
if ls "$ext_dir"/timescaledb.control >/dev/null 2>&1 && ls "$("$PG_CONFIG" --pkglibdir)"/timescaledb-*.so >/dev/null 2>&1; then
    echo "timescaledb: already installed in $ext_dir"
    exit 0
fi
work=${TSDB_BUILD_DIR:-/var/tmp/wattbill-timescaledb}
mkdir -p "$work/lists/partial" "$work/src"
cat > "$work/sources.list" <<'SRC'
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main
SRC
apt_opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
          -o "Dir::State::Lists=$work/lists" -o "APT::Get::List-Cleanup=0")
apt-get "${apt_opts[@]}" update
cd "$work/src"
apt-get "${apt_opts[@]}" source --download-only timescaledb
orig=$(ls timescaledb_*.orig.tar.* | head -n 1)
rm -rf build-src && mkdir build-src
tar -xf "$orig" -C build-src --strip-components=1
cd build-src
./bootstrap -DREGRESS_CHECKS=OFF -DAPACHE_ONLY=ON -DWARNINGS_AS_ERRORS=OFF -DTAP_CHECKS=OFF \
    -DPG_CONFIG="$PG_CONFIG"
make -C build -j"$(nproc)"
make -C build install
echo "timescaledb: installed"
