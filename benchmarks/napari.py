"""Responsiveness of the napari plugin (issue 24), printed as one JSON object.

Sections (the phantom: 16 × 512 × 512 voxels, three-phase, strokes on 3 slices as a user
paints them, :func:`segment.scribbles.simulate_scribbles`; the view: one whole 512 × 512
slice; target for a retrain after a stroke: ≤ 2 s on 2 cores):

- ``forest_view`` (library calls, no GUI): the ilastik loop on a
  :class:`segment.forest_loop.ScribbleSession` — first train + view (cold cache), retrain +
  view after a stroke on a new slice and on a slice already painted — beside the loop
  before the session (``train_forest`` with the widget's old defaults and
  ``predict_region``, ``full_loop_s``) and the simplest reference, one Gaussian pass
  (σ = 1) over the view slice. ``validation_accuracy`` compares the quick forest with the
  full model (``train_forest``, what is saved) on 4 held-out slices of the phantom's truth;
  ``view_equals_volume`` checks the view against the whole-volume prediction. CPU seconds
  (all threads) are printed beside wall times: on a shared machine they show the work
  independently of the load.
- ``viewer_loop``: the same loop in a real napari viewer (needs a display: run under
  ``xvfb-run -a``): the forest widget's Train pressed, until the prediction layer is shown
  (worker thread, layer update and one redraw included; CPU seconds of the whole process,
  GUI included).
- ``open_zarr``: open a 1024³ uint8 OME-Zarr (written lazily, 64 × 256 × 256 chunks) as the
  plugin's reader does (every pyramid level, lazily) and read the slice napari shows
  first; target ≤ 2 s.

Usage: ``xvfb-run -a .venv/bin/python benchmarks/napari.py [--size 1024]
[--sections forest_view,viewer_loop,open_zarr]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

VIEW_Z, NEW_Z, HELD_OUT = 8, 10, (1, 5, 11, 14)


def scene() -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Grey (float32 Volume), truth, strokes on 3 slices, + a stroke on a new slice,
    + a stroke on the view slice (painted where nothing was)."""
    from electrode_ct.segment.scribbles import simulate_scribbles
    from electrode_ct.synth.phantom import electrode

    ph = electrode((16, 512, 512), radius_mean_um=1.5, radius_sd_um=0.3, seed=0)
    grey = ph.grey.with_data(ph.grey.numpy().astype(np.float32))
    truth = ph.phases.numpy()
    strokes = simulate_scribbles(truth, coverage=0.02, n_slices=3, seed=0)
    new = strokes.copy()
    new[NEW_Z] = simulate_scribbles(truth, coverage=0.005, slices=[NEW_Z], seed=1)[NEW_Z]
    more = simulate_scribbles(truth, coverage=0.005, slices=[VIEW_Z], seed=2)[VIEW_Z]
    same = new.copy()
    same[VIEW_Z] = np.where(same[VIEW_Z] == 0, more, same[VIEW_Z])
    return grey, truth, strokes, new, same


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def _accuracy(session: Any, model: Any, truth: np.ndarray) -> float:
    ny, nx = truth.shape[1:]
    hits = [np.mean(session.predict_view(model, (slice(z, z + 1), slice(0, ny), slice(0, nx))
                                         ).labels[0] - 1 == truth[z]) for z in HELD_OUT]
    return float(np.mean(hits))


def forest_view(data: tuple) -> dict[str, Any]:
    from scipy import ndimage as ndi

    from electrode_ct.segment.forest_loop import ScribbleSession
    from electrode_ct.segment.forest_train import train_forest

    grey, truth, strokes, new, same = data
    view = (slice(VIEW_Z, VIEW_Z + 1), slice(0, 512), slice(0, 512))
    new_view = (slice(NEW_Z, NEW_Z + 1), *view[1:])
    out: dict[str, Any] = {"n_labelled": int(np.count_nonzero(strokes))}
    _, out["gaussian_pass_s"], _ = _timed(lambda: ndi.gaussian_filter(grey.numpy()[VIEW_Z], 1))
    session = ScribbleSession(grey, features="default", mode="2d")

    def loop(labels: np.ndarray, region: tuple) -> tuple[Any, Any]:
        model = session.quick_model(labels)
        return model, session.predict_view(model, region)

    (model, pred), out["first_train_and_view_s"], out["first_cpu_s"] = _timed(
        lambda: loop(strokes, view))
    _, out["retrain_new_slice_s"], out["retrain_new_slice_cpu_s"] = _timed(
        lambda: loop(new, new_view))
    (model, pred), out["retrain_same_slice_s"], out["retrain_same_slice_cpu_s"] = _timed(
        lambda: loop(same, view))
    out["view_equals_volume"] = bool(np.array_equal(pred.labels,
                                                    model.predict(grey).labels[view]))

    def old() -> Any:  # the loop before the session: the widget's old defaults
        m = train_forest(grey, same, features="default", mode="2d", n_trees=32,
                         block_shape=(1, 512, 512))
        return m, m.predict_region(grey, view)

    (full, _), out["full_loop_s"], out["full_loop_cpu_s"] = _timed(old)
    out["validation_accuracy"] = {"quick": _accuracy(session, model, truth),
                                  "full_32_trees": _accuracy(session, full, truth)}
    return out


def viewer_loop(data: tuple) -> dict[str, Any]:
    import napari
    from qtpy.QtWidgets import QApplication

    from electrode_ct.napari._forest import PREDICTION, ForestWidget
    from electrode_ct.napari._layers import volume_layer

    grey, _, strokes, new, same = data
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(2000, 1000)  # the whole 512² slice on the canvas
    img, kwargs, _ = volume_layer(grey, name="grey")
    viewer.add_image(img, **kwargs)
    w = ForestWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.class_names.value = "pore,cbd,active"
    layer = w.new_scribbles()

    def press(labels: np.ndarray, z: int) -> tuple[float, float]:
        layer.data = labels
        viewer.dims.set_point(0, z * grey.spacing[0])
        QApplication.processEvents()
        t0, c0 = time.perf_counter(), time.process_time()
        w.train()
        while w.jobs.running:  # as napari's event loop would, without spinning
            QApplication.processEvents()
            time.sleep(0.01)
        QApplication.processEvents()  # the new layers drawn
        assert w.jobs.last_error is None and PREDICTION in viewer.layers
        return time.perf_counter() - t0, time.process_time() - c0

    out: dict[str, Any] = {}
    for name, labels, z in (("first_train_and_view", strokes, VIEW_Z),
                            ("retrain_new_slice", new, NEW_Z),
                            ("retrain_same_slice", same, VIEW_Z)):
        out[f"{name}_s"], out[f"{name}_cpu_s"] = press(labels, z)
    out["view_shape"] = list(viewer.layers[PREDICTION].data.shape)
    viewer.close()
    return out


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


def _unshadow() -> None:
    """This script is ``napari.py``: drop its folder from the path so ``import napari``
    finds the package."""
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    sys.modules.pop("napari", None)


def main() -> None:
    _unshadow()
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--sections", default="forest_view,viewer_loop,open_zarr")
    args = ap.parse_args()
    out: dict[str, object] = {"cpus": os.cpu_count(), "load_1min": os.getloadavg()[0]}
    data = scene() if {"forest_view", "viewer_loop"} & set(args.sections.split(",")) else None
    if "forest_view" in args.sections:
        out["forest_view"] = forest_view(data)
    if "viewer_loop" in args.sections:
        out["viewer_loop"] = viewer_loop(data)
    if "open_zarr" in args.sections:
        out["open_zarr"] = open_zarr(args.size)
    out["load_1min_end"] = os.getloadavg()[0]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
