"""``ect variability`` by method (Bailey et al.): grouping, subtraction files, figure
(no science in here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from electrode_ct.errors import InputError
from electrode_ct.volume import Volume


def method_names(text: str | None, n: int) -> list[str]:
    """One method name per segmentation from ``--methods`` (default: one method ``all``)."""
    if text is None:
        return ["all"] * n
    names = [t.strip() for t in text.split(",")]
    if len(names) != n or not all(names):
        raise InputError(f"--methods: expected {n} comma-separated names (one per "
                         f"segmentation, e.g. thr,thr,thr,ml1,ml1,ml1), got {text!r}")
    return names


def by_method(names: list[str], arrays: list[np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Segmentations grouped by method, in order of first appearance."""
    groups: dict[str, list[np.ndarray]] = {}
    for name, arr in zip(names, arrays, strict=True):
        groups.setdefault(name, []).append(arr)
    return groups


def write_subtractions(folder: Path, groups: dict[str, list[np.ndarray]],
                       methods: dict[str, Any], like: Volume) -> list[str]:
    """``<method>_<a>-<b>.tif`` (int8 phase mask of user a − user b) for every pair."""
    from electrode_ct.io import write
    from electrode_ct.metrics.variability import subtraction

    written = []
    for name, segs in groups.items():  # methods × pairs: a handful of files
        m = methods[name]
        safe = re.sub(r"[^\w.-]+", "_", name)
        for i, j in m["phase_pairs"]:
            path = Path(folder) / f"{safe}_{i + 1}-{j + 1}.tif"
            img = subtraction(segs[i], segs[j], m["phase_value"])
            write(like.with_data(img[0] if like.is_2d else img).with_class_map(None), path)
            written.append(str(path))
    return written


def save_figure(path: Path, methods: dict[str, Any], reference: float | None) -> str:
    """The variability figure (spread and pairwise panels) as a PNG, written atomically."""
    import matplotlib.pyplot as plt

    from electrode_ct.io._atomic import atomic_path
    from electrode_ct.report.variability import variability_figure

    fig = variability_figure(methods, reference=reference)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return str(path)
