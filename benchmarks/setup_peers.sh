#!/usr/bin/env bash
# Virtual environments for the peers whose pins clash with dipmed's (each called as a
# subprocess on NIfTI files by benchmarks/peers.py). Idempotent; records `pip freeze`.
#   ants:        antspyx 0.6.3 pins numpy < 2.4 (dipmed's venv has numpy 2.4)
#   autodenoise: auto-denoise 3.0.0 (a DIP peer), kept apart from dipmed's packages
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
make_venv() {  # name, packages...
    local name=$1; shift
    local venv=.venvs/$name
    if [ ! -f "$venv/.installed" ]; then
        "$PYTHON" -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet "$@"
        touch "$venv/.installed"
    fi
    "$venv/bin/python" -m pip freeze > "$venv/freeze.txt"
}
make_venv ants antspyx==0.6.3 nibabel
make_venv autodenoise torch==2.13.0 auto-denoise==3.0.0 nibabel
echo "peer venvs ready in $(pwd)/.venvs"
