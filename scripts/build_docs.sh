#!/usr/bin/env bash
# The documentation site: mkdocs build --strict (a broken link, a missing anchor or page, a
# docstring reference that does not resolve fails it) into site/ (or the folder given).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=${VENV_PYTHON:-"$root/.venv/bin/python"}
cd "$root"
export NO_MKDOCS_2_WARNING=1
"$py" -m mkdocs build --strict --site-dir "${1:-$root/site}"
