#!/usr/bin/env bash
# Set up the development environment in .venv (idempotent, safe to re-run):
#   1. uv (from PyPI) if it is not on PATH;
#   2. .venv with the exact locked packages (requirements/dev.lock), linked from uv's cache,
#      so a fresh clone sets up in seconds once the cache is warm;
#   3. fastalign itself, built by maturin in release mode and installed into .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v uv >/dev/null 2>&1; then
    python3 -m pip install --quiet --user "uv==0.13.9" || python3 -m pip install --quiet "uv==0.13.9"
    export PATH="$HOME/.local/bin:$PATH"
fi

if [ ! -x .venv/bin/python ]; then
    uv venv --quiet --python 3.11 .venv
fi
uv pip sync --quiet --python .venv/bin/python requirements/dev.lock

# Release build of the Rust extension, installed into .venv (python/ is put on the path,
# the compiled module lands in python/fastalign/).
log=$(mktemp)
if ! VIRTUAL_ENV="$PWD/.venv" .venv/bin/maturin develop --release --uv >"$log" 2>&1; then
    cat "$log"
    echo "setup: building fastalign's Rust extension failed (log above)" >&2
    exit 1
fi
rm -f "$log"
# The extension is abi3 (_native.abi3.so); a version-specific build left by an older checkout
# (_native.cpython-311-*.so) would be imported first, since CPython tries that suffix before
# .abi3.so. Removed only after the new build is in place, so a running test never lacks one.
rm -f python/fastalign/_native.cpython-*.so
.venv/bin/python -c "import fastalign, sys; print('fastalign', fastalign.__version__, 'ready in', sys.prefix)"
