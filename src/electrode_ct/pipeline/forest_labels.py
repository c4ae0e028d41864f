"""The segment step's forest training labels (threshold seeds, scribbles, added strokes)
and its regions to label next (``tables/next_regions.csv``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from electrode_ct.io import read, write_table

if TYPE_CHECKING:
    from electrode_ct.pipeline.runner import Run
    from electrode_ct.volume import Volume

NEXT_SIZE = 32
"""Edge (voxels) of the windows to label next."""


def training_labels(run: Run, image: Volume) -> tuple[np.ndarray, dict[str, Any]]:
    """``steps.segment``'s seeds, scribbles and ``add`` strokes merged in that order."""
    from electrode_ct.segment.training_labels import merged_labels, seed_labels

    p = run.cfg.steps.segment
    info: dict[str, Any] = {"sources": []}
    seeds = None
    if p.seeded:
        seeds, info["seeds"] = seed_labels(
            image.numpy(), variant=p.seeded, thresholds=p.seed_thresholds,
            slices=p.seed_slices, n_classes=len(p.class_names) if p.class_names else None)
        info["sources"].append(f"seeds {p.seeded}")
    scribbles = read(p.scribbles).numpy() if p.scribbles else None
    info["sources"] += [a for a in [p.scribbles, *p.add] if a]
    lab, counts = merged_labels(image.shape, seeds=seeds, scribbles=scribbles,
                                added=[(a, read(a).numpy()) for a in p.add])
    return lab, {**info, **counts}


def next_regions_table(run: Run, model: Any, image: Volume) -> None:
    """Write the ``steps.segment.next_regions`` most uncertain windows (when > 0) and keep
    them in ``model.report["next_regions"]``."""
    from electrode_ct.segment.training_labels import next_regions, regions_table

    n = run.cfg.steps.segment.next_regions
    if not n:
        return
    regions, unc = next_regions(model, image, n=n, size=NEXT_SIZE)
    rel = "tables/next_regions.csv"
    write_table(regions_table(regions), run.path(rel))
    model.report["next_regions"] = {"output": rel, "size": NEXT_SIZE, "regions": regions,
                                    "mean_uncertainty": float(unc.mean(dtype=np.float64))}
