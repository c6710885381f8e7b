# Sourced by the other scripts: creates .venv on first use and keeps it in step with setup.py.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "aic: creating virtualenv in .venv" >&2
  "$PY" -m venv .venv
fi
STAMP=.venv/.aic-installed
if [ ! -f "$STAMP" ] || [ setup.py -nt "$STAMP" ]; then
  echo "aic: installing aic and its test dependencies into .venv" >&2
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e ".[test,cuda]"
  touch "$STAMP"
fi
export PATH="$ROOT/.venv/bin:$PATH"
