"""Report building blocks on tiny phantoms: views, no-reference figures, redaction."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset

from dipmed.phantom import head_phantom
from dipmed.quality import fber, foreground_mask, residual_stats, snr
from dipmed.report.privacy import REDACTED, identifiers, redact
from dipmed.report.views import Window, triplanar_png, windows_for
from dipmed.volume import Volume


def _planes(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


def test_views_follow_the_world_not_the_array_order():
    """One object stored RAS and LPS gives the same picture: right on the viewer's left,
    anterior up."""
    ras = np.zeros((21, 19, 15), np.float32)
    ras[16, 10, 7] = 1.0  # towards the patient's right (+x) ...
    ras[10, 15, 7] = 0.5  # ... and anterior (+y)
    affine_ras = np.diag([1.0, 1.2, 2.0, 1.0])
    lps = ras[::-1, ::-1, :]
    affine_lps = affine_ras @ np.array(
        [[-1, 0, 0, 20], [0, -1, 0, 18], [0, 0, 1, 0], [0, 0, 0, 1]], float
    )
    centre = affine_ras[:3, :3] @ np.array([10, 9, 7]) + affine_ras[:3, 3]
    window = Window("w", 0.0, 1.0)
    a = _planes(triplanar_png(ras, affine_ras, centre, window, 4.0))
    b = _planes(triplanar_png(lps, affine_lps, centre, window, 4.0))
    np.testing.assert_array_equal(a, b)
    axial = a[:, : 21 * 4]
    rows, cols = np.nonzero(axial == 255)
    assert cols.mean() < axial.shape[1] / 2  # the right-sided voxel on the left half
    rows, _ = np.nonzero(axial == 128)
    assert rows.mean() < axial.shape[0] / 2  # the anterior voxel in the upper half


def test_views_are_drawn_to_scale():
    png = triplanar_png(
        np.ones((10, 10, 10)), np.diag([1.0, 1.0, 3.0, 1.0]), np.zeros(3), Window("w", 0, 1), 2.0
    )
    image = _planes(png)
    assert image.shape[0] == 60  # 10 slices of 3 mm at 2 px/mm: the coronal height


def test_ct_gets_hounsfield_windows_and_mr_percentiles():
    ct = windows_for(np.zeros((4, 4, 4)), "HU")
    assert [(w.low, w.high) for w in ct][:2] == [(0.0, 80.0), (-160.0, 240.0)]
    mr = windows_for(np.arange(1000.0).reshape(10, 10, 10), "")
    assert mr[0].low == pytest.approx(4.995) and mr[0].high == pytest.approx(994.005)


def test_residual_of_pure_noise_holds_no_structure_but_removed_anatomy_does():
    image = head_phantom((33, 29, 24)) * 1000
    mask = foreground_mask(image)
    noise = np.random.default_rng(0).normal(0, 20, image.shape)
    clean = residual_stats(noise, image, mask, 20.0)
    assert abs(clean["correlation_with_restored"]) < 0.05
    assert clean["std_over_sigma"] == pytest.approx(1.0, abs=0.05)
    assert clean["whiteness"] == pytest.approx(1.0, abs=0.15)
    lossy = residual_stats(noise + 0.2 * image, 0.8 * image, mask, 20.0)
    assert lossy["correlation_with_restored"] > 0.5 and lossy["whiteness"] < 0.8


def test_snr_and_fber_rise_as_noise_falls():
    image = head_phantom((33, 29, 24)) * 1000
    mask = foreground_mask(image)
    assert 0.2 < mask.mean() < 0.8
    rng = np.random.default_rng(1)
    noisy, quiet = (image + rng.normal(0, s, image.shape) for s in (60, 15))
    assert snr(quiet, mask, 15) > snr(noisy, mask, 60)
    assert fber(quiet, mask) > fber(noisy, mask)
    assert snr(image, np.zeros_like(mask), 1.0) is None  # no foreground: no figure


def test_identifiers_are_redacted_in_every_spelling():
    header = Dataset()
    header.PatientName, header.PatientID = "DOE^JANE^Q", "PID-123456"
    header.PatientBirthDate, header.AccessionNumber = "19800229", "ACC1"
    volume = Volume(np.zeros((2, 2, 2)), np.eye(4), source=type("S", (), {"headers": (header,)}))
    tokens = identifiers(volume)
    text = {"a": ["/data/PID-123456/doe_jane.nii", "born 1980-02-29 or 29.02.1980"]}
    out = redact(text, tokens)
    assert out["a"][0] == f"/data/{REDACTED}/{REDACTED}_{REDACTED}.nii"
    assert out["a"][1] == f"born {REDACTED} or {REDACTED}"
    assert redact("DOES and Q stay", tokens) == "DOES and Q stay"  # word parts, short tokens
    assert identifiers(Volume(np.zeros((2, 2, 2)), np.eye(4))) == set()  # NIfTI: none


def test_psnr_and_ssim_agree_with_monai():
    import torch
    from monai.metrics import PSNRMetric, SSIMMetric

    from dipmed.metrics import psnr, ssim

    rng = np.random.default_rng(3)
    clean = head_phantom((23, 19, 17)).astype(np.float64)
    noisy = clean + rng.normal(0, 0.05, clean.shape)
    x, y = (torch.from_numpy(a)[None, None] for a in (noisy, clean))
    monai_psnr = float(PSNRMetric(max_val=1.0)(x, y))
    monai_ssim = float(SSIMMetric(spatial_dims=3, data_range=1.0)(x, y))
    assert psnr(noisy, clean, 1.0) == pytest.approx(monai_psnr, abs=1e-6)
    assert ssim(noisy, clean, 1.0) == pytest.approx(monai_ssim, abs=1e-4)
