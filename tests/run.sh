#!/usr/bin/env bash
# The whole test suite, real containers included: installs what it needs, then lint, types, tests.
# Extra arguments go to pytest (e.g. tests/run.sh -k refused).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash packaging/dev-setup.sh --tests
echo "== ruff"
.venv/bin/ruff check .
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
