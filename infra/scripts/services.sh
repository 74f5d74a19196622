# shellcheck shell=bash
# Throwaway PostgreSQL and Redis on loopback, shared by infra/scripts/with-services and
# infra/local-cluster. Source it, then:
#
#   services_start WORKDIR   # sets PG_BIN PG_PORT PG_DATA REDIS_PORT; returns non-zero on failure
#   services_stop  WORKDIR   # stops both (safe to call more than once, or after a failed start)
#
# The caller owns WORKDIR (create it with mktemp -d, remove it after services_stop) and its trap.
# OO_TEST_PG_FSYNC / OO_TEST_PG_SYNC_COMMIT tune PostgreSQL (defaults: fsync off, sync commit on).

services_log() { echo "${SERVICES_NAME:-services}: $*" >&2; }

services_require() {
  PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
  if [ -z "${PG_BIN}" ] || [ ! -x "${PG_BIN}/initdb" ]; then
    services_log "PostgreSQL binaries not found (set PG_BIN)"
    return 1
  fi
  if ! command -v redis-server >/dev/null 2>&1; then
    services_log "installing redis-server with apt-get"
    if [ "$(id -u)" -eq 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    else
      sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    fi
  fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# PostgreSQL refuses to run as root: run it as the postgres user when we are root.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

services_start() {
  local work=$1
  services_require || return 1
  chmod 755 "${work}"
  PG_PORT=$(free_port)
  REDIS_PORT=$(free_port)
  PG_DATA="${work}/pg"

  mkdir -p "${PG_DATA}"
  if [ "$(id -u)" -eq 0 ]; then chown -R postgres "${work}"; fi
  as_pg "${PG_BIN}/initdb" -D "${PG_DATA}" -U oo -A trust --no-sync -E UTF8 >"${work}/initdb.log" 2>&1 \
    || { cat "${work}/initdb.log" >&2; return 1; }
  as_pg "${PG_BIN}/pg_ctl" -D "${PG_DATA}" -l "${work}/postgres.log" -w -t 60 start \
    -o "-p ${PG_PORT} -k ${work} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=${OO_TEST_PG_FSYNC:-off} -c synchronous_commit=${OO_TEST_PG_SYNC_COMMIT:-on}" >/dev/null \
    || { cat "${work}/postgres.log" >&2; return 1; }
  as_pg "${PG_BIN}/createdb" -h 127.0.0.1 -p "${PG_PORT}" -U oo oo || return 1

  redis-server --port "${REDIS_PORT}" --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize yes --pidfile "${work}/redis.pid" --logfile "${work}/redis.log" --dir "${work}" \
    || return 1
  local _
  for _ in $(seq 1 50); do
    redis-cli -p "${REDIS_PORT}" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
}

services_stop() {
  local work=$1
  if [ -n "${PG_BIN:-}" ] && [ -n "${PG_DATA:-}" ]; then
    as_pg "${PG_BIN}/pg_ctl" -D "${PG_DATA}" -m immediate stop >/dev/null 2>&1 || true
  fi
  if [ -f "${work}/redis.pid" ]; then kill "$(cat "${work}/redis.pid")" 2>/dev/null || true; fi
}
