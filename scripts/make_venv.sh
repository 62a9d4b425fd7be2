#!/usr/bin/env bash
# Creates the project's virtual environment with PYTHON, after checking what Debian splits off:
# `python3 -m venv` needs the python3-venv package (ensurepip). Where apt can install it (as root or
# through sudo) it does, like get_data.sh; else, or with CNN_TF_APT=0, it says what to run.
# Usage: scripts/make_venv.sh PYTHON VENV
set -uo pipefail
PY=${1:-python3}
VENV=${2:-.venv}
fail() { echo "error: $*" >&2; exit 1; }

command -v "$PY" >/dev/null 2>&1 || fail "$PY not found: install Python 3.10 or newer (Debian: apt-get install python3 python3-venv), or run make PYTHON=/path/to/python3"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null || fail "cnn_tf needs Python 3.10 or newer; $PY is $("$PY" -V 2>&1); run make PYTHON=/path/to/python3.10+"
if ! "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  package="python$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')-venv"
  SUDO=""
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; fi
  if [ "${CNN_TF_APT:-1}" != 0 ] && command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; }; then
    echo "installing Debian's $package (python3 -m venv needs it)" >&2
    $SUDO apt-get update -qq >/dev/null 2>&1 || true
    $SUDO apt-get install -y -qq "$package" >/dev/null 2>&1 || $SUDO apt-get install -y -qq python3-venv >/dev/null 2>&1 || true
  fi
  "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1 || fail "$PY -m venv needs Debian's $package package (or python3-venv): run 'sudo apt-get install $package', then make again"
fi
"$PY" -m venv "$VENV" || fail "$PY -m venv $VENV failed (see above); delete $VENV and run make again"
