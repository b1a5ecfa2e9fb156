"""What to restore, and the intensity scale the networks work in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Kind = Literal["denoise", "sr", "inpaint"]


@dataclass(frozen=True)
class Task:
    """What to restore: "denoise", "sr" (with factors) or "inpaint" (with a 0/1 mask)."""

    kind: Kind
    factors: tuple[int, int, int] = (1, 1, 1)
    mask: np.ndarray | None = None

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, int, int]:
        """The restored grid for an input of `shape` (finer by the factors for sr)."""
        return tuple(n * f for n, f in zip(shape, self.factors, strict=True))  # type: ignore[return-value]


@dataclass(frozen=True)
class Normaliser:
    """x_norm = (x - offset) / scale, with the 0.5 and 99.5 percentiles mapped to 0 and 1."""

    offset: float
    scale: float

    @classmethod
    def of(cls, array: np.ndarray) -> Normaliser:
        low, high = (float(v) for v in np.percentile(array, [0.5, 99.5]))
        return cls(low, high - low if high > low else 1.0)

    def forward(self, array: np.ndarray) -> np.ndarray:
        return ((array - self.offset) / self.scale).astype(np.float32)

    def inverse(self, array: np.ndarray) -> np.ndarray:
        return (array * self.scale + self.offset).astype(np.float32)
