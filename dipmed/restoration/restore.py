"""The engine's entry point: a Volume and a Task -> a Restoration, by the method the task
and the settings choose.

`METHODS` lists, per task, the method modules in order of preference; the first whose
`chosen(volume, task, config)` is true runs (`run(volume, task, config, context)`). A
new method is one module with those two functions (its record type beside them, see
`result.Restoration.run`) and one entry here; the report draws its record in
`report/content.py`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dipmed.config import RestoreConfig
from dipmed.restoration.dip import method as dip
from dipmed.restoration.guided import method as guided
from dipmed.restoration.guided.method import memory_plan
from dipmed.restoration.result import Restoration
from dipmed.restoration.runtime.checkpoint import Checkpoint
from dipmed.restoration.runtime.context import NoCheckpoint, RunContext, pick_device, silent
from dipmed.restoration.runtime.events import Listener
from dipmed.restoration.sr import method as internal
from dipmed.restoration.task import Normaliser, Task
from dipmed.volume import Volume

__all__ = ["METHODS", "Normaliser", "Restoration", "Task", "memory_plan", "restore"]

METHODS = {
    "denoise": (guided, dip),
    "sr": (internal, dip),
    "inpaint": (dip,),
}


def restore(
    volume: Volume,
    task: Task,
    config: RestoreConfig,
    *,
    progress: Listener | None = None,
    monitor: Callable[[int, np.ndarray], None] | None = None,
    checkpoint: Checkpoint | None = None,
    candidates: bool = False,
) -> Restoration:
    """Restore `volume` as `task` asks, with the method `config` chooses.

    `progress` hears every fit step and named stage. `monitor(iteration, output)`
    receives every DIP epoch's output in image units (benchmarks with a reference; a
    device-to-host copy per epoch). `checkpoint`: every stage saves there and resumes
    from it. `candidates`: guided denoising keeps every candidate's image (benchmarks).
    """
    method = next(m for m in METHODS[task.kind] if m.chosen(volume, task, config))
    context = RunContext(
        pick_device(config.device),
        progress or silent,
        checkpoint or NoCheckpoint(),
        monitor,
        candidates,
    )
    return method.run(volume, task, config, context)
