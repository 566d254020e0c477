#!/usr/bin/env bash
# Quality gates (CI runs them through .ci/run): the linter, the formatter's check and the
# type checker on the whole tree, with the versions pinned in the dev extra. Markdown files
# are left out of the formatter ([tool.ruff.format] in pyproject.toml).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=${VENV_PYTHON:-"$root/.venv/bin/python"}
cd "$root"
echo "== ruff check"
"$py" -m ruff check .
echo "== ruff format --check"
"$py" -m ruff format --check .
echo "== mypy src"
"$py" -m mypy src
