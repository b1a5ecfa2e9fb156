"""The report's images: tri-planar views of every volume in each display window, the
residual, and the error where a reference is given."""

from __future__ import annotations

import numpy as np

from dipmed.report.content import Run
from dipmed.report.page import Figure
from dipmed.report.views import (
    Window,
    data_uri,
    px_per_mm_for,
    symmetric_window,
    triplanar_png,
    windows_for,
)
from dipmed.volume import world_centre


def figures(run: Run) -> list[Figure]:
    r = run.restoration
    out_volume = r.volume
    centre = world_centre(out_volume)
    scale = px_per_mm_for(out_volume)
    units = run.volume.meta.units

    def view(array, affine, window):
        return data_uri(triplanar_png(array, affine, centre, window, scale))

    shown = [("input", run.volume.array, run.volume.affine)]
    shown += [("baseline", r.baseline, out_volume.affine)]
    shown += [("restored", out_volume.array, out_volume.affine)]
    if run.reference is not None:
        shown.append(("reference", run.reference.array, run.reference.affine))
    result = [
        Figure(
            f"Window {window.label(units)}",
            "same window in every row",
            [(label, view(a, affine, window)) for label, a, affine in shown],
        )
        for window in windows_for(out_volume.array, units)
    ]
    residual = run.volume.array - r.fitted
    window = symmetric_window("residual", residual, r.sigma)
    result.append(
        Figure(
            "Residual: input - A(restored)",
            f"grey = 0, black/white = {window.low:.4g}/{window.high:.4g} {units}; "
            "pure noise shows no anatomy",
            [("residual", view(residual, run.volume.affine, window))],
        )
    )
    if r.uncertainty is not None:
        result.append(_uncertainty(run, view))
    if run.reference is not None:
        result.append(_errors(run, view))
    return result


def _uncertainty(run: Run, view) -> Figure:
    r = run.restoration
    units = run.volume.meta.units
    high = float(np.percentile(r.uncertainty, 99.5)) or 1.0
    shown = windows_for(r.volume.array, units)[0]
    return Figure(
        "Uncertainty beside the restored volume",
        f"estimated local error (std), black = 0, white = {high:.4g} {units}; "
        "bright where the result is less sure",
        [
            ("restored", view(r.volume.array, r.volume.affine, shown)),
            ("uncertainty", view(r.uncertainty, r.volume.affine, Window("uncertainty", 0, high))),
        ],
    )


def _errors(run: Run, view) -> Figure:
    r, reference = run.restoration, run.reference.array
    errors = [
        ("baseline error", r.baseline - reference),
        ("restored error", r.volume.array - reference),
    ]
    window = symmetric_window("error", np.concatenate([e.ravel() for _, e in errors]), r.sigma)
    return Figure(
        "Error against the reference",
        f"estimate - reference; grey = 0, black/white = {window.low:.4g}/{window.high:.4g} "
        f"{run.volume.meta.units}",
        [(label, view(e, run.reference.affine, window)) for label, e in errors],
    )
