#!/usr/bin/env bash
# One command: install everything into .venv and run the test suite.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/setup_env.sh" test,dev,docs,torchvision,pytorchvideo,ray,captum,blackbox,transformers
cd "$root"
exec "$root/.venv/bin/python" -m pytest "$@"
