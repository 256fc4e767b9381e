#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run every test: the Rust core's unit tests, then pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh -k advantages
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== cargo test (fastalign-core) =="
cargo test --quiet -p fastalign-core
echo "== pytest =="
exec .venv/bin/python -m pytest "$@"
