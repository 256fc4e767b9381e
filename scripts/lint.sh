#!/usr/bin/env bash
# The lint gate: every check below must pass, run from the repository root with the tools of
# .venv (scripts/setup.sh installs them, pinned in requirements/dev.lock) and the Rust toolchain.
# Stops at the first failing step. Run by .ci/run after the set-up and before the tests.
#   ruff check / ruff format --check   Python lint and formatting (config: pyproject.toml)
#   cargo fmt --check / cargo clippy   Rust formatting and lints, warnings are errors
#   mypy                               the package's types (config: [tool.mypy] in pyproject.toml)
#   stubtest                           python/fastalign/_native.pyi against the compiled module
#   mkdocs build --strict              docs/: every page in the nav, every link and anchor valid
set -euo pipefail
cd "$(dirname "$0")/.."

PY_PATHS=(python tests benches scripts)

step() {
    echo "== lint: $* =="
}

step ruff check
.venv/bin/ruff check "${PY_PATHS[@]}"

step ruff format --check
.venv/bin/ruff format --check "${PY_PATHS[@]}"

step cargo fmt --check
cargo fmt --all --check

step cargo clippy
# the binding's build script asks this interpreter for its configuration (as maturin's build does)
PYO3_PYTHON="$PWD/.venv/bin/python" cargo clippy --quiet --workspace --all-targets -- -D warnings

step mypy
.venv/bin/mypy

step stubtest fastalign._native
PYTHONPATH=python .venv/bin/python -m mypy.stubtest fastalign._native --mypy-config-file pyproject.toml

step mkdocs build --strict
# no --quiet: it hides the warnings --strict turns into a failure
site=$(mktemp -d)
.venv/bin/mkdocs build --strict --site-dir "$site"
rm -rf "$site"

echo "== lint: all checks passed =="
