"""``ect cracks classify`` on the block engine: the 3-phase volume and the crack rows in
blocks (:mod:`electrode_ct.cracks.blockwise`), the classification as today.

The labels and the grey volume become Zarr (their own stores, or copies in the work
folder ``.particle_phases.tif.<key>.ect-work`` inside the output folder); one reduction
pass gives the particles' boxes, hence the halo; the 3-phase volume is written block by
block and published as ``particle_phases.tif``. No science in here.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from electrode_ct.cli import _compute as co
from electrode_ct.cli._common import info, progress
from electrode_ct.compute.config import ComputeConfig
from electrode_ct.errors import InputError


def classify_engine(scan: Any, model: Any, g: Any, lab: Any, names: tuple[str, str],
                    out: Path, cfg: ComputeConfig, params: dict[str, Any],
                    **options: Any) -> Any:
    """:func:`~electrode_ct.cracks.classify_scan` with a
    :class:`~electrode_ct.cracks.blockwise.BlockSplitter`; the phases go to
    ``out/particle_phases.tif``.

    Parameters
    ----------
    scan, model
        The prepared scan and the loaded model.
    g, lab : Volume
        The grey and label volumes as read.
    names : (str, str)
        The grey and labels files (the work folder's key).
    out : pathlib.Path
        Output folder.
    cfg : ComputeConfig
        Compute settings.
    params : dict
        The command's parameters (the work folder's key).
    **options
        Keywords of :func:`~electrode_ct.cracks.classify_scan`.

    Returns
    -------
    CracksResult
        ``phases`` is None (written to ``out/particle_phases.tif``).
    """
    from electrode_ct.cli._engine import EngineJob

    fresh = not out.exists()
    with co.session(cfg, g.nbytes, explicit=True) as client:
        job = EngineJob.start(lab, names[1], out / "particle_phases.tif", cfg, client,
                              {"command": "cracks classify", "grey": names[0], **params})
        try:
            res, dst = _run(job, scan, model, g, lab, **options)
        except InputError:  # nothing to resume: leave nothing behind
            shutil.rmtree(job.work, ignore_errors=True)
            if fresh and not any(out.iterdir()):
                out.rmdir()
            raise
    job.finish(dst)
    return res


def _run(job: Any, scan: Any, model: Any, g: Any, lab: Any,
         **options: Any) -> tuple[Any, Any]:
    """The passes of :func:`classify_engine` inside its session: the result and the
    3-phase store."""
    import numpy as np

    from electrode_ct.cli._engine import plan_blocks
    from electrode_ct.cracks import PHASES, classify_scan
    from electrode_ct.cracks import blockwise as cb
    from electrode_ct.io.stream import zarr_source

    labels = job.source()
    grey = zarr_source(g, job.work / "grey.ome.zarr", memory_limit=job.memory_limit,
                       reuse=True, progress=lambda it: progress(it, desc="copy grey"))
    scan_blocks = plan_blocks(job.cfg, lab.shape, (0, 0, 0), 8.0)
    boxes = cb.label_boxes_blocks(labels, block_shape=scan_blocks, client=job.client,
                                  progress=lambda it: progress(it, desc="boxes"))
    halo = cb.reach(boxes, margin=max(cb.heal_margin(scan.spacing)))
    blocks = plan_blocks(job.cfg, lab.shape, halo, cb.BYTES_PER_VOXEL)
    info(f"3-phase blocks {blocks}, halo {halo} voxels")
    dst = job.target(g, np.uint8, blocks, class_map=dict(PHASES))
    splitter = cb.BlockSplitter(labels, grey, dst, boxes, blocks, halo, job.client,
                                lambda it: progress(it, desc="3-phase"), job.memory_limit)
    return classify_scan(scan, model, splitter=splitter, **options), dst
