#!/usr/bin/env bash
# A private PostgreSQL for the fleet tests (and for trying the README's "Running a fleet"):
# unix socket only, in DIR, data in DIR/data, database "fleet" with scripts/fleet-schema.sql.
#
#   scripts/pg-fleet.sh start DIR   # initdb on first use, then start; prints the conninfo
#   scripts/pg-fleet.sh stop DIR    # stop, keep the data (start again later)
#   scripts/pg-fleet.sh clean DIR   # stop if running, remove DIR
#
# Needs Debian's postgresql (any version) and root: the server runs as the postgres user.
set -euo pipefail

cmd="${1:-}"
dir="${2:-}"
if [[ -z "$cmd" || -z "$dir" || "$dir" != /* ]]; then
    echo "usage: $0 start|stop|clean /absolute/DIR" >&2
    exit 2
fi
schema="$(cd "$(dirname "$0")" && pwd)/fleet-schema.sql"

# Debian installs each major version in /usr/lib/postgresql/N/bin: take the newest.
bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
if [[ -z "$bin" || ! -x "$bin/pg_ctl" ]]; then
    echo "$0: no /usr/lib/postgresql/*/bin/pg_ctl; apt-get install postgresql" >&2
    exit 1
fi
as_postgres() { runuser -u postgres -- "$@"; }
psql_fleet() { "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -U postgres "$@"; }

running() { [[ -f "$dir/data/postmaster.pid" ]] && as_postgres "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; }

case "$cmd" in
start)
    fresh=0
    if [[ ! -d "$dir/data" ]]; then
        mkdir -p "$dir"
        chown postgres: "$dir"
        chmod 700 "$dir"
        as_postgres "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 \
            || { cat "$dir/initdb.log" >&2; exit 1; }
        fresh=1
    fi
    # Unix socket only: no TCP listener, the socket in DIR.
    as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 30 \
        -o "-k $dir -c listen_addresses=''" start >/dev/null \
        || { tail -n 20 "$dir/postgres.log" >&2; exit 1; }
    if ((fresh)); then
        psql_fleet -d postgres -c 'CREATE DATABASE fleet'
        psql_fleet -d fleet -f "$schema"
    fi
    echo "host=$dir dbname=fleet user=postgres"
    ;;
stop)
    if running; then
        as_postgres "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null
    fi
    ;;
clean)
    if running; then
        as_postgres "$bin/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null
    fi
    rm -rf -- "$dir"
    ;;
*)
    echo "usage: $0 start|stop|clean /absolute/DIR" >&2
    exit 2
    ;;
esac
