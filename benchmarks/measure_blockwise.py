"""``ect measure`` on the block engine against the in-memory table: time, bytes per voxel.

Prints ONE JSON object. On a synthetic electrode (``electrode_ct.synth.electrode``, its
particle labels and uint16 grey, also as float32):

- ``reference_s``: the simplest reference, one pass of ``edt`` (multi-label, anisotropic,
  1 thread) over the label volume, timed in the same run;
- ``memory_s`` / ``engine_s``: :func:`~electrode_ct.measure.table.particle_table` and
  :func:`~electrode_ct.measure.blockwise.measure_blockwise` (serial, ``--block`` blocks),
  and whether their tables are equal (1e-9 relative);
- ``task_bytes_per_voxel``: for every block task of the second pass (rows by the owning
  block), its traced peak allocation (``tracemalloc``, which numpy reports to), inputs
  included, divided by the voxels of the region it reads; the largest over the blocks,
  with that region's voxels and particles (the per-particle grey histograms are part of
  it, so blocks with few voxels and many particles overstate it). The case
  ``ten_largest_particles_float32`` keeps only the 10 largest particles, so the histograms
  are negligible: its figure is the working memory per voxel itself.

Usage::

    .venv/bin/python benchmarks/measure_blockwise.py --size 96 --block 48
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc

import numpy as np


def _equal(a, b) -> bool:
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return False
    for c in a.columns:
        x, y = a[c].to_numpy(), b[c].to_numpy()
        ok = (np.allclose(x, y, rtol=1e-9, atol=1e-12, equal_nan=True) if x.dtype.kind == "f"
              else np.array_equal(x, y))
        if not ok:
            return False
    return True


def _case(lab: np.ndarray, grey: np.ndarray, sp: tuple, block: int) -> dict:
    import edt

    from electrode_ct.measure.blockwise import measure_blockwise
    from electrode_ct.measure.table import particle_table

    t0 = time.perf_counter()
    edt.edt(lab, anisotropy=sp, black_border=False, parallel=1)
    ref = time.perf_counter() - t0
    t0 = time.perf_counter()
    want, want_r = particle_table(lab, grey, spacing=sp)
    mem = time.perf_counter() - t0
    t0 = time.perf_counter()
    got, got_r = measure_blockwise(lab, grey, spacing=sp, block_shape=(block,) * 3)
    eng = time.perf_counter() - t0
    return {"grey_dtype": str(grey.dtype), "reference_s": round(ref, 3),
            "memory_s": round(mem, 3), "engine_s": round(eng, 3),
            "equal": _equal(got, want) and _equal(got_r, want_r),
            **_task_memory(lab, grey, sp, (block,) * 3)}


def _task_memory(lab: np.ndarray, grey: np.ndarray, sp: tuple, bs: tuple) -> dict:
    """Largest traced peak per region voxel of the second pass's block tasks."""
    from electrode_ct.blocks import block_grid
    from electrode_ct.compute import reduce_blocks
    from electrode_ct.measure import blockwise as mb

    ext = mb._merge_extents(reduce_blocks(mb._extent_partial(grey, None, "labels"), lab,
                                          block_shape=bs))
    spec, fine = mb._specs(ext, grey.dtype)
    plan = mb._Plan(lab, grey, ext.ids, ext.boxes, bs, sp, "all", spec, fine)
    task = mb._rows_partial(plan)
    worst = {"task_bytes_per_voxel": 0.0}
    for b in block_grid(lab.shape, bs):
        own = mb._owned(plan, b)
        if own.size == 0:
            continue
        box = plan.boxes[own]
        lo = np.maximum(box[:, :3].min(axis=0) - 1, 0)
        hi = np.minimum(box[:, 3:].max(axis=0) + 1, lab.shape)
        voxels = int(np.prod(hi - lo))
        region = np.ascontiguousarray(lab[b.read])
        tracemalloc.start()
        task(region, b)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        if peak / voxels > worst["task_bytes_per_voxel"]:
            worst = {"task_bytes_per_voxel": round(peak / voxels, 1),
                     "task_region_voxels": voxels, "task_particles": int(own.size)}
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--block", type=int, default=48)
    args = parser.parse_args()
    from electrode_ct import synth

    sp = (0.6, 0.5, 0.4)
    ph = synth.electrode((args.size,) * 3, voxel_size=sp, radius_mean_um=2.0,
                         radius_sd_um=0.4, seed=11)
    lab = ph.particles.numpy().astype(np.uint32)
    grey = ph.grey.numpy()
    out = {"shape": list(lab.shape), "block": args.block,
           "n_particles": int(len(np.unique(lab)) - 1),
           "cases": [_case(lab, grey, sp, args.block),
                     _case(lab, grey.astype(np.float32) / 100.0, sp, args.block)]}
    ids, counts = np.unique(lab[lab > 0], return_counts=True)
    few = np.where(np.isin(lab, ids[np.argsort(counts)[-10:]]), lab, 0).astype(np.uint32)
    out["ten_largest_particles_float32"] = _case(few, grey.astype(np.float32) / 100.0, sp,
                                                 args.block)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
