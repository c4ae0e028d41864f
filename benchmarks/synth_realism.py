"""Realism check of the synth presets against real scans (figure for docs/synth.md).

Left: a real slice; middle: a phantom slice of the matching preset at a similar voxel
size; right: grey-level histograms of both in contrast units
``(grey - pore mean) / (active mean - pore mean)``. Real phase means come from the expert
labels (SegmentPy nano-CT) or from Otsu's threshold (NREL micro-CT: active vs pore+CBD);
phantom means from the phantom's truth. Prints one JSON object with the measured levels
and widths and writes ``docs/images/synth_realism.png``.

Usage: ``.venv/bin/python benchmarks/synth_realism.py [--out PATH]``
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tifffile  # noqa: E402
from scipy import ndimage as ndi  # noqa: E402
from skimage.filters import threshold_otsu  # noqa: E402

from electrode_ct.data import nmc_microct  # noqa: E402
from electrode_ct.synth import electrode  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NANO = ROOT / "tests" / "data" / "segmentpy_nmc_nanoct"


def _stats(grey: np.ndarray, masks: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Mean and σ per phase in contrast units (interiors: eroded by 2 voxels)."""
    g = grey.astype(float)
    raw = {k: g[m] for k, m in masks.items() if m.any()}
    lo, hi = raw["pore"].mean(), raw["active"].mean()
    out = {}
    for k, m in masks.items():
        core = ndi.binary_erosion(m, iterations=2)
        if not core.any():
            continue
        v = (g[core] - lo) / (hi - lo)
        out[k] = {"mean": float(v.mean()), "sd": float(v.std())}
    # pixel noise: σ of neighbour differences / sqrt 2 inside the active phase
    core = ndi.binary_erosion(masks["active"], iterations=3)
    d = np.diff(g, axis=-1)[core[..., 1:]] / (hi - lo)
    out["pixel_noise"] = {"sd": float(d.std() / np.sqrt(2))}
    return out


def _particle_spread(grey: np.ndarray, active: np.ndarray) -> dict[str, float]:
    """Spread of particle means and mean within-particle σ (contrast units) over the
    connected components (> 300 pixels) of the active phase eroded by 3 pixels."""
    g = grey.astype(float)
    act = ndi.binary_erosion(active, iterations=3)
    cc, n = ndi.label(act)
    sizes = np.bincount(cc.ravel())[1:]
    ids = np.flatnonzero(sizes > 300) + 1
    if len(ids) < 2:
        return {}
    return {"particle_means_sd": float(np.std(ndi.mean(g, cc, ids))),
            "within_particle_sd": float(np.sqrt(np.mean(
                np.square(ndi.standard_deviation(g, cc, ids))))),
            "particles": len(ids)}


def _slice_stats(grey: np.ndarray, masks: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """:func:`_stats` plus the particle spread, in contrast units."""
    out = _stats(grey, masks)
    g = grey.astype(float)
    lo, hi = g[masks["pore"]].mean(), g[masks["active"]].mean()
    spread = _particle_spread((g - lo) / (hi - lo), masks["active"])
    if spread:
        out["particles"] = spread
    top = np.iinfo(grey.dtype).max if grey.dtype.kind == "u" else None
    if top is not None:
        out["clipped"] = {"low": float((grey == 0).mean()), "high": float((grey == top).mean())}
    return out


def _mean_stats(stats: list[dict]) -> dict:
    """Average of per-slice statistics (same keys)."""
    out: dict = {}
    for key in stats[0]:
        out[key] = {k: float(np.mean([s[key][k] for s in stats if key in s]))
                    for k in stats[0][key]}
    return out


def _contrast(grey: np.ndarray, masks: dict[str, np.ndarray]) -> np.ndarray:
    g = grey.astype(float)
    lo, hi = g[masks["pore"]].mean(), g[masks["active"]].mean()
    return (g - lo) / (hi - lo)


def main() -> None:
    """Make the figure and print the measured levels."""
    out = Path(sys.argv[sys.argv.index("--out") + 1]) if "--out" in sys.argv else (
        ROOT / "docs" / "images" / "synth_realism.png")
    # real nano-CT slice with dense expert labels (0 NMC; 1, 2 CBD/pore: CBD is brighter)
    g = tifffile.imread(NANO / "100.tif")
    lab = tifffile.imread(NANO / "100_label.tif")
    m1, m2 = g[lab == 1].mean(), g[lab == 2].mean()
    cbd_v, pore_v = (1, 2) if m1 > m2 else (2, 1)
    nano_real = (g, {"pore": lab == pore_v, "cbd": lab == cbd_v, "active": lab == 0})
    ph = electrode((136, 240, 240), voxel_size=0.06, radius_mean_um=2.0, radius_sd_um=0.6,
                   active_fraction=0.6, cbd_fraction=0.15, cracked_fraction=0.3,
                   crack_width_um=0.15, modality="nano", seed=3)
    pv, gv = ph.phases.numpy(), ph.grey.numpy()
    p = pv[68]
    nano_syn = (gv[68], {"pore": p == 0, "cbd": p == 1, "active": p == 2})
    nano_more = [_slice_stats(gv[z], {"pore": pv[z] == 0, "cbd": pv[z] == 1,
                                      "active": pv[z] == 2}) for z in (20, 45, 68, 90, 115)]
    # real micro-CT crop; Otsu splits active from pore+CBD
    mg = nmc_microct()[0].numpy()
    t = threshold_otsu(mg)
    micro_real = (mg[37], {"pore": mg[37] <= t, "active": mg[37] > t})
    ph2 = electrode((64, 150, 150), voxel_size=0.398, radius_mean_um=4.0, radius_sd_um=1.5,
                    active_fraction=0.5, cbd_fraction=0.1, cracked_fraction=0.2,
                    crack_width_um=0.3, modality="micro", seed=3)
    pv2, gv2 = ph2.phases.numpy(), ph2.grey.numpy()
    p2 = pv2[32]
    micro_syn = (gv2[32], {"pore": p2 <= 1, "active": p2 == 2})
    micro_more = [_slice_stats(gv2[z], {"pore": pv2[z] <= 1, "active": pv2[z] == 2})
                  for z in (12, 22, 32, 42, 52)]

    rows = [("nano-CT: SegmentPy NMC532 (expert labels)", nano_real, "nano phantom", nano_syn),
            ("micro-CT: NREL NMC-1-cal (Otsu)", micro_real, "micro phantom", micro_syn)]
    fig, axes = plt.subplots(2, 3, figsize=(11, 7), gridspec_kw={"width_ratios": [1, 1, 1.2]})
    report = {}
    for r, (rname, (rg, rm), sname, (sg, sm)) in enumerate(rows):
        for c, (img, title) in enumerate(((rg, rname), (sg, sname))):
            lo, hi = np.percentile(img, [0.5, 99.5])
            axes[r, c].imshow(img, cmap="gray", vmin=lo, vmax=hi)
            axes[r, c].set_title(title, fontsize=9)
            axes[r, c].axis("off")
        ax = axes[r, 2]
        bins = np.linspace(-1.0, 2.0, 121)
        ax.hist(_contrast(rg, rm).ravel(), bins, density=True, histtype="step", lw=1.5,
                label="real")
        ax.hist(_contrast(sg, sm).ravel(), bins, density=True, histtype="step", lw=1.5,
                label="phantom")
        ax.set_xlabel("(grey - pore mean) / (active mean - pore mean)", fontsize=8)
        ax.legend(fontsize=8)
        key = "nano" if r == 0 else "micro"
        more = nano_more if r == 0 else micro_more
        report[key] = {"real": _slice_stats(rg, rm), "phantom_slice": _slice_stats(sg, sm),
                       "phantom_5_slices": _mean_stats(more)}
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=60)
    report["figure"] = str(out.relative_to(ROOT)) if out.is_relative_to(ROOT) else str(out)
    report["figure_kb"] = round(out.stat().st_size / 1024, 1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
