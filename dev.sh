#!/usr/bin/env bash
# The quick start, self-contained: a virtual environment on first use, then the command.
#   bash dev.sh demo   # install jaxrec into .venv, train MF-BPR on MovieLens-100K, print test metrics
#                      (into runs/quickstart, replaced on every demo)
#   bash dev.sh test   # install jaxrec with its test extra into .venv, run the test suite
# VENV=path chooses the environment (default .venv); PYTHON=python3.11 the interpreter (>= 3.11).
set -euo pipefail
cd "$(dirname "$0")"
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

usage() { sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; }

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    echo "dev.sh: creating the virtual environment $VENV with $PYTHON" >&2
    if ! "$PYTHON" -m venv "$VENV"; then
      echo "dev.sh: '$PYTHON -m venv' failed; install the venv module (Debian/Ubuntu: apt install python3-venv)" \
           "or set PYTHON to a Python >= 3.11 that has it" >&2
      exit 1
    fi
  fi
  if ! "$VENV/bin/python" -c 'import jaxrec, pytest, rax' 2>/dev/null \
     || [ pyproject.toml -nt "$VENV/.jaxrec-installed" ]; then
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e ".[test]"
    touch "$VENV/.jaxrec-installed"
  fi
}

case "${1:-}" in
  demo) setup; shift; exec "$VENV/bin/jaxrec" train --config configs/ml100k-mf.yaml --set name=quickstart --overwrite "$@" ;;
  test) setup; shift; exec "$VENV/bin/python" -m pytest "$@" ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
