"""``ect track`` on the block engine: states streamed one at a time, propagation in blocks.

The inputs become Zarr (their own stores, or copies streamed into the command's work
folder ``.OUT.<key>.ect-work``); the reference labels' bounding boxes (one reduction
pass) give the halo reaching every particle; then
:func:`electrode_ct.operando.stream.track_streamed` runs with the session's client. The
caller writes the outputs, then calls the returned function to remove the work folder.
No science in here.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from electrode_ct.cli import _compute as co
from electrode_ct.cli._common import info, progress
from electrode_ct.compute.config import ComputeConfig
from electrode_ct.errors import InputError


def track_engine(lab: Any, gvols: list[Any], pvols: list[Any], ref_name: str, out: Path,
                 cfg: ComputeConfig, *, value: int | None, reference: int, metric: str,
                 exclude_layers: int, drop_border: bool,
                 calibrate: list[int | str] | None = None) -> tuple[Any, Callable[[], None]]:
    """Run :func:`~electrode_ct.operando.stream.track_streamed` on the engine.

    Returns
    -------
    (TrackResult, callable)
        The result (labels read back from the work folder on access) and the clean-up.
    """
    from electrode_ct.cli._engine import EngineJob, plan_blocks
    from electrode_ct.cracks.blockwise import label_boxes_blocks, reach
    from electrode_ct.io.stream import zarr_source
    from electrode_ct.operando.stream import BYTES_PER_VOXEL, StreamPlan, track_streamed

    params = {"command": "track", "greys": [g.source for g in gvols],
              "phases": [p.source for p in pvols], "reference": reference}
    with co.session(cfg, max(g.nbytes for g in gvols), explicit=True) as client:
        job = EngineJob.start(lab, ref_name, out, cfg, client, params)

        def copy(vol: Any, name: str) -> Any:
            return zarr_source(vol, job.work / f"{name}.ome.zarr", memory_limit=job.memory_limit,
                               reuse=True, progress=lambda it: progress(it, desc=f"copy {name}"))

        try:
            ref = job.source()
            greys = [copy(g, f"grey_{i}") for i, g in enumerate(gvols)]
            phases = [copy(p, f"phases_{i}") for i, p in enumerate(pvols)] or None
            scan = plan_blocks(cfg, lab.shape, (0, 0, 0), 8.0)
            boxes = label_boxes_blocks(ref, block_shape=scan, client=client,
                                       progress=lambda it: progress(it, desc="boxes"))
            ext = max(reach(boxes, margin=2))
            blocks = plan_blocks(cfg, lab.shape, (ext,) * 3, BYTES_PER_VOXEL)
            info(f"propagation blocks {blocks}, halo {ext} voxels")
            plan = StreamPlan(block_shape=blocks, halo=(ext,) * 3, client=client, work=job.work)
            res = track_streamed(ref, greys, spacing=lab.spacing, phases=phases,
                                 phase_value=value, reference=reference, metric=metric,
                                 exclude_layers=exclude_layers, drop_border=drop_border,
                                 plan=plan, calibrate=calibrate)
        except InputError:  # a state that cannot be registered: nothing to resume
            shutil.rmtree(job.work, ignore_errors=True)
            raise
    return res, lambda: shutil.rmtree(job.work, ignore_errors=True)
