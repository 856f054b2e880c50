#!/usr/bin/env bash
# Make a virtualenv, installing Debian's venv support first when this Python lacks it.
set -eu
python=${1:-python3}
venv=${2:-.venv}
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
  exit 0
fi
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "Python 3.11 or newer is needed; found $("$python" --version 2>&1)" >&2; exit 1; }
if ! "$python" -m venv "$venv" 2>/dev/null; then
  rm -rf "$venv"
  version=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
  echo "python venv support is missing; installing python${version}-venv" >&2
  scripts/ensure-system-packages.sh "python${version}-venv" python3-venv
  "$python" -m venv "$venv"
fi
