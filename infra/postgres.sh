#!/usr/bin/env bash
# A project-local PostgreSQL cluster for `make run` and `make test`, from the machine's
# PostgreSQL binaries (installed with apt when missing), run as the `postgres` user.
#
#   infra/postgres.sh start   initialise (first time) and start; idempotent
#   infra/postgres.sh stop
#   infra/postgres.sh status
#   infra/postgres.sh drop-test-databases
#   infra/postgres.sh destroy  stop and remove the cluster (for a test's own cluster)
#
# Listens on 127.0.0.1:${DIJKWACHT_PG_PORT:-54329} with trust authentication for local
# connections only: a development and test database, never a production one.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
port=${DIJKWACHT_PG_PORT:-54329}

as_postgres() {
    if [ "$(id -u)" = 0 ]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

find_bin() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

install_postgres() {
    echo "PostgreSQL binaries not found; installing them with apt" >&2
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
}

# The data directory lives in the clone when the postgres user can reach it, otherwise in
# /var/tmp under a name derived from the clone's path.
data_dir() {
    local local_dir="$repo/.local/pg-$port"
    if [ "$(id -u)" != 0 ] || runuser -u postgres -- test -x "$repo" 2>/dev/null; then
        echo "$local_dir"
    else
        echo "/var/tmp/dijkwacht-pg-$(printf '%s' "$repo" | sha1sum | cut -c1-12)-$port"
    fi
}

ready() {
    "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"
}

bin=$(find_bin)
if [ -z "$bin" ]; then
    install_postgres
    bin=$(find_bin)
fi
[ -n "$bin" ] || { echo "PostgreSQL binaries are still missing after apt install" >&2; exit 1; }
data=$(data_dir)

case "${1:-start}" in
start)
    if ready; then
        exit 0
    fi
    if [ ! -f "$data/PG_VERSION" ]; then
        mkdir -p "$data"
        [ "$(id -u)" = 0 ] && chown postgres:postgres "$data"
        chmod 700 "$data"
        as_postgres "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
        cat >>"$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$data'
max_connections = 400
shared_buffers = 256MB
fsync = on
CONF
    fi
    grep -q "include_if_exists = 'dijkwacht.conf'" "$data/postgresql.conf" ||
        echo "include_if_exists = 'dijkwacht.conf'" >>"$data/postgresql.conf"
    # Rewritten on every start, so a cluster made by an older checkout gets today's settings.
    cat >"$data/dijkwacht.conf" <<CONF
# Written by infra/postgres.sh on every start.
# The outbox, the wake-ups and the read models are rewritten with every change of a case:
# their dead rows must go within seconds, not after the default minute.
autovacuum_naptime = 5s
CONF
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$data/dijkwacht.conf"
    as_postgres "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start >/dev/null
    ready || { echo "PostgreSQL did not start; see $data/server.log" >&2; exit 1; }
    "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'dijkwacht'" | grep -q 1 ||
        "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres dijkwacht
    echo "PostgreSQL is up on 127.0.0.1:$port (data in $data)" >&2
    ;;
stop)
    if [ -f "$data/postmaster.pid" ]; then
        as_postgres "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
    fi
    ;;
drop-test-databases)
    # Each test creates its own database; this clears those of earlier runs.
    ready || exit 0
    "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -tAc \
        "SELECT datname FROM pg_database WHERE datname LIKE 'dijkwacht\_test\_%'" |
        while read -r name; do
            # --force: a session a killed test process left behind must not keep it.
            "$bin/dropdb" -h 127.0.0.1 -p "$port" -U postgres --if-exists --force "$name"
        done
    ;;
destroy)
    # A cluster of its own for one test (the multi-process test restarts it): stop and remove.
    if [ -f "$data/postmaster.pid" ]; then
        as_postgres "$bin/pg_ctl" -D "$data" -m immediate -w stop >/dev/null || true
    fi
    rm -rf "$data"
    ;;
status)
    if ready; then echo "up on 127.0.0.1:$port ($data)"; else echo "down ($data)"; exit 1; fi
    ;;
*)
    echo "usage: $0 start|stop|destroy|status|drop-test-databases" >&2
    exit 2
    ;;
esac
