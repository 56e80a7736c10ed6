#!/usr/bin/env bash
# The project's own PostgreSQL 15 + TimescaleDB cluster for tests and benchmarks.
#
#   scripts/pg.sh start    initdb if needed, start if not running, create database "wattbill"; prints the URL
#   scripts/pg.sh stop     stop the cluster (keeps the data folder)
#   scripts/pg.sh url      print the URL
#   scripts/pg.sh status   exit 0 when running
#   scripts/pg.sh destroy  stop and remove the data folder
#
# Idempotent. The cluster listens only on a unix socket in its own folder (no TCP), on port
# $WATTBILL_PG_PORT (default 54329), data in $WATTBILL_PGDATA (default <repo>/.pgdata), with
# shared_preload_libraries=timescaledb ($WATTBILL_PG_PRELOAD). Run as root: the server runs as the "postgres" OS user.
# Durability is relaxed (fsync=off): a test cluster, not a production one.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PORT=${WATTBILL_PG_PORT:-54329}
BASE=${WATTBILL_PGDATA:-$repo/.pgdata}
DATA=$BASE/data
SOCK=$BASE/sock
LOG=$BASE/server.log
DB=wattbill
PRELOAD=${WATTBILL_PG_PRELOAD-timescaledb}   # set to "" to start without TimescaleDB (tests of the refusal)

if [ "$(id -u)" -eq 0 ]; then
    as_pg() { runuser -u postgres -- "$@"; }
    OWNER=postgres
    # the server runs as "postgres": it must reach the data folder (e.g. not under /root)
    parent=$(dirname "$BASE")
    mkdir -p "$parent"
    if [ -z "${WATTBILL_PGDATA:-}" ] && ! runuser -u postgres -- test -x "$parent" 2>/dev/null; then
        BASE=/tmp/wattbill-pg-$PORT
        DATA=$BASE/data; SOCK=$BASE/sock; LOG=$BASE/server.log
    fi
else
    as_pg() { "$@"; }
    OWNER=$(id -un)
fi
SUPER=$OWNER

url() { echo "postgresql://$SUPER@/$DB?host=$SOCK&port=$PORT"; }

running() { [ -f "$DATA/PG_VERSION" ] && as_pg "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

start() {
    if [ ! -x "$PGBIN/initdb" ]; then
        echo "pg.sh: PostgreSQL 15 server binaries not found in $PGBIN (run scripts/setup.sh)" >&2
        exit 1
    fi
    if ! ls "$("$PGBIN/pg_config" --pkglibdir 2>/dev/null || echo /usr/lib/postgresql/15/lib)"/timescaledb*.so >/dev/null 2>&1; then
        echo "pg.sh: the TimescaleDB extension is not installed (run scripts/build_timescaledb.sh)" >&2
        exit 1
    fi
    mkdir -p "$BASE" "$SOCK"
    [ "$(id -u)" -eq 0 ] && chown "$OWNER" "$BASE" "$SOCK"
    if [ ! -f "$DATA/PG_VERSION" ]; then
        as_pg "$PGBIN/initdb" -D "$DATA" -U "$SUPER" --auth=trust -E UTF8 --locale=C.UTF-8 >"$BASE/initdb.log" 2>&1 \
            || { cat "$BASE/initdb.log" >&2; exit 1; }
    fi
    if ! running; then
        as_pg "$PGBIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start -o \
            "-p $PORT -c listen_addresses='' -c unix_socket_directories='$SOCK' \
             -c shared_preload_libraries='$PRELOAD' \
             -c max_locks_per_transaction=256 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_wal_size=4GB -c shared_buffers=256MB" >/dev/null \
            || { tail -n 20 "$LOG" >&2; exit 1; }
    fi
    if ! as_pg psql -h "$SOCK" -p "$PORT" -U "$SUPER" -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname='$DB'" 2>/dev/null | grep -q 1; then
        as_pg psql -h "$SOCK" -p "$PORT" -U "$SUPER" -d postgres -qc "CREATE DATABASE $DB" >/dev/null
    fi
    url
}

case "${1:-}" in
    start) start ;;
    stop) if running; then as_pg "$PGBIN/pg_ctl" -D "$DATA" -w -m fast stop >/dev/null; fi ;;
    url) url ;;
    status) running ;;
    destroy)
        if running; then as_pg "$PGBIN/pg_ctl" -D "$DATA" -w -m immediate stop >/dev/null; fi
        rm -rf "$BASE" ;;
    *) echo "usage: $0 start|stop|url|status|destroy" >&2; exit 2 ;;
esac
