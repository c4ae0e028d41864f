"""Figures of the instance evaluation: precision–recall curves and a truth/prediction overlay.

- :func:`pr_figure`: the precision–recall curves at IoU 0.5 of :func:`~.instances.match_instances`
  results (3-D, and pooled over N random slices by :func:`~.instances.slice_instances`),
  with their AP@0.5 in the legend (the published evaluation of learned instance models).
- :func:`overlay_figure`: one slice with the reference particles' outlines (green) and the
  predicted ones (magenta) over the grey image (or the reference labels).

Used by ``ect compare-instances --plot/--overlay`` and the report.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np


def _new_axes(ax: Any, size: tuple[float, float]) -> tuple[Any, Any]:
    import matplotlib

    if ax is None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=size)
        return fig, ax
    return ax.figure, ax


def save_figure(fig: Any, path: str | os.PathLike[str]) -> None:
    """Save ``fig`` atomically (format from the extension, PNG by default)."""
    from electrode_ct.io._atomic import atomic_path

    suffix = os.path.splitext(os.fspath(path))[1] or ".png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=suffix.lstrip("."), dpi=120, bbox_inches="tight")


def pr_figure(results: Mapping[str, Mapping[str, Any]], *, ax: Any = None,
              path: str | os.PathLike[str] | None = None) -> Any:
    """Precision–recall curves at IoU 0.5, one per named result.

    Parameters
    ----------
    results : mapping
        name -> a :func:`~.instances.match_instances` or
        :func:`~.instances.slice_instances` result (``pr_curve`` and ``ap50`` used).
    ax : matplotlib Axes, optional
        Draw into it instead of a new figure.
    path : path-like, optional
        Save the figure there.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, ax = _new_axes(ax, (4.5, 3.5))
    for name, res in results.items():
        curve = res["pr_curve"]
        recall = np.r_[0.0, curve["recall"]]
        precision = np.r_[curve["precision"][0] if curve["precision"] else 1.0,
                          curve["precision"]]
        ax.step(recall, precision, where="post", label=f"{name}: AP@0.5 {res['ap50']:.3f}")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("precision–recall at IoU 0.5")
    ax.legend(loc="lower left", fontsize=8)
    if path is not None:
        save_figure(fig, path)
    return fig


def _outline(labels: np.ndarray) -> np.ndarray:
    """Pixels of a 2-D label image whose 4-neighbour has another label (inside particles)."""
    edge = np.zeros(labels.shape, bool)
    for axis in (0, 1):
        a = np.moveaxis(labels, axis, 0)
        e = np.moveaxis(edge, axis, 0)
        diff = a[1:] != a[:-1]
        e[1:] |= diff
        e[:-1] |= diff
    return edge & (labels > 0)


def overlay_figure(pred: np.ndarray, ref: np.ndarray, *, grey: np.ndarray | None = None,
                   axis: int = 0, index: int | None = None, ax: Any = None,
                   path: str | os.PathLike[str] | None = None) -> Any:
    """One slice with reference (green) and predicted (magenta) particle outlines.

    Parameters
    ----------
    pred, ref : numpy.ndarray
        3-D particle labels of the same shape.
    grey : numpy.ndarray, optional
        Grey volume of the same shape shown underneath (default: the reference foreground).
    axis, index : int
        Slicing axis and slice (default: the middle one).
    ax, path
        As :func:`pr_figure`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    index = pred.shape[axis] // 2 if index is None else int(index)
    p, r = np.take(pred, index, axis=axis), np.take(ref, index, axis=axis)
    under = (r > 0).astype(np.float32) if grey is None else \
        np.take(grey, index, axis=axis).astype(np.float32)
    fig, ax = _new_axes(ax, (4.5, 4.5))
    ax.imshow(under, cmap="gray", interpolation="nearest")
    rgba = np.zeros((*p.shape, 4), np.float32)
    rgba[_outline(r)] = (0.1, 0.9, 0.2, 1.0)
    rgba[_outline(p)] = (0.95, 0.1, 0.85, 1.0)
    ax.imshow(rgba, interpolation="nearest")
    ax.set_title(f"slice {index} along axis {axis}: reference (green), prediction (magenta)",
                 fontsize=8)
    ax.set_axis_off()
    if path is not None:
        save_figure(fig, path)
    return fig
