#!/usr/bin/env bash
# The package as a user gets it: build the sdist and the wheel (python -m build: the wheel is
# built from the sdist, so the sdist must be complete), check their metadata (twine check),
# install the wheel into a fresh virtual environment in a temporary folder outside the
# checkout (torch==2.13.0 first, so nothing pulls another build), and run
# `saliency-tubes demo` and `saliency-tubes models` there. The demo needs the weights
# shipped inside the wheel; the version the wheel installs must be saliency_tubes.__version__.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=${VENV_PYTHON:-"$root/.venv/bin/python"}   # has build and twine (the dev extra)
base=${PYTHON:-python3}                       # makes the fresh environment (as setup_env.sh)
work=$(mktemp -d "${TMPDIR:-/tmp}/saliency-tubes-wheel.XXXXXX")
trap 'rm -rf "$work"' EXIT
case "$work" in "$root"/*) echo "error: the work folder $work is inside the checkout" >&2; exit 2;; esac

version=$("$py" - "$root/src/saliency_tubes/__init__.py" <<'PY'
import ast, sys
tree = ast.parse(open(sys.argv[1], encoding="utf-8").read())
print(next(n.value.value for n in tree.body if isinstance(n, ast.Assign)
           and any(getattr(t, "id", "") == "__version__" for t in n.targets)))
PY
)
echo "== build saliency-tubes $version (sdist, then the wheel from it)"
"$py" -m build --outdir "$work/dist" "$root" >"$work/build.log" 2>&1 || { tail -40 "$work/build.log"; exit 1; }
ls -l "$work/dist"
wheel="$work/dist/saliency_tubes-$version-py3-none-any.whl"
sdist="$work/dist/saliency_tubes-$version.tar.gz"
[ -f "$wheel" ] || { echo "error: expected $wheel (the version of __init__.py), got: $(ls "$work/dist")" >&2; exit 1; }
[ -f "$sdist" ] || { echo "error: expected $sdist, got: $(ls "$work/dist")" >&2; exit 1; }

echo "== twine check --strict"
"$py" -m twine check --strict "$work/dist"/*

echo "== what the wheel holds"
"$py" - "$wheel" "$sdist" "$root/src" <<'PY'
import pathlib, sys, tarfile, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
src = pathlib.Path(sys.argv[3])
# every file of the package in the source tree (modules, weights, templates, py.typed)
need = sorted(
    p.relative_to(src).as_posix() for p in (src / "saliency_tubes").rglob("*")
    if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
)
assert "saliency_tubes/zoo/weights/tiny_actions.safetensors" in need
missing = [n for n in need if n not in names]
licence = [n for n in names if n.endswith("LICENSE")]
assert not missing, f"the wheel lacks {missing}"
assert licence, "the wheel lacks the LICENSE file"
assert not [n for n in names if n.startswith(("tests/", "benchmarks/"))], "tests in the wheel"
sdist = tarfile.open(sys.argv[2]).getnames()
assert any(n.endswith("/LICENSE") for n in sdist), "the sdist lacks LICENSE"
print(f"wheel: {len(names)} files, every one of the package's {len(need)} source files "
      f"(weights, templates) and {licence[0]}; sdist: {len(sdist)} entries")
PY

echo "== fresh environment outside the checkout: $work/venv"
"$base" -m venv "$work/venv"
vpy="$work/venv/bin/python"
pip=("$vpy" -m pip --disable-pip-version-check -q)
"${pip[@]}" install "torch==2.13.0"
"${pip[@]}" install "$wheel"

cd "$work"                       # nothing of the checkout on the path
unset PYTHONPATH
"$vpy" - "$version" "$work/venv" <<'PY'
import importlib.metadata as md, sys
import saliency_tubes as st
assert st.__file__.startswith(sys.argv[2]), f"imported from {st.__file__}, not the fresh venv"
assert st.__version__ == md.version("saliency-tubes") == sys.argv[1], (
    st.__version__, md.version("saliency-tubes"), sys.argv[1])
print(f"saliency_tubes {st.__version__} from {st.__file__}")
PY
"$work/venv/bin/saliency-tubes" --version
echo "== saliency-tubes models"
"$work/venv/bin/saliency-tubes" models >"$work/models.txt"
head -3 "$work/models.txt"; grep -q "^tiny-actions " "$work/models.txt" || { echo "error: models lists no tiny-actions" >&2; exit 1; }
echo "... $(wc -l <"$work/models.txt") models"
echo "== saliency-tubes demo"
"$work/venv/bin/saliency-tubes" demo --out "$work/demo_out"
ls "$work/demo_out"
[ -f "$work/demo_out/manifest.json" ] || { echo "error: the demo wrote no manifest.json" >&2; exit 1; }
echo "check_wheel: ok"
