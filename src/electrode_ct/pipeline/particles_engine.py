"""The pipeline's particles step on the block engine (ownership, as ``ect particles``).

:func:`particles_on_engine` is called first by
:func:`electrode_ct.pipeline.steps.step_particles`: when the run's ``compute:`` section
sends the reference state's phases to the engine, it separates them block by block
(:mod:`electrode_ct.particles.blockwise`), writes ``volumes/particles.*`` and returns the
step's summary; else it returns ``None`` and the step runs in memory. The phases are read
lazily (the segmented state's OME-Zarr, or the given file), never whole.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

import numpy as np

from electrode_ct.volume import resolve_phase

if TYPE_CHECKING:
    from electrode_ct.pipeline.runner import Run


def particles_on_engine(run: Run, i: int, rel: str) -> dict[str, Any] | None:
    """Separate state ``i``'s particles on the engine into ``rel``; its summary, or
    ``None`` when the step stays in memory (a small input on the local scheduler)."""
    from electrode_ct.compute.engine import ZarrRef
    from electrode_ct.io.zarr import create_ome_zarr
    from electrode_ct.particles import blockwise as pb
    from electrode_ct.pipeline.compute import codec_for, engine, publish

    eng = engine(run)
    from electrode_ct.pipeline.steps import _phases_lazy

    vol = _phases_lazy(run, i)
    if not eng.use_engine(vol.nbytes, pb.BYTES_PER_VOXEL / vol.dtype.itemsize):
        return None
    p = run.cfg.steps.particles
    value = resolve_phase(p.phase, vol.class_map, where="steps.particles.phase")
    settings = pb.ParticleSettings(value, tuple(float(s) for s in vol.spacing),
                                   heal_cracks_um=p.heal_cracks_um, h=p.h,
                                   min_volume_um3=p.min_volume_um3)
    src = eng.zarr_input(vol, f"phases_{i}")
    bar = {"client": eng.client(), "progress": eng.progress("particles")}
    first = eng.block_shape(vol.shape, halo=[min(pb.ESTIMATE_HALO, n) for n in vol.shape],
                            bytes_per_voxel=12.0)
    halo = pb.particle_halo(pb.estimate_diameter_um(src, settings, block_shape=first, **bar),
                            settings)
    blocks = pb.plan_particle_blocks(eng.cfg, vol.shape, halo)
    work = eng.work / f"particles.{run.keys['particles'][:12]}"
    store = work / "labels.ome.zarr"
    dst = (ZarrRef(str(store), "0") if store.exists()  # an interrupted run: resumed
           else create_ome_zarr(store, vol.with_class_map(None), dtype=np.uint32,
                                chunks=blocks, compression=codec_for(np.uint32)))
    res = pb.separate_blockwise(src, dst, settings=settings, work=work, block_shape=blocks,
                                halo=halo, remove_border=p.remove_border, **bar)
    publish(dst, run.path(rel))
    shutil.rmtree(work, ignore_errors=True)
    return {"n_particles": res.n_particles, "n_border": res.n_border,
            "n_removed_border": res.n_removed_border, "method": "distance",
            "heal_cracks_um": p.heal_cracks_um, "h_um": settings.h_um, "engine": True,
            "halo_voxels": list(res.halo), "block_shape": list(res.block_shape)}
