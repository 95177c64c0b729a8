# Sourced by scripts/up and scripts/test: make .venv if missing and install the project.
# Re-installs only when pyproject.toml changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
EXTRAS="${1:-}"
if [ ! -x "$ROOT/.venv/bin/python" ]; then
  "$PY" -m venv "$ROOT/.venv"
fi
stamp="$ROOT/.venv/.installed${EXTRAS:+-$EXTRAS}"
if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
  "$ROOT/.venv/bin/python" -m pip install --quiet --upgrade pip
  if [ -n "$EXTRAS" ]; then
    "$ROOT/.venv/bin/python" -m pip install --quiet -e "$ROOT[$EXTRAS]"
  else
    "$ROOT/.venv/bin/python" -m pip install --quiet -e "$ROOT"
  fi
  touch "$stamp"
fi
