"""Report sections of Bailey et al.'s yardsticks: image quality (SNR / CNR per phase) and
the variability of segmentations between users and methods.

Both read the run's ``provenance.json`` summaries (``steps.metrics.summary.image_quality``,
``steps.variability.summary``) and, for the subtraction images, the step's slice file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from electrode_ct.report.figures import PHASE_COLOURS
from electrode_ct.report.html import Section


def quality_figure(quality: dict[str, Any]) -> Figure:
    """SNR (mean / σ) of each phase and CNR of each pair of phases, as bars."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3))
    ph, pairs = quality["phases"], quality["pairs"]
    a.bar(list(ph), [_finite(v["snr"]) for v in ph.values()],
          color=PHASE_COLOURS[: len(ph)])
    a.set_ylabel("SNR = mean / σ")
    a.set_title("per phase")
    b.bar(list(pairs), [_finite(v["cnr"]) for v in pairs.values()], color="#607090")
    b.set_ylabel("CNR = |Δmean| / pooled σ")
    b.set_title("per pair of phases")
    b.tick_params(axis="x", labelrotation=20)
    return fig


def _finite(v: Any) -> float:
    """A bar height: inf (a noise-free phase) and None drawn as 0."""
    f = float(v) if v is not None and v != "inf" else float("nan")
    return f if np.isfinite(f) else 0.0


def quality_sections(man: dict[str, Any]) -> list[Section]:
    """The "Image quality" section from the metrics step's ``image_quality``."""
    q = man.get("steps", {}).get("metrics", {}).get("summary", {}).get("image_quality")
    if not q:
        return []
    sec = Section("Image quality (SNR / CNR)")
    if "note" in q:
        return [sec.text(f"SNR / CNR {q['note']}.", note=True)]
    sec.figure(quality_figure(q), alt="SNR per phase and CNR per pair of phases")
    sec.table(pd.DataFrame([{"phase": k, "voxels": v["n_voxels"], "mean": v["mean"],
                             "σ": v["std"], "SNR": v["snr"]} for k, v in q["phases"].items()]))
    sec.table(pd.DataFrame([{"pair": k, "contrast": v["contrast"], "CNR": v["cnr"],
                             "SNR (σ of the first)": v["snr"]} for k, v in q["pairs"].items()]))
    sec.text("Grey levels of the unfiltered input inside each segmented phase: SNR = mean/σ, "
             "CNR = |mean a − mean b| / √((σa² + σb²)/2). The σ includes the partial-volume "
             "voxels at the phase borders.", note=True)
    return [sec]


def report_sections(out: Path, man: dict[str, Any]) -> list[Section]:
    """Every section of this module (the hook of :mod:`electrode_ct.report.build`)."""
    return quality_sections(man) + training_sections(man) + variability_sections(out, man)


def regions_figure(grey: np.ndarray, regions: list[dict[str, Any]], *, size: int) -> Figure:
    """The regions to label next: the grey slice through each window's centre, the
    window outlined (rank 1 = label first)."""
    from matplotlib.patches import Rectangle

    n = len(regions)
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n, 2.9), squeeze=False)
    for ax, (rank, r) in zip(axes[0], enumerate(regions, start=1), strict=True):
        ax.imshow(grey[r["z"]], cmap="gray", interpolation="nearest")
        half = min(size, *grey.shape[1:]) / 2
        ax.add_patch(Rectangle((r["x"] - half, r["y"] - half), 2 * half, 2 * half,
                               fill=False, ec="#e03030", lw=1.5))
        ax.set_title(f"{rank}: z {r['z']}, uncertainty {r['mean_uncertainty']:.2f}",
                     fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def training_sections(man: dict[str, Any]) -> list[Section]:
    """The forest's training labels (seeds, scribbles, added strokes) and the regions to
    label next, when the segment step trained a forest with any of them."""
    summ = man.get("steps", {}).get("segment", {}).get("summary", {})
    info, nxt = summ.get("training_labels"), summ.get("next_regions")
    if not info or not (info.get("seeds") or nxt or info.get("n_added")):
        return []
    sec = Section("Forest training labels (Bailey et al.)")
    row = {"drawn in order": " → ".join(info["sources"]), "labelled voxels": info["n_labelled"],
           "added by strokes": info["n_added"], "relabelled by strokes": info["n_relabelled"]}
    if info.get("seeds"):
        sd = info["seeds"]
        row.update({"seeds": sd["variant"], "seed slices": str(sd["slices"]),
                    "seed cuts (grey)": str([round(c, 4) for c in sd["thresholds"]]),
                    "seeded voxels": sd["n_seeded"]})
    sec.table(row)
    if nxt:
        grey = _grey(man)
        if grey is not None:
            sec.figure(regions_figure(grey, nxt["regions"], size=nxt["size"]),
                       alt="regions to label next")
        sec.text(f"Regions to label next ({nxt['output']}): the {len(nxt['regions'])} "
                 f"non-overlapping {nxt['size']}-voxel windows of highest mean uncertainty "
                 "(normalised entropy) of the forest on the reference state.", note=True)
    return [sec]


def _grey(man: dict[str, Any]) -> np.ndarray | None:
    """The reference state's grey input, cropped as the run (None when unreadable)."""
    from electrode_ct.io import read

    inp = man.get("config", {}).get("input", {})
    greys = inp.get("grey") or []
    ref = int(inp.get("reference_state") or 0)
    if len(greys) <= ref or not Path(greys[ref]).exists():
        return None
    arr = read(greys[ref]).numpy()
    roi = inp.get("crop") or {}
    window = tuple(slice(*roi.get(a, [None, None])) for a in "zyx")
    return arr[window]


def variability_figure(methods: dict[str, Any], *, reference: float | None = None) -> Figure:
    """Bailey et al.'s comparison of methods, two panels: :func:`spread_axes` and
    :func:`pairs_axes`.

    ``methods`` is :func:`electrode_ct.metrics.variability.method_variability`'s result
    (computed with a phase).
    """
    fig, (a, b) = plt.subplots(1, 2, figsize=(max(8.0, 2.4 * len(methods) + 4), 3.6))
    spread_axes(a, methods, reference=reference)
    pairs_axes(b, methods)
    fig.tight_layout()
    return fig


def spread_axes(ax: Any, methods: dict[str, Any], *, reference: float | None = None) -> None:
    """Per method: the phase fraction of each user (dots), mean ± std (ddof = 1) and the
    reference value (dashed line) with the mean's difference from it (percentage points)."""
    for k, m in enumerate(methods.values()):
        f = np.asarray(m["phase_fraction"], float)
        ax.scatter(np.full(f.size, k) + np.linspace(-0.12, 0.12, f.size), f, s=18,
                   color=PHASE_COLOURS[k % len(PHASE_COLOURS)], zorder=3)
        ax.errorbar(k + 0.3, m["phase_fraction_mean"], yerr=m["phase_fraction_std"],
                    fmt="s", color="k", capsize=4, ms=5)
        if reference is not None:
            d = m["phase_fraction_mean"] - reference
            ax.annotate(f"{100 * d:+.1f} pp", (k + 0.3, m["phase_fraction_mean"]),
                        xytext=(6, 0), textcoords="offset points", fontsize=8, va="center")
    if reference is not None:
        ax.axhline(reference, ls="--", color="#a03030", lw=1)
        ax.text(1.0, reference, f" reference\n {reference:.3f}", color="#a03030", fontsize=8,
                va="center", ha="left", transform=ax.get_yaxis_transform())
    ax.set_xticks(range(len(methods)), list(methods))
    phase = next(iter(methods.values())).get("phase", "phase")
    ax.set_ylabel(f"phase {phase}: volume fraction")
    ax.set_title("users (dots), mean ± std (n−1), mean − reference (pp)", fontsize=10)


def pairs_axes(ax: Any, methods: dict[str, Any]) -> None:
    """Per method: % voxels differing for each pair of users (dots) and their mean (bar)."""
    for k, m in enumerate(methods.values()):
        d = np.asarray(m.get("phase_percent_different") or _upper(m), float)
        ax.bar(k, d.mean(), color="#c8d0e0", width=0.6)
        ax.scatter(np.full(d.size, k) + np.linspace(-0.15, 0.15, d.size), d, s=16, color="k",
                   zorder=3)
    ax.set_xticks(range(len(methods)), list(methods))
    ax.set_ylabel("% voxels differing")
    ax.set_title("subtraction: each pair of users (dots), mean (bar)", fontsize=10)


def _upper(m: dict[str, Any]) -> list[float]:
    d = np.asarray(m["pairwise_percent_different"], float)
    return d[np.triu_indices(d.shape[0], 1)].tolist()


def subtraction_figure(images: list[tuple[str, np.ndarray, float]], *, z: int,
                       phase: str) -> Figure:
    """Subtraction images (−1 / 0 / +1) of one slice, one panel per pair of users."""
    n = len(images)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.8 * cols, 3.0 * rows + 0.4), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    for ax, (title, img, pct) in zip(axes.ravel(), images, strict=False):
        ax.imshow(img, cmap="bwr", vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(f"{title}\n{pct:.2f} % of the volume differ", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{phase}: user a − user b, slice z = {z} (red +1: only a, blue −1: only b)",
                 fontsize=9)
    return fig


def variability_sections(out: Path, man: dict[str, Any]) -> list[Section]:
    """The "User variability" section from the variability step's summary."""
    step = man.get("steps", {}).get("variability", {})
    summ = step.get("summary", {})
    methods = summ.get("methods")
    if not methods:
        return []
    sec = Section("User variability (Bailey et al.)")
    ref = summ.get("reference")
    sec.figure(variability_figure(methods, reference=ref),
               alt="phase fraction per user and method, pairwise % voxels differing")
    rel = step.get("outputs", {}).get("subtraction_slices")
    if rel and (out / rel).exists():
        from electrode_ct.io import read

        stack = read(out / rel).numpy()
        sec.figure(subtraction_figure(list(zip(summ["subtraction_titles"], stack,
                                               summ["subtraction_percent"], strict=True)),
                                      z=summ["z"], phase=summ["phase"]),
                   alt="subtraction images")
    sec.table(variability_table(methods))
    return [sec]


def variability_table(methods: dict[str, Any]) -> pd.DataFrame:
    """One row per method: users, fraction mean ± std, % differing, difference from the
    reference."""
    rows = []
    for name, m in methods.items():
        row = {"method": name, "users": m["n_users"],
               "fraction mean": m["phase_fraction_mean"], "fraction std (n−1)":
               m["phase_fraction_std"], "mean % differing (phase)":
               float(np.mean(m["phase_percent_different"])),
               "mean % differing (all labels)": m["mean_percent_different"]}
        if m.get("reference"):
            mean = m["reference"]["mean"]
            row["mean − reference"] = mean["absolute_difference"]
            row["relative difference %"] = mean["relative_difference_percent"]
        rows.append(row)
    return pd.DataFrame(rows)
