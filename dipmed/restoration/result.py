"""A restoration as every method returns it: the volume, what it is compared with, and a
typed record of what the method did (`run`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from dipmed.restoration.task import Normaliser
from dipmed.volume import Volume

if TYPE_CHECKING:
    from dipmed.restoration.dip.method import DipRun
    from dipmed.restoration.guided.settings import GuidedResult
    from dipmed.restoration.sr.method import InternalRun


@dataclass(frozen=True)
class Restoration:
    volume: Volume  # on the output grid, in the input's units
    baseline: np.ndarray  # the task's classical estimate, output grid, input units
    fitted: np.ndarray  # A(restored): the restoration seen on the measurement grid
    normaliser: Normaliser
    sigma: float  # noise std used (image units)
    sigma_estimated: bool
    device: str
    run: DipRun | GuidedResult | InternalRun  # what the method did
    seconds: float  # the whole restoration, a denoising first included
    uncertainty: np.ndarray | None = None  # output grid, image units (guided only)
    denoised_first: GuidedResult | None = None  # sr of noisy slices: their denoising

    @property
    def method(self) -> str:
        """ "dip", "guided" or "internal"."""
        return self.run.method
