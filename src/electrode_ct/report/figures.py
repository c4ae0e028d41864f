"""General report figures: orthoslices with overlays, histograms with thresholds, bar charts,
the representative-volume curve of the tortuosity.

All functions return a matplotlib Figure (Agg backend); :func:`to_png_base64` embeds it.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

PHASE_COLOURS = ["#1f3b73", "#e0a030", "#d04040", "#40a060", "#9060c0", "#30b0c0"]


def to_png_base64(fig: Figure, *, dpi: int = 90) -> str:
    """Render a figure to a base64 PNG string and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _centre_slices(arr: np.ndarray) -> list[tuple[str, np.ndarray]]:
    z, y, x = (s // 2 for s in arr.shape)
    return [(f"XY (z = {z})", arr[z]), (f"XZ (y = {y})", arr[:, y]),
            (f"YZ (x = {x})", arr[:, :, x])]


def orthoslices(
    grey: np.ndarray,
    *,
    overlay: np.ndarray | None = None,
    overlay_kind: str = "phases",
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    title: str = "",
) -> Figure:
    """XY / XZ / YZ centre slices of a volume, optionally with a label overlay.

    Parameters
    ----------
    grey : numpy.ndarray
        (z, y, x) grey volume.
    overlay : numpy.ndarray, optional
        Label volume of the same shape (phases or particle ids; 0 transparent for particles).
    overlay_kind : {"phases", "particles"}
        Colour scheme: fixed phase colours, or random colours per particle.
    spacing : sequence of float
        Voxel size (z, y, x) in µm, used for the aspect ratio and axis units.
    title : str
        Figure title.
    """
    grey = np.asarray(grey, dtype=np.float32)
    lo, hi = np.percentile(grey, [0.5, 99.5])
    sz, sy, sx = spacing
    aspects = [sy / sx, sz / sx, sz / sy]
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.2))
    ovs = _centre_slices(overlay) if overlay is not None else [None] * 3
    for ax, (name, sl), ov, asp in zip(axes, _centre_slices(grey), ovs, aspects, strict=True):
        ax.imshow(sl, cmap="gray", vmin=lo, vmax=hi, aspect=asp, interpolation="nearest")
        if ov is not None:
            lab = ov[1]
            if overlay_kind == "particles":
                rng = np.random.default_rng(1)
                n = int(lab.max()) + 1
                colours = rng.uniform(0.2, 1.0, (n, 4))
                colours[:, 3] = 0.45
                colours[0] = 0
                ax.imshow(colours[lab], aspect=asp, interpolation="nearest")
            else:
                cmap = matplotlib.colors.ListedColormap(PHASE_COLOURS[: max(int(lab.max()) + 1, 1)])
                ax.imshow(lab, cmap=cmap, alpha=0.35, aspect=asp, interpolation="nearest",
                          vmin=0, vmax=max(int(lab.max()), 1))
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    return fig


def histogram(
    grey: np.ndarray,
    *,
    thresholds: Sequence[float] | None = None,
    bins: int = 256,
    title: str = "Grey-level histogram",
) -> Figure:
    """Histogram of a grey volume with the segmentation thresholds drawn as lines."""
    data = np.asarray(grey).ravel()
    if data.size > 4_000_000:
        data = data[:: data.size // 4_000_000]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.hist(data[np.isfinite(data)], bins=bins, color="#4a6fa5")
    for t in thresholds or []:
        ax.axvline(float(t), color="#d04040", lw=1.5)
    ax.set_xlabel("grey level")
    ax.set_ylabel("voxels")
    ax.set_yscale("log")
    ax.set_title(title)
    return fig


def bars(values: Mapping[str, float], *, ylabel: str, title: str = "",
         intervals: Mapping[str, Sequence[float] | None] | None = None) -> Figure:
    """A bar chart of named values (e.g. volume fractions), with [lo, hi] error bars
    where ``intervals`` gives them (e.g. the ``_ci95`` companions)."""
    fig, ax = plt.subplots(figsize=(5, 3))
    names = list(values)
    y = np.array([float(values[k]) for k in names])
    ax.bar(names, y, color=PHASE_COLOURS[: len(names)] or None)
    ci = [(i, c) for i, c in enumerate((intervals or {}).get(k) for k in names) if c]
    if ci:
        xs, lo, hi = [i for i, _ in ci], [c[0] for _, c in ci], [c[1] for _, c in ci]
        ax.vlines(xs, lo, hi, color="k", lw=1.5)
        ax.scatter(xs * 2, lo + hi, marker="_", s=120, color="k", lw=1.5)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return fig


def rve_curve(rve: Mapping[str, object]) -> Figure:
    """τ mean ± std against the sub-volume edge (µm), one line per direction.

    ``rve`` is the ``tortuosity_rve`` dict of the metrics
    (:func:`electrode_ct.metrics.tortuosity_rve.tortuosity_rve`).
    """
    fig, ax = plt.subplots(figsize=(5, 3))
    edges = [float(np.max(e)) for e in rve["sizes_um"]]  # type: ignore[union-attr]
    for k, axis in enumerate(a for a in ("x", "y", "z") if a in rve):
        rows = rve[axis]
        keep = [i for i, r in enumerate(rows) if r["mean"] is not None]  # type: ignore[index]
        ax.errorbar([edges[i] for i in keep], [rows[i]["mean"] for i in keep],  # type: ignore[index]
                    yerr=[rows[i]["std"] for i in keep], marker="o", capsize=3,  # type: ignore[index]
                    color=PHASE_COLOURS[k], label=f"τ along {axis}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("sub-volume edge (µm)")
    ax.set_ylabel("tortuosity factor τ")
    ax.set_title("Representative volume: mean ± std over the sub-volumes")
    ax.legend()
    return fig
