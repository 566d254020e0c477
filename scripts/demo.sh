#!/usr/bin/env bash
# One command: install everything into .venv and run the offline demo on the embedded model.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/setup_env.sh"
cd "$root"
exec "$root/.venv/bin/saliency-tubes" demo --out "${1:-demo_out}"
