#!/usr/bin/env bash
# A throwaway PostgreSQL server for the storage tests: prints its URL on stdout, or nothing when no
# server can be had here (the PostgreSQL tests then skip, saying why). Idempotent: a server this script
# started earlier is reused. Installs Debian's postgresql when missing and apt is usable.
set -uo pipefail
PORT=${ADVISOR_PG_PORT:-55432}
DATA=${ADVISOR_PG_DATA:-/tmp/advisor-pg-$(id -u)}
say() { echo "[postgres] $*" >&2; }

bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
BIN=$(bindir)
if [ -z "$BIN" ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
  if command -v apt-get >/dev/null && { [ -z "$SUDO" ] || sudo -n true 2>/dev/null; }; then
    say "installing Debian package postgresql (for the PostgreSQL storage tests)"
    $SUDO apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null 2>&1 \
      || { say "could not install postgresql; the PostgreSQL tests will be skipped"; exit 0; }
    BIN=$(bindir)
  fi
fi
[ -n "$BIN" ] || { say "no PostgreSQL server here and apt not usable; the PostgreSQL tests will be skipped"; exit 0; }

# The server refuses to run as root: as root, run it as the package's postgres user.
AS=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || { say "no postgres user to run the server as; tests skipped"; exit 0; }
  AS=(runuser -u postgres --)
fi
if [ ! -f "$DATA/PG_VERSION" ]; then
  rm -rf "$DATA" && mkdir -p "$DATA" && { [ "$(id -u)" != 0 ] || chown postgres "$DATA"; }
  "${AS[@]}" "$BIN/initdb" -D "$DATA" -A trust -U postgres >/dev/null 2>&1 \
    || { say "initdb failed; the PostgreSQL tests will be skipped"; exit 0; }
fi
if ! "${AS[@]}" "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
  "${AS[@]}" "$BIN/pg_ctl" -D "$DATA" -w -t 60 -l "$DATA/server.log" \
    -o "-p $PORT -k $DATA -c listen_addresses=127.0.0.1" start >/dev/null 2>&1 \
    || { say "the server did not start (see $DATA/server.log); the PostgreSQL tests will be skipped"; exit 0; }
fi
PSQL=("$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -qtA)
if [ "$("${PSQL[@]}" -c "SELECT 1 FROM pg_database WHERE datname = 'advisor_test'" 2>/dev/null)" != 1 ]; then
  "${PSQL[@]}" -c "CREATE DATABASE advisor_test" >/dev/null 2>&1 \
    || { say "could not create database advisor_test; the PostgreSQL tests will be skipped"; exit 0; }
fi
echo "postgresql://postgres@127.0.0.1:$PORT/advisor_test"
