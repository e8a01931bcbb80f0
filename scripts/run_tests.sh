#!/usr/bin/env bash
# Install what the test suite needs on a fresh Debian/Ubuntu machine, run ruff and mypy, then the whole suite.
# Usage (from anywhere): bash scripts/run_tests.sh [extra pytest arguments]
# The pytest exit status is passed through (5 = no tests collected counts as a failure).
set -euo pipefail
cd "$(dirname "$0")/.."

# Qt under a virtual X display (pytest-xvfb starts Xvfb; napari needs the xcb/GL libraries).
if ! command -v Xvfb >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
            echo "run_tests.sh: Xvfb is missing and this is not root: install xvfb and the xcb/GL libraries" >&2
            exit 1
        fi
    fi
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends \
        xvfb libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0 libgl1 libegl1 \
        libfontconfig1 libdbus-1-3
fi

PYTHON="${PYTHON:-python3}"
# torch pinned to the CPU build this project is tested with (a local +cpu wheel where one exists).
"$PYTHON" -m pip install torch==2.13.0 -e ".[test]"

# Lint and types first (configured in pyproject.toml): cheap, and a failure says where.
"$PYTHON" -m ruff check .
"$PYTHON" -m mypy

# One BLAS/OpenMP thread per process: CI machines have few cores, often shared.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
# A crash after the last test (seen once at interpreter exit, all tests passed) then prints its stack.
export PYTHONFAULTHANDLER=1
# One pytest-xdist worker per core (at most 4), each test file whole in one worker: a file's module
# fixtures are built once and its tests keep their order. `-n 0` among the arguments runs it serially.
exec "$PYTHON" -m pytest -q -n auto --maxprocesses 4 --dist loadfile "$@"
