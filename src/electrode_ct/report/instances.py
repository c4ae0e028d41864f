"""Report section: the particle instances against reference instance labels.

With ``input.reference_particles`` (ground-truth particle ids of the reference state),
the published evaluation of the particles step: precision–recall at IoU 0.5 in 3-D and
pooled over 20 random XY slices with their mAP@0.5, the counts, splits and merges, and a
ground truth (green) vs prediction (magenta) overlay of the middle slice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from electrode_ct.report.html import Section

N_SLICES = 20
"""Random XY slices pooled for the 2-D evaluation."""


def _read(path: str, inp: dict[str, Any]) -> Any:
    from electrode_ct.io import read
    from electrode_ct.report.build import _cropped

    return _cropped(read(path, voxel_size=inp.get("voxel_size")).compute(), inp.get("crop"))


def instance_sections(out: Path, man: dict[str, Any]) -> list[Section]:
    """The section, or none without reference particles or particle labels."""
    from electrode_ct.labels import check_labels
    from electrode_ct.metrics.instance_figures import overlay_figure, pr_figure
    from electrode_ct.metrics.instances import match_instances, slice_instances

    cfg = man.get("config", {})
    inp = cfg.get("input", {})
    rel = man.get("steps", {}).get("particles", {}).get("outputs", {}).get("particles")
    if not inp.get("reference_particles") or not rel or not (out / rel).exists():
        return []
    from electrode_ct.io import read

    pred = check_labels(read(out / rel).numpy(), name=rel)
    ref = check_labels(_read(inp["reference_particles"], inp).numpy(),
                       name="input.reference_particles")
    if ref.shape != pred.shape:
        return []
    res = {"3-D": match_instances(pred, ref),
           f"{N_SLICES} XY slices": slice_instances(pred, ref, n_slices=N_SLICES,
                                                    seed=int(cfg.get("seed") or 0))}
    p = cfg.get("steps", {}).get("particles", {})
    sec = Section("Particle instances vs reference")
    sec.text(f"Method {p.get('method', 'distance')}"
             + (f", model {p.get('model') or 'shipped'}" if p.get("method", "distance")
                != "distance" else "")
             + f"; reference {inp['reference_particles']}.")
    sec.table(pd.DataFrame([{"evaluation": k, **{c: v[c] for c in (
        "n_pred", "n_ref", "ap50", "ap", "precision", "recall", "splits", "merges")}}
        for k, v in res.items()]))
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    pr_figure(res, ax=axes[0])
    greys = inp.get("grey") or []
    grey = _read(greys[int(inp.get("reference_state") or 0)], inp).numpy() if greys else None
    overlay_figure(pred, ref, grey=grey, ax=axes[1])
    sec.figure(fig, alt="precision-recall curves and ground truth vs prediction overlay")
    return [sec]
