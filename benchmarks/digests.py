"""SHA-256 of each restoration kind's outputs on small seeded phantoms (CPU).

`python benchmarks/digests.py` prints one line per kind: guided denoising (MR, with its
uncertainty map), internal-learning sr, DIP sr and DIP inpainting. A change that is meant
to keep behaviour (a refactor) must print the same lines before and after; about a
minute on a 2-core CPU.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dipmed.config import load_config  # noqa: E402
from dipmed.phantom import add_rician_noise, head_phantom, mr_phantom  # noqa: E402
from dipmed.restoration.restore import Task, restore  # noqa: E402
from dipmed.volume import Meta, Volume  # noqa: E402

SMALL_NET = {"network.features": [8, 8, 16, 16, 32, 8]}


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        if a is not None:
            h.update(np.ascontiguousarray(a, dtype=np.float32).tobytes())
    return h.hexdigest()[:16]


def cases():
    """(name, volume, task, config) for each restoration kind."""
    rng = np.random.default_rng(0)
    mr = add_rician_noise(mr_phantom((32, 32, 24)), 0.05, rng)
    thick = head_phantom((36, 36, 40))[:, :, ::2]
    noisy_thick = thick + rng.normal(0.0, 0.03, thick.shape).astype(np.float32)
    clean = head_phantom((24, 20, 18))
    holed = clean.copy()
    mask = np.ones_like(clean)
    mask[10:14, 8:12, 6:10] = 0
    spacing = np.diag([1.0, 1.0, 2.0, 1.0])
    return [
        (
            "denoise guided",
            Volume(mr, np.eye(4), Meta(modality="MR")),
            Task("denoise"),
            load_config(None, **{"guided.iterations": 6, **SMALL_NET}),
        ),
        (
            "sr internal",
            Volume(thick, spacing),
            Task("sr", factors=(1, 1, 2)),
            load_config(None, sr_method="internal", **{"internal.steps": 20, **SMALL_NET}),
        ),
        (
            "sr dip",
            Volume(thick, spacing),
            Task("sr", factors=(1, 1, 2)),
            load_config(None, sr_method="dip", **{"fit.max_iters": 20, **SMALL_NET}),
        ),
        (
            "sr dip, denoised first",
            Volume(noisy_thick, spacing),
            Task("sr", factors=(1, 1, 2)),
            load_config(
                None,
                sr_method="dip",
                noise_sigma=0.03,
                **{"fit.max_iters": 20, "guided.iterations": 4, **SMALL_NET},
            ),
        ),
        (
            "inpaint dip",
            Volume(holed * mask, np.eye(4)),
            Task("inpaint", mask=mask),
            load_config(None, method="dip", **{"fit.max_iters": 20, **SMALL_NET}),
        ),
    ]


def main() -> None:
    torch.set_num_threads(2)
    for name, volume, task, config in cases():
        result = restore(volume, task, config)
        print(f"{name}: {_digest(result.volume.array, result.uncertainty, result.baseline)}")


if __name__ == "__main__":
    main()
