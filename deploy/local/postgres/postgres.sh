#!/usr/bin/env bash
# Local PostgreSQL for development and tests, without Docker.
#
# PostgreSQL comes from Debian's packages. The project gets its OWN cluster ("pubacc", created
# with Debian's pg_createcluster) on its own port, so a machine's existing clusters - e.g. the
# default "main" on 5432 - are never touched. Data lives in Debian's cluster directory
# (/var/lib/postgresql/<major>/pubacc, config in /etc/postgresql/<major>/pubacc).
# See docs/decisions/0003-local-infrastructure.md.
set -euo pipefail

usage() {
  cat <<EOF
usage: $(basename "$0") COMMAND [ARGS]

commands:
  install          install the PostgreSQL server from Debian packages if it is missing
  start            install if needed, create the '$CLUSTER' cluster once, start it, wait for it,
                   create the project databases if missing ($DATABASES)
  stop             stop the '$CLUSTER' cluster
  status           print the cluster's state (exit 0 running, 3 stopped or missing)
  url NAME         print the SQLAlchemy URL of database NAME
  psql [NAME] [ARGS...]  open psql as postgres on NAME (default postgres)
  reset-db NAME    drop and recreate database NAME (terminates its connections)

environment:
  PG_PORT              port on 127.0.0.1 (default 55432)
  PG_START_TIMEOUT     seconds to wait for the server to accept connections (default 60)
EOF
}

CLUSTER=pubacc
PG_PORT="${PG_PORT:-55432}"
PG_START_TIMEOUT="${PG_START_TIMEOUT:-60}"
DATABASES="registration verification transfer credit enforcement kernel_test bench"

log() { echo "postgres: $*"; }
die() { echo "postgres: ERROR: $*" >&2; exit 1; }

[[ "$PG_PORT" =~ ^[0-9]+$ ]] || die "PG_PORT must be a number, got '$PG_PORT'"

# Creating clusters and installing packages needs root; everything else goes over TCP.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "this step needs root: $*"
  fi
}

# --- install ---------------------------------------------------------------------------------
server_installed() {
  command -v pg_ctlcluster >/dev/null 2>&1 || return 1
  compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}

cmd_install() {
  if server_installed; then
    return 0
  fi
  log "PostgreSQL server not found; installing it from Debian packages"
  as_root apt-get update -q || die "apt-get update failed"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql \
    || die "apt-get install postgresql failed"
  server_installed || die "installed the postgresql package but found no server binaries"
}

# --- cluster discovery -----------------------------------------------------------------------
# Prints "<major> <port> <status>" of our cluster, nothing if it does not exist.
cluster_info() {
  command -v pg_lsclusters >/dev/null 2>&1 || return 0
  pg_lsclusters --no-header 2>/dev/null | awk -v c="$CLUSTER" '$2 == c { print $1, $3, $4; exit }'
}

# The newest major version whose server binaries are installed (e.g. 15 on Debian 12).
installed_major() {
  local d best=""
  for d in /usr/lib/postgresql/*/bin/postgres; do
    [ -x "$d" ] || continue
    d="${d#/usr/lib/postgresql/}"
    d="${d%%/*}"
    if [ -z "$best" ] || [ "$(printf '%s\n%s\n' "$best" "$d" | sort -V | tail -n1)" = "$d" ]; then
      best="$d"
    fi
  done
  [ -n "$best" ] || die "no /usr/lib/postgresql/*/bin/postgres found"
  echo "$best"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

psql_as_postgres() {
  # Trust auth on loopback (see create_cluster): no password, works for root and any user.
  PGCONNECT_TIMEOUT=5 psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"
}

valid_db_name() { [[ "$1" =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || die "invalid database name '$1' (use [a-z0-9_])"; }

# --- create the cluster (once) ---------------------------------------------------------------
create_cluster() {
  local major="$1"
  port_open "$PG_PORT" && die "port 127.0.0.1:$PG_PORT is already in use by another process"
  log "creating cluster $major/$CLUSTER on 127.0.0.1:$PG_PORT"
  # - trust authentication for local sockets and loopback TCP: this is a loopback-only
  #   development/test cluster with no secrets in it (it only listens on 127.0.0.1, see
  #   write_conf), and tests/services connect as "postgres" without a password. Never copy
  #   this to anything reachable from a network.
  # - start.conf=manual: this script starts the cluster; it does not start on boot with the
  #   machine's other clusters.
  # - C.UTF-8 always exists on Debian, whatever locales the machine has generated.
  as_root pg_createcluster "$major" "$CLUSTER" \
    --port "$PG_PORT" \
    --start-conf manual \
    --locale C.UTF-8 --encoding UTF8 \
    -- --auth-local=trust --auth-host=trust \
    || die "pg_createcluster $major $CLUSTER failed"
}

# Our settings, as a drop-in in the cluster's conf.d (Debian's postgresql.conf includes it).
# Not `pg_createcluster -o`: postgresql-common writes listen_addresses=127.0.0.1 unquoted
# (it takes it for a number), which the server then rejects as a syntax error.
#   - listen_addresses: reachable from this machine only.
#   - max_connections: five services plus test and benchmark pools.
#   - ssl off: Debian turns TLS on with a snakeoil certificate, and clients that "prefer"
#     TLS (asyncpg's default) then encrypt loopback traffic for nothing; it was a visible
#     share of every commit's client CPU in the benchmarks.
#   - fsync / synchronous_commit / full_page_writes are deliberately NOT set: they stay at
#     their durable defaults because the benchmarks measure commit latency and must measure
#     the real thing.
# Prints "changed" if the file had to be (re)written.
write_conf() {
  local major="$1"
  local file="/etc/postgresql/$major/$CLUSTER/conf.d/50-pubacc.conf"
  local want
  want="# Written by deploy/local/postgres/postgres.sh; edits are overwritten on the next start.
listen_addresses = '127.0.0.1'
max_connections = 200
ssl = off"
  if [ "$(cat "$file" 2>/dev/null)" != "$want" ]; then
    printf '%s\n' "$want" | as_root tee "$file" >/dev/null || die "could not write $file"
    as_root chown postgres:postgres "$file"
    echo changed
  fi
}

# --- start -----------------------------------------------------------------------------------
cmd_start() {
  cmd_install
  local info major port status
  info="$(cluster_info)"
  if [ -z "$info" ]; then
    create_cluster "$(installed_major)"
    info="$(cluster_info)"
    [ -n "$info" ] || die "cluster $CLUSTER still missing after pg_createcluster"
  fi
  read -r major port status <<<"$info"
  local conf_changed
  conf_changed="$(write_conf "$major")"
  # The port lives in the cluster's postgresql.conf; a different PG_PORT would make every
  # client miss the server, so refuse instead of guessing.
  [ "$port" = "$PG_PORT" ] \
    || die "cluster $major/$CLUSTER is configured for port $port but PG_PORT=$PG_PORT; use PG_PORT=$port"

  if [ "$status" = online ] && [ -n "$conf_changed" ]; then
    log "settings changed; restarting cluster $major/$CLUSTER"
    as_root pg_ctlcluster "$major" "$CLUSTER" restart -m fast || die "pg_ctlcluster $major $CLUSTER restart failed"
  elif [ "$status" = online ]; then
    log "cluster $major/$CLUSTER already running on 127.0.0.1:$PG_PORT"
  else
    port_open "$PG_PORT" && die "port 127.0.0.1:$PG_PORT is already in use by another process"
    log "starting cluster $major/$CLUSTER"
    as_root pg_ctlcluster "$major" "$CLUSTER" start || {
      tail -n 30 "/var/log/postgresql/postgresql-$major-$CLUSTER.log" >&2 2>/dev/null || true
      die "pg_ctlcluster $major $CLUSTER start failed"
    }
  fi

  local deadline=$((SECONDS + PG_START_TIMEOUT))
  until pg_isready -q -h 127.0.0.1 -p "$PG_PORT" -t 2; do
    if ((SECONDS >= deadline)); then
      tail -n 30 "/var/log/postgresql/postgresql-$major-$CLUSTER.log" >&2 2>/dev/null || true
      die "server on 127.0.0.1:$PG_PORT not ready after ${PG_START_TIMEOUT}s"
    fi
    log "waiting for 127.0.0.1:$PG_PORT ..."
    sleep 1
  done

  local db
  for db in $DATABASES; do
    if [ -z "$(psql_as_postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]; then
      psql_as_postgres -d postgres -c "CREATE DATABASE \"$db\"" || die "could not create database $db"
      log "created database $db"
    fi
  done
  log "ready: postgresql://postgres@127.0.0.1:$PG_PORT (databases: $DATABASES)"
}

# --- stop / status ---------------------------------------------------------------------------
cmd_stop() {
  local info major port status
  info="$(cluster_info)"
  if [ -z "$info" ]; then
    log "cluster $CLUSTER does not exist; nothing to stop"
    return 0
  fi
  read -r major port status <<<"$info"
  if [ "$status" != online ]; then
    log "cluster $major/$CLUSTER is not running"
    return 0
  fi
  # pg_ctlcluster stops by the cluster's own postmaster.pid (fast mode: roll back open
  # transactions, disconnect clients, shut down cleanly).
  as_root pg_ctlcluster "$major" "$CLUSTER" stop -m fast || die "pg_ctlcluster $major $CLUSTER stop failed"
  log "stopped cluster $major/$CLUSTER"
}

cmd_status() {
  local info major port status
  info="$(cluster_info)"
  if [ -z "$info" ]; then
    log "cluster $CLUSTER does not exist (run: $0 start)"
    return 3
  fi
  read -r major port status <<<"$info"
  log "cluster $major/$CLUSTER on 127.0.0.1:$port is $status"
  [ "$status" = online ] || return 3
}

cmd_url() {
  [ $# -ge 1 ] || die "usage: $0 url NAME"
  valid_db_name "$1"
  echo "postgresql+asyncpg://postgres@127.0.0.1:$PG_PORT/$1"
}

cmd_psql() {
  local db=postgres
  if [ $# -ge 1 ] && [[ "$1" != -* ]]; then
    db="$1"
    shift
  fi
  exec psql -X -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$db" "$@"
}

cmd_reset_db() {
  [ $# -ge 1 ] || die "usage: $0 reset-db NAME"
  local db="$1"
  valid_db_name "$db"
  case "$db" in postgres | template0 | template1) die "refusing to reset system database $db" ;; esac
  # WITH (FORCE) (PostgreSQL 13+) terminates sessions still connected, e.g. a pool left over
  # by a crashed test run.
  psql_as_postgres -d postgres -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" \
    || die "could not drop database $db (is the server running? $0 start)"
  psql_as_postgres -d postgres -c "CREATE DATABASE \"$db\"" || die "could not create database $db"
  log "reset database $db"
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  url) cmd_url "$@" ;;
  psql) cmd_psql "$@" ;;
  reset-db) cmd_reset_db "$@" ;;
  -h | --help | help) usage ;;
  *) usage >&2; exit 2 ;;
esac
