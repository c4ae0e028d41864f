"""CPU seconds of one prediction block inside a real Dask worker (#21).

A forest block (default feature set, 100 trees; a ``--block``³ interior with its feature
halo on every side) or a CNN slab (tri-planar model's pass: ``--planes`` planes of
``--plane``² pixels) is computed in a LocalCluster worker, where Dask sets
``MALLOC_TRIM_THRESHOLD_``; the worker's user and system CPU seconds and page faults are
reported (robust to other jobs sharing the cores, unlike wall time), with the reference
— one scipy Gaussian pass (σ = 1) over the same region — timed in the same worker.
Compare two source trees by running the script with each on ``PYTHONPATH``::

    python benchmarks/predict_block.py --kind forest --block 128
    python benchmarks/predict_block.py --kind cnn --plane 1024 --planes 2

Models are trained as in ``benchmarks/scale.py`` (one smoothed phantom tile) and cached
in ``--model`` (pass the same file to both runs so they use the same model).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent


def _grey(shape: tuple[int, ...]) -> np.ndarray:
    """A smoothed phantom tile mirrored to ``shape`` (no seams), float32."""
    from scipy import ndimage as ndi

    from electrode_ct.synth.phantom import electrode

    tile = electrode((128,) * 3, seed=5, cracked_fraction=0.0).grey.numpy()
    g = ndi.gaussian_filter(tile.astype(np.float32), 1.0)
    reps = [-(-n // 128) for n in shape]
    big = np.pad(g, [(0, 128 * r - 128) for r in reps], mode="symmetric")
    return np.ascontiguousarray(big[tuple(slice(0, n) for n in shape)])


def _usage() -> tuple[float, float, int]:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime, r.ru_minflt


def _measured(fn: Any) -> dict[str, float]:
    u0, s0, f0 = _usage()
    fn()
    u1, s1, f1 = _usage()
    return {"user_s": round(u1 - u0, 2), "sys_s": round(s1 - s0, 2),
            "cpu_s": round(u1 - u0 + s1 - s0, 2), "page_faults": f1 - f0}


def worker_job(kind: str, model_path: str, block: int, plane: int, planes: int
               ) -> dict[str, Any]:
    """The block and the reference, measured in this (worker) process."""
    from scipy import ndimage as ndi

    from electrode_ct.segment.models import load_model

    model = load_model(model_path)
    if kind == "forest":
        from electrode_ct.blocks import expand
        from electrode_ct.segment import features as ft

        model.stage1.n_jobs = 1
        halo = ft.halo(model.config, model.spacing)
        grey = _grey((block + 2 * max(halo),) * 3)
        b = expand(tuple(slice(h, h + block) for h in halo), halo, grey.shape)
        region = grey[b.read]
        rng = ft.intensity_range(grey, normalise=model.config.normalise,
                                 reference_width=model.reference_width)
        run = model.block_function(value_range=rng)
        voxels = block**3

        def work() -> None:
            run(region, b)
    else:
        region = _grey((planes, plane, plane))
        voxels = region.size

        def work() -> None:
            model.predict_proba(region, mode="slice", axis=0)
    out = {"read_shape": list(region.shape), "voxels": voxels}
    out["reference"] = _measured(lambda: ndi.gaussian_filter(region, 1.0))
    out["block"] = _measured(work)
    out["mvoxel_per_cpu_s"] = round(voxels / 1e6 / out["block"]["cpu_s"], 4)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("forest", "cnn"), default="forest")
    parser.add_argument("--block", type=int, default=128, help="forest block edge (voxels)")
    parser.add_argument("--plane", type=int, default=1024, help="CNN plane edge (pixels)")
    parser.add_argument("--planes", type=int, default=2, help="CNN planes in the slab")
    parser.add_argument("--model", type=Path, default=None, help="cached model file")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    from scale import train_model

    from electrode_ct.compute import ComputeConfig, open_client
    from electrode_ct.segment.models import load_model

    path = args.model or Path(f"predict_block_{args.kind}.ectm")
    if not path.exists():
        train_model(args.kind).save(path)
    load_model(path)  # fails here, not in the worker, on a bad file
    cfg = ComputeConfig(n_workers=1, threads_per_worker=1, memory_limit="4GB")
    with open_client(cfg) as client:
        res = client.submit(worker_job, args.kind, str(path), args.block, args.plane,
                            args.planes, pure=False).result()
    print(json.dumps({"kind": args.kind, "model": str(path), **res}, indent=1))


if __name__ == "__main__":
    main()
