#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the demo: fastalign beside TRL 1.16.0, values and speed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m fastalign.demo "$@"
