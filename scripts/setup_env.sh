#!/usr/bin/env bash
# Creates .venv (if absent) and installs saliency-tubes with the given extras into it.
# torch is pinned to the CPU build this project is tested with; install it first so that
# no dependency pulls a newer (CUDA) build.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
extras=${1:-}
py=${PYTHON:-python3}
if [ ! -x "$root/.venv/bin/python" ]; then
  "$py" -m venv "$root/.venv"
fi
pip=("$root/.venv/bin/python" -m pip --disable-pip-version-check -q)
"${pip[@]}" install --upgrade pip >/dev/null
"${pip[@]}" install "torch==2.13.0"
if [ -n "$extras" ]; then
  "${pip[@]}" install -e "$root[$extras]"
else
  "${pip[@]}" install -e "$root"
fi
