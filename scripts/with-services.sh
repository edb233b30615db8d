#!/usr/bin/env bash
# Run a command against throwaway PostgreSQL and Redis servers.
#
# Usage: scripts/with-services.sh COMMAND [ARGS...]
#
# When DATABASE_URL is unset, starts a PostgreSQL cluster in a temporary folder
# (as an unprivileged user when run as root: initdb refuses root) on a free
# loopback port. When REDIS_URL is unset and redis-server exists, starts a Redis
# the same way. Both are stopped and removed on exit, failure or Ctrl-C.
# A missing server is a loud warning and a fallback to SQLite / local memory;
# with CI=true it is an error.
set -euo pipefail

say() { printf '\033[1m[keyscope]\033[0m %s\n' "$*" >&2; }
loud() {
  printf '\033[1;33m' >&2
  printf '%s\n' "************************************************************************" \
    "WARNING: $*" \
    "************************************************************************" >&2
  printf '\033[0m' >&2
}
fail() { printf '\033[1;31m[keyscope] ERROR: %s\033[0m\n' "$*" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }

find_pg_bin() {
  local name=$1
  if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return; fi
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin/"$name" 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$found" ] && echo "$found"
}

TMP_ROOT=$(mktemp -d "${TMPDIR:-/tmp}/keyscope-services.XXXXXX")
chmod 755 "$TMP_ROOT"
PG_DATA=""
PG_CTL=""
AS_PG=()
REDIS_PID=""

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$PG_DATA" ] && [ -n "$PG_CTL" ]; then
    "${AS_PG[@]}" "$PG_CTL" -D "$PG_DATA" -m immediate stop >/dev/null 2>&1 || true
  fi
  if [ -n "$REDIS_PID" ]; then
    kill "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP_ROOT"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -z "${DATABASE_URL:-}" ]; then
  INITDB=$(find_pg_bin initdb || true)
  PG_CTL=$(find_pg_bin pg_ctl || true)
  if [ -n "$INITDB" ] && [ -n "$PG_CTL" ]; then
    if [ "$(id -u)" = "0" ]; then
      # initdb refuses to run as root: run the throwaway cluster as nobody.
      AS_PG=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)
      [ -x "$(command -v setpriv)" ] || AS_PG=(su -s /bin/sh nobody -c)
    fi
    PG_DATA="$TMP_ROOT/pg"
    mkdir -p "$PG_DATA"
    [ "$(id -u)" = "0" ] && chown nobody "$PG_DATA" "$TMP_ROOT"
    PG_PORT=$(free_port)
    # pg_stat_statements, where installed, lets `make bench` count statements at the server.
    PG_PRELOAD=""
    PG_LIBDIR=$(dirname "$(readlink -f "$INITDB")")/../lib
    [ -f "$PG_LIBDIR/pg_stat_statements.so" ] && PG_PRELOAD="-c shared_preload_libraries=pg_stat_statements"
    say "starting a throwaway PostgreSQL ($("$INITDB" --version | awk '{print $NF}')) on 127.0.0.1:$PG_PORT"
    "${AS_PG[@]}" "$INITDB" -D "$PG_DATA" -U postgres --auth=trust --no-sync -E UTF8 >"$TMP_ROOT/initdb.log" 2>&1 \
      || { cat "$TMP_ROOT/initdb.log" >&2; fail "initdb failed"; }
    "${AS_PG[@]}" "$PG_CTL" -D "$PG_DATA" -l "$PG_DATA/server.log" -w -t 60 \
      -o "-p $PG_PORT -k $PG_DATA -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 $PG_PRELOAD" \
      start >/dev/null || { cat "$PG_DATA/server.log" >&2; fail "PostgreSQL did not start"; }
    export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
    export KEYSCOPE_TEST_PG_BINDIR
    KEYSCOPE_TEST_PG_BINDIR=$(dirname "$INITDB")
  elif [ "${CI:-}" = "true" ]; then
    fail "PostgreSQL's initdb/pg_ctl not found and CI=true: install postgresql (apt-get install postgresql) or set DATABASE_URL."
  else
    loud "PostgreSQL (initdb) not found: falling back to SQLITE. Install postgresql or set DATABASE_URL to test for real."
  fi
else
  say "using DATABASE_URL from the environment"
fi

if [ -z "${REDIS_URL:-}" ]; then
  if command -v redis-server >/dev/null 2>&1; then
    REDIS_PORT=$(free_port)
    say "starting a throwaway Redis ($(redis-server --version | awk '{print $3}')) on 127.0.0.1:$REDIS_PORT"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
      --dir "$TMP_ROOT" --logfile "$TMP_ROOT/redis.log" &
    REDIS_PID=$!
    for _ in $(seq 1 100); do
      if python3 - "$REDIS_PORT" <<'PY' 2>/dev/null; then break; fi
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=0.2)
s.sendall(b"PING\r\n")
assert s.recv(16).startswith(b"+PONG")
PY
      sleep 0.1
    done
    export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
  elif [ "${CI:-}" = "true" ]; then
    fail "redis-server not found and CI=true: install it (apt-get install redis-server) or set REDIS_URL."
  else
    loud "redis-server not found: falling back to LOCAL MEMORY cache. Install redis-server or set REDIS_URL to test for real."
  fi
else
  say "using REDIS_URL from the environment"
fi

"$@"
