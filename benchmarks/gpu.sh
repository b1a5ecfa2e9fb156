#!/usr/bin/env bash
# The GPU preset, for a lent GPU machine (benchmarks/README.md): whole volumes with
# dipmed's default settings on CUDA (fp32, then bf16 members), seconds and peak GPU
# memory; results land in results-whole.json under "<case>@gpu-<precision>".
# Needs: torch with CUDA; monai, nibabel, pydicom (wheels in .whl/ are installed first
# when there is no network); the benchmark volumes in $DIPMED_DATA.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp}
nvidia-smi -L
python3 - <<'PY'
import time, numpy as np, torch
from dipmed.restoration import collaborative
x = np.random.default_rng(0).normal(0, 1, (48, 48, 40)).astype(np.float32)
cpu = collaborative.denoise(x, 1.0)
t = time.time(); gpu = collaborative.denoise(x, 1.0, device="cuda"); torch.cuda.synchronize()
print(f"collaborative CUDA vs CPU: max |diff| {np.abs(cpu - gpu).max():.2e}, {time.time() - t:.2f} s")
PY
run() { timeout "$1" python3 benchmarks/whole.py "${@:2}" --no-peers --device cuda --threads 16 \
    2>&1 | grep -v "iteration\|slab\|tiles" ; cp benchmarks/results-whole.json "$OUT/" ; }
run 150 mni-denoise
run 110 mni-denoise --precision bf16
run 100 ct
run 60 mni-sr --sr-method internal
run 170 mni-sr  # auto: the whole 3D DIP fit where the GPU holds it
# ct-big (512x512x300): about 12 minutes at the head CT's rate, past the call's limit
cp benchmarks/results-whole.json "$OUT/"
