"""The memory plan: what guided denoising of a volume needs, and the patch that fits.

Peak host memory is the larger of two phases' peaks (they are not alive together):
    fitting:   STEP_PEAK(patch) + COMMAND + FIT_ARRAYS x 4 x voxels
               + PAIR_PER_VOXEL x patch^3 x (the recorrupted member's pairs - PAIRS)
    filtering: IMPORT + COMMAND + min(FILTER, FILTER_PER_VOXEL x voxels)
               + FILTER_ARRAYS x 4 x voxels
and, with no member fitted (`--quality fast`), the guide's filter stages and the final
stage it pilots (on the guide's grid):
    IMPORT + COMMAND + min(FILTER_GUIDE, FILTER_PER_VOXEL x voxels) + GUIDE_ARRAYS x 4 x voxels
STEP_PEAK is the peak of a process that imported dipmed and ran member steps on patches
of that side (the default network; a volume smaller than a patch counts its own voxels);
COMMAND what the dipmed command holds besides (its readers, report and checkpoint
modules); FIT_ARRAYS the whole-volume float32 arrays alive while a member is fitted and
rendered (input, stabilised data, guide, its risk terms in float16 and change, the member
done, the change sum, the probe shifted and the two tile renders); FILTER the
collaborative filter's batches and slab temporaries (they grow with the volume until the
batch cap) and FILTER_ARRAYS the arrays alive in the last filter stage (input, stabilised
data, guide and its terms, the pilot, the guide's echo, the final stage and its smoother
variant, moved pilot and shifted input, and the stage's own three padded volumes, two
numerators and two denominators: the stage and its variant from one matching).

The coefficients are fitted to peak RSS measurements of fresh processes
(`benchmarks/memory.py`, the figures in benchmarks/README.md, "Memory plan");
`tests/test_memory_plan.py` checks the model against every measurement of the current
MODEL. On a GPU the step's share lives in GPU memory; the host keeps the import's
0.23 GB and the CUDA runtime's 0.5 GB.

`plan` picks the largest patch side, up to the one asked for, whose prediction fits the
budget (default: 80 % of the memory available now, or `--memory-gb`); a volume that does
not fit even with the smallest patch is refused with one line, before any work.
"""

from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import dataclass

import numpy as np
import torch

from dipmed.errors import InputError

GB = 2**30
MODEL = 3  # the code the constants were measured on (3: the Bayes stages give their
# smoother variant from the same matching, guide and final stage; 2: whole-volume arrays
# updated in place)
IMPORT = 0.23 * GB  # python with torch and dipmed imported
CUDA_HOST = 0.5 * GB  # host memory of the CUDA runtime and libraries once a GPU is used
STEP_PEAK = {32: 0.69 * GB, 48: 0.94 * GB, 64: 1.38 * GB, 80: 1.99 * GB, 96: 2.23 * GB}
COMMAND = 0.16 * GB  # the command's own modules and buffers (reading, report, checkpoint)
FIT_ARRAYS = 9.0
FILTER = 1.2 * GB  # the filter's working set once its batches are full (model 3: fitted
# to 64^3-160^3, the whole MNI and the whole head CT within -10..+19 %)
FILTER_PER_VOXEL = 2400.0  # ... and below that (64^3: 0.59 GB)
FILTER_ARRAYS = 17.0  # 15 measured on model 3; the guide's echo and its padded copy since
# (issue 22, twenty-first session: the whole MNI re-measured with them)
# no member fitted (`--quality fast`), measured on the whole MNI (1.28 GB; 1.31 GB since
# the guide pilots the final stage on its grid) with the filter of issue 22 (matching at
# the reference corners, 0.5 M-voxel slabs)
FILTER_GUIDE = 0.60 * GB  # the filter's working set, the guide's stages only
GUIDE_ARRAYS = 12.0  # input, stabilised data, the guide and its variant, shifted input,
# the stage's padded volumes, two numerators and two denominators, its outputs
PAIRS = 8  # the recorrupted member's pairs (7 trained, 1 held out) in the measurements above
PAIR_PER_VOXEL = 200.0  # each pair beyond them, bytes per patch voxel (its 24 MB of tensors
# at 64^3 and the heap they hold: the whole head CT with 25 pairs, benchmarks/README.md)
SIDES = tuple(sorted(STEP_PEAK, reverse=True))  # patch sides tried, largest first
# (instance norm at the bottleneck, a sixteenth of the side, needs 2 voxels: 32 at least)
AVAILABLE_SHARE = 0.8  # of the memory available now, when no budget is given


@dataclass(frozen=True)
class Plan:
    patch: int  # patch side (voxels)
    predicted_gb: float  # predicted peak host memory (GPU memory of the step aside)
    budget_gb: float
    fitted: bool = True  # members are fitted (False: the guide alone, `--quality fast`)
    pairs: int = PAIRS  # the recorrupted member's pairs held while it is fitted


def predict(
    voxels: int, patch: int, *, step_on_host: bool = True, fitted: bool = True, pairs: int = PAIRS
) -> float:
    """Predicted peak host bytes for guided denoising of `voxels` with `patch`^3 patches
    (`fitted` False: no member, the guide's filter stages alone; `pairs` the recorrupted
    member's, each a patch's worth of arrays held while it is fitted)."""
    base = (IMPORT if step_on_host else IMPORT + CUDA_HOST) + COMMAND
    if not fitted:
        return base + min(FILTER_GUIDE, FILTER_PER_VOXEL * voxels) + GUIDE_ARRAYS * 4.0 * voxels
    patch_voxels = min(patch**3, voxels)  # a volume smaller than a patch is fitted whole
    sides = sorted(STEP_PEAK)
    step = float(np.interp(patch_voxels, [s**3 for s in sides], [STEP_PEAK[s] for s in sides]))
    fitting = (step + COMMAND if step_on_host else base) + FIT_ARRAYS * 4.0 * voxels
    fitting += max(0, pairs - PAIRS) * PAIR_PER_VOXEL * patch_voxels
    filtering = base + min(FILTER, FILTER_PER_VOXEL * voxels) + FILTER_ARRAYS * 4.0 * voxels
    return max(fitting, filtering)


def plan(
    shape,
    preferred: int,
    budget_gb: float,
    device: torch.device,
    *,
    fitted: bool = True,
    pairs: int = PAIRS,
) -> Plan:
    """The largest patch side <= `preferred` whose predicted peak fits the budget
    (`fitted` False: no member is fitted, the patch does not count; `pairs` as `predict`)."""
    voxels = int(shape[0]) * int(shape[1]) * int(shape[2])
    on_gpu = device.type == "cuda"
    budget = budget_gb * GB if budget_gb > 0 else AVAILABLE_SHARE * available_bytes()
    sides = [s for s in SIDES if s <= preferred] or [min(SIDES)]
    for side in sides:
        need = predict(voxels, side, step_on_host=not on_gpu, fitted=fitted, pairs=pairs)
        gpu_step = STEP_PEAK[side] - IMPORT  # CPU-measured: an estimate of the GPU's share
        fits_gpu = not fitted or not on_gpu or gpu_step <= _gpu_free(device)
        if need <= budget and fits_gpu:
            return Plan(side, need / GB, budget / GB, fitted, pairs)
    smallest = predict(voxels, sides[-1], step_on_host=not on_gpu, fitted=fitted, pairs=pairs)
    smallest /= GB
    raise InputError(
        f"a volume of {shape[0]}x{shape[1]}x{shape[2]} voxels needs about {smallest:.1f} GB "
        f"even with {sides[-1]}^3 patches, more than the {budget / GB:.1f} GB budget; "
        "raise --memory-gb (or free memory), or crop the volume"
    )


def available_bytes() -> float:
    """Memory available to a new allocation now (Linux MemAvailable; else the total)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def release_freed() -> None:
    """Hand the heap's free pages back to the system (glibc's `malloc_trim`; elsewhere
    nothing). Long-lived tensors made between large temporaries (the recorrupted member's
    pairs, each after a guide pass) pin the heap: 8 pairs of 64^3 held 1.3 GB of RSS for
    0.2 GB of tensors, 0.4 GB with this after each (benchmarks/README.md, issue 22)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # another C library (musl): nothing to trim
            pass


def _gpu_free(device: torch.device) -> float:
    free, _ = torch.cuda.mem_get_info(device)
    return AVAILABLE_SHARE * free
