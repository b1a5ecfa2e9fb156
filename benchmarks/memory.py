"""Memory of the parts of guided denoising, measured: `python benchmarks/memory.py`.

Each measurement runs in a fresh child process and reads its peak RSS (rusage), so one
part's peak does not hide another's:
- base: the interpreter with torch, MONAI and dipmed imported;
- step P: one member SURE step (two forward passes, one backward) on a P^3 patch, for the
  default network, after the base;
- volume N: guided denoising of an N-voxel volume with one member of a 32^3 patch and 2
  steps, so that the whole-volume arrays and the collaborative filter dominate.
The fitted constants are what `dipmed/restoration/runtime/memory.py` uses; the table goes to
benchmarks/README.md by hand. `python benchmarks/memory.py volumes` measures the volumes
again and keeps the steps (they depend on the network only).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
torch.set_num_threads(2)
import dipmed.restoration.guided.pipeline as guided
from dipmed.restoration.guided.settings import GuidedSettings
from dipmed.restoration.runtime.context import RunContext
from dipmed.restoration.networks import NetworkConfig
from dipmed.restoration.noise.model import NoiseModel
kind, size = sys.argv[1], int(sys.argv[2])
start = time.time()
if kind == "step":
    from dataclasses import replace
    from dipmed.restoration.networks import build_generator
    net = build_generator(3, replace(NetworkConfig(), input_channels=1, norm="instance"))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    u = torch.randn(1, 1, size, size, size)
    for _ in range(2):
        b = torch.randn_like(u)
        x, xe = net(u), net(u + 0.1 * b)
        loss = ((u - x) ** 2).mean() + (b * (xe - x)).mean()
        opt.zero_grad(); loss.backward(); opt.step()
elif kind == "volume":
    shape = (size, size, size)
    u = np.random.default_rng(0).normal(10, 1, shape).astype(np.float32)
    # one member of 2 steps (the default member for white noise): since the quality
    # presets, GuidedSettings() left unresolved fits none
    settings = GuidedSettings(members=1, iterations=2, patch=32).resolved(white=True)
    guided.guided_denoise(u, NoiseModel(1.0, None, "given"), "CT", settings,
                          network=NetworkConfig(), seed=0,
                          context=RunContext(torch.device("cpu")))
print(json.dumps({"kind": kind, "size": size, "seconds": time.time() - start,
                  "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
"""


def measure(kind: str, size: int) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, kind, str(size)], capture_output=True, text=True, check=True
    )
    from dipmed.restoration.runtime.memory import MODEL

    row = json.loads(done.stdout.strip().splitlines()[-1])
    return {**row, "model": MODEL} if kind == "volume" else row


def main() -> None:
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results-memory.json")
    if sys.argv[1:] == ["volumes"]:  # the volumes again (the code changed), the steps kept
        with open(out) as f:
            rows = [r for r in json.load(f) if r["kind"] != "volume"]
    else:
        rows = [measure("base", 0)]
        rows += [measure("step", p) for p in (32, 48, 64, 80, 96)]
    rows += [measure("volume", n) for n in (64, 96, 128, 160)]
    for row in rows:
        print(json.dumps(row), flush=True)
    with open(out, "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
