"""Deterministic head-like phantoms for samples, tests and benchmarks (no data downloads).

Each phantom is a sum of constant ellipsoids in normalised coordinates [-1, 1]^3, in the
spirit of the Shepp-Logan phantom: a scalp/skull shell, brain, ventricles and small
lesions, so that edges, thin structures and flat regions are all present.
"""

from __future__ import annotations

import numpy as np

# (centre xyz, semi-axes xyz, intensity added) in normalised units; later ones add on top.
_ELLIPSOIDS = (
    ((0.0, 0.0, 0.0), (0.90, 0.80, 0.85), 1.0),  # skull outer surface
    ((0.0, 0.0, 0.0), (0.82, 0.72, 0.77), -0.8),  # brain inside the skull
    ((-0.18, 0.05, 0.1), (0.10, 0.30, 0.25), -0.15),  # left ventricle
    ((0.18, 0.05, 0.1), (0.10, 0.30, 0.25), -0.15),  # right ventricle
    ((0.35, -0.35, -0.2), (0.12, 0.12, 0.12), 0.25),  # lesion
    ((-0.4, -0.3, 0.3), (0.07, 0.07, 0.07), 0.3),  # small lesion
    ((0.0, 0.45, -0.35), (0.25, 0.12, 0.15), 0.1),  # grey-matter-like region
)


def head_phantom(shape: tuple[int, int, int]) -> np.ndarray:
    """Normalised intensities in [0, 1]: background 0, skull 1, brain 0.2-0.55."""
    axes = [np.linspace(-1.0, 1.0, n) for n in shape]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    image = np.zeros(shape, dtype=np.float64)
    for centre, semi, value in _ELLIPSOIDS:
        terms = zip((x, y, z), centre, semi, strict=True)
        inside = sum(((c - m) / s) ** 2 for c, m, s in terms) <= 1.0
        image[inside] += value
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def ct_phantom(shape: tuple[int, int, int]) -> np.ndarray:
    """Integer Hounsfield units: air -1000, brain 20-80, skull 1000."""
    image = head_phantom(shape)
    hu = np.where(image >= 0.99, 1000.0, image * 150.0 - 5.0)
    hu[image == 0] = -1000.0
    return np.round(hu).astype(np.float32)


def mr_phantom(shape: tuple[int, int, int]) -> np.ndarray:
    """T1-like magnitude intensities, 0-1000 (skull dark, scalp bright, as in T1w MRI)."""
    image = head_phantom(shape)
    t1 = np.where(image >= 0.99, 150.0, image * 1600.0)
    return t1.astype(np.float32)


def add_rician_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of the image plus complex Gaussian noise (std `sigma`, image units)."""
    real = image + rng.normal(0.0, sigma, image.shape)
    imaginary = rng.normal(0.0, sigma, image.shape)
    return np.sqrt(real**2 + imaginary**2).astype(np.float32)
