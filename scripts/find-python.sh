#!/usr/bin/env bash
# Prints the path of a working CPython of the wanted minor version (default 3.12).
# pyenv shims for python3.12 fail unless PYENV_VERSION is set, so real interpreters
# are tried first, then PATH; each candidate must actually run.
set -euo pipefail
want="${1:-3.12}"
candidates=()
for d in /root/.pyenv/versions/"${want}".*/bin "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"${want}".*/bin; do
  [ -x "$d/python${want}" ] && candidates+=("$d/python${want}")
done
command -v "python${want}" >/dev/null 2>&1 && candidates+=("$(command -v "python${want}")")
for c in "${candidates[@]}"; do
  if "$c" -c "import sys; assert sys.version_info[:2] == tuple(map(int, '${want}'.split('.')))" >/dev/null 2>&1; then
    echo "$c"; exit 0
  fi
done
echo "find-python: no working python${want} found (install it, e.g. 'pyenv install ${want}')" >&2
exit 1
