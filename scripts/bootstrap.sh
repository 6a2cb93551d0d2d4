#!/usr/bin/env bash
# Creates the project's virtualenvs from scratch (idempotent): .venv for the app, local stack and
# tests (Python 3.12, the Lambda runtime), .venv-sam for the SAM CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="$(scripts/find-python.sh 3.12)"
stamp() { cat "$@" | sha256sum | cut -c1-16; }
mk() { # venv requirements...
  local venv="$1"; shift
  local want; want="$(stamp "$@" requirements/constraints.txt 2>/dev/null || stamp "$@")"
  if [ -f "$venv/.stamp" ] && [ "$(cat "$venv/.stamp")" = "$want" ]; then return 0; fi
  echo "bootstrap: creating $venv" >&2
  rm -rf "$venv"
  "$PY" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip==25.3
  local args=()
  for r in "$@"; do args+=(-r "$r"); done
  [ -f requirements/constraints.txt ] && [ "$venv" = .venv ] && args+=(-c requirements/constraints.txt)
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "${args[@]}"
  echo "$want" > "$venv/.stamp"
}
case "${1:-all}" in
  app) mk .venv requirements/dev.txt ;;
  sam) mk .venv-sam requirements/sam.txt ;;
  all) mk .venv requirements/dev.txt; mk .venv-sam requirements/sam.txt ;;
esac
