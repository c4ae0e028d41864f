"""Particle separation on the block engine in real Dask workers: prints one JSON object.

The active phase of a ``--size``³ phase volume tiled from a 128³ electrode phantom (as
``benchmarks/scale.py``, 0.5 µm voxels) is written to OME-Zarr and separated by
:func:`electrode_ct.particles.blockwise.separate_blockwise` on a LocalCluster of
``--workers`` worker processes (1 thread each), with ``--block`` blocks, a ``--halo`` and
healing ``--heal-um``. Figures: wall time, the workers' user and system CPU seconds
(``getrusage`` in each worker before and after: system time is what a worker loses to the
kernel, e.g. page faults), the particle count, Mvoxel/s per worker, and one ``edt`` pass
over the same mask (2 threads) timed in the same run as the reference.

Usage::

    python benchmarks/particles_workers.py --size 128 --block 64 --halo 53
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale import CLASS_MAP, tiled_phases  # noqa: E402


def usage() -> tuple[float, float]:
    """(user, system) CPU seconds of the calling process."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


def main(argv: list[str] | None = None) -> None:
    """Parse options, run, print JSON."""
    import edt

    from electrode_ct.compute import ComputeConfig, open_client
    from electrode_ct.io.zarr import create_ome_zarr
    from electrode_ct.particles import blockwise as pb
    from electrode_ct.volume import Volume

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--block", type=int, default=64)
    parser.add_argument("--halo", type=int, default=53, help="voxels")
    parser.add_argument("--heal-um", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="3GB", help="per worker")
    args = parser.parse_args(argv)
    mask = tiled_phases(args.size) == CLASS_MAP["active"]
    t0 = time.perf_counter()
    edt.edt(mask, black_border=False, parallel=2)
    ref = time.perf_counter() - t0
    work = Path(tempfile.mkdtemp(prefix="ect-pw-"))
    blocks = (args.block,) * 3
    src = create_ome_zarr(work / "mask.ome.zarr", Volume(mask, spacing=0.5), dtype=bool,
                          chunks=blocks)
    src.open("r+")[...] = mask
    dst = create_ome_zarr(work / "labels.ome.zarr", Volume(mask, spacing=0.5),
                          dtype=np.uint32, chunks=blocks)
    settings = pb.ParticleSettings(None, (0.5, 0.5, 0.5), heal_cracks_um=args.heal_um)
    cfg = ComputeConfig(n_workers=args.workers, threads_per_worker=1,
                        memory_limit=args.memory_limit)
    with open_client(cfg) as client:
        before = client.run(usage)
        t0 = time.perf_counter()
        res = pb.separate_blockwise(src, dst, settings=settings, work=work / "work",
                                    block_shape=blocks, halo=args.halo, client=client)
        wall = time.perf_counter() - t0
        after = client.run(usage)
    user = sum(after[w][0] - before[w][0] for w in after)
    system = sum(after[w][1] - before[w][1] for w in after)
    print(json.dumps({
        "size": args.size, "block": args.block, "halo": args.halo, "heal_um": args.heal_um,
        "workers": args.workers, "n_particles": res.n_particles, "wall_s": round(wall, 1),
        "workers_user_s": round(user, 1), "workers_system_s": round(system, 1),
        "mvoxel_per_s_per_worker": round(args.size**3 / 1e6 / wall / args.workers, 4),
        "edt_reference_s": round(ref, 3), "ratio_to_edt": round(wall / ref, 1)}))


if __name__ == "__main__":
    main()
