"""The restoration engine, grouped by what each part is.

`restore.restore(volume, task, config)` is the entry point: its table `METHODS` picks,
per task, the first method module whose `chosen(...)` holds and calls its `run(...)`,
which returns a `result.Restoration` carrying a typed record of what the method did.

- `guided/`: guided denoising (the default denoiser): `method` (a Volume in), `pipeline`
  (the steps in order), `guide`, `collaborative` and `matching` (the non-local filter),
  `ensemble` and `member` (the SURE-trained deep-prior members, `tiles` on large
  volumes), `risk` (SURE), `residual`, `stabiliser`, `settings` (presets, result).
- `dip/`: the Deep Image Prior fit for any task: `method`, `prior`, `fit`, `losses`,
  `stopping`, `anchor`.
- `sr/`: internal-learning super-resolution: `method`, `internal`.
- `noise/`: level (`estimate`), model with its correlation (`model`), `vst`, `background`.
- `runtime/`: `context` (device, listener, checkpoint of one run), `checkpoint`,
  `training` (the resumable state of every training loop), `events`, `memory` (the plan).
- Shared: `task` (Task, Normaliser), `measurement` (what sr fits to, denoised first where
  it pays), `networks` (MONAI BasicUNet), `operators` (the forward models), `result`.

A new method: one module with `chosen` and `run` (and its record type), one entry in
`restore.METHODS`, and its section in `report/content.py` (`_FITS`) and
`report/__init__.py` (`_CHARTS`).
"""
