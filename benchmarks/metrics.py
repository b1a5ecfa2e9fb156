"""Full-reference metrics for the benchmark: the same code the reports use."""

from __future__ import annotations

from dipmed.metrics import psnr, ssim

__all__ = ["psnr", "ssim"]
