#!/usr/bin/env bash
# Creates the project's virtualenvs from scratch (idempotent): .venv for the app, local stack and
# tests (Python 3.12, the Lambda runtime), .venv-sam for the SAM CLI, .venv-checkov for checkov (the offline
# policy scanner: `scripts/bootstrap.sh checkov`).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="$(scripts/find-python.sh 3.12)"
# pip on this kind of machine warns about configured local indexes that do not exist; keep real errors.
quiet() { grep -v "Location 'file://" || true; }
stamp() { cat "$@" | sha256sum | cut -c1-16; }
mk() { # venv "files whose change means rebuild" requirements...
  local venv="$1" inputs="$2"; shift 2
  local want; want="$(stamp $inputs)"
  if [ -f "$venv/.stamp" ] && [ "$(cat "$venv/.stamp")" = "$want" ]; then return 0; fi
  echo "bootstrap: creating $venv" >&2
  rm -rf "$venv"
  "${VENV_PYTHON:-$PY}" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip==25.3 2>&1 | quiet
  local args=()
  for r in "$@"; do args+=(-r "$r"); done
  [ -f requirements/constraints.txt ] && [ "$venv" = .venv ] && args+=(-c requirements/constraints.txt)
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "${args[@]}" 2>&1 | quiet
  echo "$want" > "$venv/.stamp"
}
APP_INPUTS="requirements/dev.txt requirements/local.txt requirements/model.txt requirements/eval.txt requirements/security.txt layers/core/requirements.txt layers/api/requirements.txt"
[ -f requirements/constraints.txt ] && APP_INPUTS="$APP_INPUTS requirements/constraints.txt"
case "${1:-all}" in
  app) mk .venv "$APP_INPUTS" requirements/dev.txt ;;
  sam) mk .venv-sam requirements/sam.txt requirements/sam.txt ;;
  checkov) mk .venv-checkov requirements/checkov.txt requirements/checkov.txt ;;
  train) VENV_PYTHON="$(scripts/find-python.sh 3.11)" mk .venv-train requirements/train.txt requirements/train.txt ;;
  all) mk .venv "$APP_INPUTS" requirements/dev.txt; mk .venv-sam requirements/sam.txt requirements/sam.txt ;;
esac
