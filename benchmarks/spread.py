"""Cost of the sub-volume companions (``<key>_std`` / ``<key>_ci95``) of ``ect metrics``.

Prints ONE JSON object for a crop of the embedded real packing
(``electrode_ct.data.nmc_phases()``, pore = 0): the time of one read of the crop (the
simplest reference), of ``microstructure_metrics`` (which includes the spread), and of the
spread alone (``metrics_spread`` + ``tortuosity_spread`` on the same grid), so the spread's
share of the whole; the grid and the intervals. One process; ``peak_rss_mb`` is its
``ru_maxrss`` (no Dask workers are used).

Usage::

    .venv/bin/python benchmarks/spread.py            # 128 x 192 x 192 (the demo's crop)
    .venv/bin/python benchmarks/spread.py --quick    # 64 x 96 x 96
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
from _timing import peak_rss_mb, timed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="64 x 96 x 96 crop")
    args = ap.parse_args()
    from electrode_ct import data
    from electrode_ct.metrics import spread
    from electrode_ct.metrics.microstructure import microstructure_metrics

    shape = (64, 96, 96) if args.quick else (128, 192, 192)
    vol, t_read = timed(lambda: data.nmc_phases().compute())
    vol = vol.with_data(np.ascontiguousarray(vol.numpy()[tuple(slice(0, n) for n in shape)]))
    res, t_all = timed(microstructure_metrics, vol, phase="pore")
    size, grid = spread.subvolume_grid(vol.shape, vol.spacing)
    labels = vol.numpy()
    _, t_frac = timed(spread.metrics_spread, res, labels, grid, spacing=vol.spacing,
                       class_map=vol.class_map, surface_method=res["surface_method"])
    _, t_tau = timed(spread.tortuosity_spread, labels == 0, grid, ["x", "y", "z"],
                      spacing=vol.spacing, rtol=res["solver_tolerance"])
    print(json.dumps({
        "shape": list(shape), "spacing_um": list(vol.spacing), "grid": res["subvolumes"],
        "load_avg_1min": os.getloadavg()[0],
        "read_s": round(t_read, 2), "metrics_with_spread_s": round(t_all, 2),
        "spread_fractions_surfaces_s": round(t_frac, 2), "spread_tortuosity_s": round(t_tau, 2),
        "spread_share": round((t_frac + t_tau) / t_all, 3),
        "peak_rss_mb": peak_rss_mb(),
        "tortuosity": res["tortuosity"], "tortuosity_ci95": res["tortuosity_ci95"],
        "volume_fraction_ci95": res["volume_fraction_ci95"],
    }))


if __name__ == "__main__":
    main()
