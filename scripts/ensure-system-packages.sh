#!/usr/bin/env bash
# Install the named Debian packages when the programs they bring are missing.
# Runs apt-get as root, or through sudo; otherwise says what to install and fails.
set -eu
missing=()
for pkg in "$@"; do
  case "$pkg" in
    postgresql)   ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || missing+=("$pkg") ;;
    redis-server) command -v redis-server >/dev/null || missing+=("$pkg") ;;
    prometheus)   { command -v promtool >/dev/null && command -v prometheus >/dev/null; } || missing+=("$pkg") ;;
    haproxy)      { command -v haproxy || [ -x /usr/sbin/haproxy ]; } >/dev/null || missing+=("$pkg") ;;
    pgbouncer)    { command -v pgbouncer || [ -x /usr/sbin/pgbouncer ]; } >/dev/null || missing+=("$pkg") ;;
    kubectl)      command -v kubectl >/dev/null || missing+=("$pkg") ;;
    python3*-venv) dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg") ;;
    *)            dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg") ;;
  esac
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo"; else
  echo "missing system packages: ${missing[*]}; install them with: apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "installing system packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Debian's packages try to start their services; this stack starts its own throwaway ones.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod +x "$policy"
  trap '$sudo rm -f "$policy"' EXIT
fi
$sudo apt-get update -qq
# python3-venv is the fallback name when the versioned one does not exist.
for pkg in "${missing[@]}"; do
  $sudo apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null || {
    case "$pkg" in python3*-venv) continue ;; esac
    echo "could not install $pkg" >&2; exit 1; }
done
