#!/usr/bin/env bash
# Quality gates (CI runs them through .ci/run): the linter and the type checker on the
# whole tree, with the versions pinned in the dev extra.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=${VENV_PYTHON:-"$root/.venv/bin/python"}
cd "$root"
echo "== ruff check"
"$py" -m ruff check .
echo "== mypy src"
"$py" -m mypy src
