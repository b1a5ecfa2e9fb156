"""The stabilised domain of guided denoising: unit-variance noise, and its spectrum."""

from __future__ import annotations

import numpy as np
import scipy.fft

from dipmed.restoration.guided import transform
from dipmed.restoration.guided.collaborative import CollaborativeSettings
from dipmed.restoration.noise.model import NoiseModel, cube_covariance
from dipmed.restoration.noise.vst import RicianVST


class Stabiliser:
    """y (image units) <-> u (unit-variance noise)."""

    def __init__(self, model: NoiseModel, modality: str):
        self.rician = modality == "MR"
        self.sigma = model.sigma
        self._vst = RicianVST(model.sigma)

    def forward(self, y: np.ndarray) -> np.ndarray:
        return self._vst.forward(y) if self.rician else (y / self.sigma).astype(np.float32)

    def inverse(self, u: np.ndarray) -> np.ndarray:
        return self._vst.inverse(u) if self.rician else (u * self.sigma).astype(np.float32)

    def level(self, image: float) -> float:
        """The stabilised value whose inverse is `image` (image units; the inverse is
        monotone)."""
        if not self.rician:
            return image / self.sigma
        grid = np.linspace(-4.0, 8.0 + image / self.sigma, 4096, dtype=np.float32)
        return float(np.interp(image, self.inverse(grid), grid))

    def slope(self, u: np.ndarray) -> np.ndarray:
        """d(image)/du at u: converts stabilised errors to image units."""
        step = 0.05
        return (self.inverse(u + step) - self.inverse(u - step)) / (2 * step)


def coefficient_variances(model: NoiseModel):
    n = CollaborativeSettings().cube
    if model.white:
        return 1.0
    return transform.coefficient_variances(cube_covariance(model.correlation, n), n)


def psd(model: NoiseModel, shape) -> np.ndarray:
    """The noise power spectrum on the volume's grid (BM4D's sigma_psd form)."""
    return np.abs(np.fft.fftn(_kernel(model, shape, np.float64)))


def coloured(z: np.ndarray, model: NoiseModel) -> np.ndarray:
    """White unit noise `z` given the noise's correlation (circulant on z's grid); z
    itself for white noise. Real FFTs in float32: on a whole volume (the guide's echo's
    probe) the spectrum and its half-grid transform are about 1.5 volumes of float32
    where complex128 full-grid ones were 8."""
    if model.white:
        return z
    gain = np.sqrt(np.abs(scipy.fft.rfftn(_kernel(model, z.shape, np.float32))))
    spectrum = scipy.fft.rfftn(z)
    spectrum *= gain
    del gain
    return scipy.fft.irfftn(spectrum, s=z.shape).astype(np.float32, copy=False)


def _kernel(model: NoiseModel, shape, dtype) -> np.ndarray:
    """The noise's autocorrelation on the volume's grid, lags wrapped (circulant)."""
    kernel = np.zeros(shape, dtype)
    c = model.correlation
    lag = c.shape[0] // 2
    for index in np.ndindex(c.shape):
        kernel[tuple(i - lag for i in index)] = c[index]
    return kernel
