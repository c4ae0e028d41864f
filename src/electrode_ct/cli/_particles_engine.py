"""The engine path of ``ect particles``: halo, blocks, the ownership run, the output file.

No science in here: :mod:`electrode_ct.particles.blockwise` separates; this module turns
the command's options into its arguments and the result into the command's summary.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from electrode_ct.cli._common import info, progress
from electrode_ct.compute.config import ComputeConfig
from electrode_ct.errors import InputError
from electrode_ct.volume import Volume


def parse_halo(text: str | None, spacing: tuple[float, float, float]
               ) -> tuple[int, int, int] | None:
    """``--halo``: voxels (``40``) or µm (``20um``, ``20µm``), one value for every axis.

    Returns
    -------
    tuple of int or None
        Voxels per axis (µm rounded up per axis's voxel size); None when not given.
    """
    if text is None:
        return None
    raw = str(text).strip().lower()
    in_um = raw.endswith(("um", "µm"))
    number = raw[:-2].strip() if in_um else raw
    try:
        value = float(number)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (not in_um and value != int(value)):
        raise InputError(f"--halo: expected voxels (an integer >= 0, e.g. 40) or µm (e.g. "
                         f"20um), got {text!r}")
    if in_um:
        return tuple(int(math.ceil(value / s)) for s in spacing)  # type: ignore[return-value]
    return (int(value),) * 3


def run_on_engine(vol: Volume, src: str, out: Path, cfg: ComputeConfig, client: Any, *,
                  settings: Any, halo_text: str | None, remove_border: bool,
                  params: dict[str, Any]) -> dict[str, Any]:
    """Separate ``vol`` by ownership on ``client``, write OUT; the summary's counts."""
    from electrode_ct.cli._engine import EngineJob
    from electrode_ct.particles.blockwise import (
        ESTIMATE_HALO,
        estimate_diameter_um,
        particle_halo,
        plan_particle_blocks,
        separate_blockwise,
    )
    from electrode_ct.pipeline.compute import plan_blocks

    halo = parse_halo(halo_text, settings.spacing)
    job = EngineJob.start(vol, src, out, cfg, client, {**params, "halo": halo})
    source = job.source()
    bar = {"client": client, "progress": lambda it: progress(it, desc="particles")}
    if halo is None:
        first = plan_blocks(cfg, vol.shape, [min(ESTIMATE_HALO, n) for n in vol.shape], 12.0)
        halo = particle_halo(estimate_diameter_um(source, settings, block_shape=first, **bar),
                             settings)
        info(f"halo {halo} voxels (from the size estimate)")
    blocks = plan_particle_blocks(cfg, vol.shape, halo)
    dst = job.target(vol, np.uint32, blocks)
    res = separate_blockwise(source, dst, settings=settings, work=job.work, block_shape=blocks,
                             halo=halo, remove_border=remove_border, **bar)
    job.finish(dst)
    return {"n_particles": res.n_particles, "n_border": res.n_border,
            "n_removed": None, "n_removed_small": None,
            "n_removed_border": res.n_removed_border, "n_markers": None, "n_resplit": None,
            "n_rehealed": None, "halo_voxels": list(res.halo),
            "block_shape": list(res.block_shape)}
