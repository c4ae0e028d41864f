"""Cost of the report's cracks figures (``report.cracks_figures``, ``report.render3d``).

Prints ONE JSON object for a synthetic electrode of the demo's operando size (64 × 128 ×
128 at 0.5 µm, the phantom's own particles and cracked truth): the time of one Gaussian
pass over the label volume and of one plain bar chart (the simplest references), of the
two 3-D views (``render_figure``: meshes + PNG), of the ROC / precision–recall / confusion
figure and of the % flawed interval figure (each rendered to PNG); the particles and
triangles drawn. One process; ``peak_rss_mb`` is its ``ru_maxrss`` (no Dask workers).

Usage::

    .venv/bin/python benchmarks/cracks_report.py            # 64 x 128 x 128
    .venv/bin/python benchmarks/cracks_report.py --quick    # 48 x 64 x 64
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
from _timing import peak_rss_mb, timed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="48 x 64 x 64")
    args = ap.parse_args()
    from scipy import ndimage

    from electrode_ct.cracks.evaluate import curves
    from electrode_ct.cracks.spread import percent_flawed_subvolumes
    from electrode_ct.report import cracks_figures as cf
    from electrode_ct.report.figures import bars, to_png_base64
    from electrode_ct.synth import electrode
    from electrode_ct.uncertainty import percent_interval

    shape = (48, 64, 64) if args.quick else (64, 128, 128)
    ph = electrode(shape, voxel_size=0.5, radius_mean_um=3.2, radius_sd_um=0.6,
                   cracked_fraction=0.3, crack_width_um=0.5, seed=0)
    lab, sp = ph.particles.numpy(), ph.particles.spacing
    truth = ph.truth
    y = truth["cracked"].to_numpy(bool)
    score = np.clip(y * 0.3 + np.random.default_rng(0).random(len(y)) * 0.7, 0, 1)
    flawed = score >= 0.5
    cents = truth[["centroid_z", "centroid_y", "centroid_x"]].to_numpy()
    summary = {"state_0": {"percent_flawed": 100 * flawed.mean(),
                           **percent_interval(int(flawed.sum()), len(flawed),
                                              key="percent_flawed"),
                           "percent_flawed_subvolumes": percent_flawed_subvolumes(
                               flawed, cents, lab.shape, sp)}}
    _, t_gauss = timed(ndimage.gaussian_filter, lab.astype(np.float32), 1.0)
    _, t_bars = timed(lambda: to_png_base64(bars({"state_0": 1.0}, ylabel="%")))
    (fig, info), t_mesh = timed(cf.render_figure, lab, sp, truth.loc[y, "label"].to_numpy())
    _, t_png = timed(to_png_base64, fig)
    _, t_roc = timed(lambda: to_png_base64(cf.classifier_figure(
        {"state_0": curves(y, score, flawed)}, title="t")))
    _, t_int = timed(lambda: to_png_base64(cf.interval_figure(summary)))
    print(json.dumps({
        "shape": list(shape), "spacing_um": list(sp), "n_particles": int(len(truth)),
        "load_avg_1min": os.getloadavg()[0],
        "gaussian_pass_s": round(t_gauss, 3), "plain_bars_png_s": round(t_bars, 3),
        "render_meshes_s": round(t_mesh, 3), "render_png_s": round(t_png, 3),
        "roc_pr_confusion_png_s": round(t_roc, 3), "interval_png_s": round(t_int, 3),
        "drawn": info,
        "peak_rss_mb": peak_rss_mb(),
    }))


if __name__ == "__main__":
    main()
