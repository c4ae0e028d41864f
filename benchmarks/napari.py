"""Responsiveness of the napari plugin (issue 24), printed as one JSON object.

Sections (library calls the widgets make, no GUI in the timing):
- ``forest_view``: the ilastik loop after a stroke: retrain the forest on the scribbles
  (the widget's default: 32 trees, default features per 2-D slice) and predict the
  visible 512 × 512 view of one slice (:meth:`ForestModel.predict_region`), on a phantom
  of 16 × 512 × 512 voxels; target ≤ 2 s on 2 cores. The same view cut from a
  whole-volume prediction is the in-run reference (identical labels). CPU seconds (all
  threads) are printed beside the wall times: on a shared machine they show the work
  independently of the load.
- ``open_zarr``: open a 1024³ uint8 OME-Zarr (written lazily, 64 × 256 × 256 chunks) as the
  plugin's reader does (every pyramid level, lazily) and read the slice napari shows
  first; target ≤ 2 s.

Usage: ``.venv/bin/python benchmarks/napari.py [--size 1024] [--trees 32]
[--features default|minimal|full] [--mode 3d|2d] [--sections forest_view,open_zarr]``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def forest_view(trees: int, features: str, mode: str) -> dict[str, float | bool | str]:
    from electrode_ct.segment.features import parse_features
    from electrode_ct.segment.forest_train import train_forest
    from electrode_ct.segment.scribbles import simulate_scribbles
    from electrode_ct.synth.phantom import electrode

    ph = electrode((16, 512, 512), radius_mean_um=1.5, radius_sd_um=0.3, seed=0)
    grey = ph.grey.with_data(ph.grey.numpy().astype(np.float32))
    strokes = simulate_scribbles(ph.phases.numpy(), coverage=0.02, n_slices=3, seed=0)
    view = (slice(8, 9), slice(0, 512), slice(0, 512))
    cfg = parse_features(features, mode=mode)
    blocks = (1, *grey.shape[1:]) if mode == "2d" else None  # as the widget trains
    t0, c0 = time.perf_counter(), time.process_time()
    model = train_forest(grey, strokes, features=cfg, n_trees=trees, block_shape=blocks)
    t1, c1 = time.perf_counter(), time.process_time()
    pred = model.predict_region(grey, view)
    t2, c2 = time.perf_counter(), time.process_time()
    whole = model.predict(grey)
    same = bool(np.array_equal(pred.labels, whole.labels[view]))
    return {"features": features, "mode": mode, "trees": trees, "train_s": t1 - t0,
            "predict_view_s": t2 - t1, "retrain_and_view_s": t2 - t0,
            "train_cpu_s": c1 - c0, "predict_view_cpu_s": c2 - c1,
            "n_labelled": int(np.count_nonzero(strokes)), "view_equals_volume": same}


def open_zarr(size: int) -> dict[str, float]:
    import dask.array as da

    from electrode_ct.io import write
    from electrode_ct.napari._reader import read_layers
    from electrode_ct.volume import Volume

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.ome.zarr"
        data = da.zeros((size,) * 3, dtype=np.uint8, chunks=(64, 256, 256))
        t0 = time.perf_counter()
        write(Volume(data, spacing=0.5), path)
        t1 = time.perf_counter()
        [(levels, kwargs, _)] = read_layers(str(path))
        first = levels[0] if kwargs["multiscale"] else levels
        t2 = time.perf_counter()
        np.asarray(first[size // 2])
        t3 = time.perf_counter()
    return {"size": size, "write_s": t1 - t0, "open_s": t2 - t1, "first_slice_s": t3 - t2,
            "open_and_first_slice_s": t3 - t1}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--trees", type=int, default=32)
    ap.add_argument("--features", default="default")
    ap.add_argument("--mode", default="2d", help="2d (features per slice) | 3d")
    ap.add_argument("--sections", default="forest_view,open_zarr")
    args = ap.parse_args()
    out: dict[str, object] = {"cpus": os.cpu_count(), "load_1min": os.getloadavg()[0]}
    if "forest_view" in args.sections:
        out["forest_view"] = forest_view(args.trees, args.features, args.mode)
    if "open_zarr" in args.sections:
        out["open_zarr"] = open_zarr(args.size)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
