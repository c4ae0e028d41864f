"""Files of ``ect segment train-forest``'s training labels: seeds, scribbles and added
strokes read and merged, and the regions to label next written (no science in here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from electrode_ct.cli._common import read_input
from electrode_ct.errors import InputError
from electrode_ct.volume import Volume


@dataclass(frozen=True)
class SeedOptions:
    """The ``--seeded`` options: variant, cut values or method, slices, margin, names."""

    variant: str | None
    thresholds: str
    slices: str | None
    margin: float | None
    class_names: list[str] | None


def training_labels(img: Volume, scribbles: str | None, add: list[str],
                    seeds: SeedOptions) -> tuple[np.ndarray, dict[str, Any]]:
    """Seeds, then scribbles, then each ``--add`` file drawn over what came before.

    Returns the uint8 labels and ``sources`` plus the keys of
    :func:`segment.training_labels.merged_labels` (and ``seeds`` with ``--seeded``).
    """
    from electrode_ct.segment.training_labels import merged_labels, seed_labels

    if scribbles is None and seeds.variant is None:
        raise InputError("SCRIBBLES: expected a scribbles file, or --seeded ML1|ML2|ML3 for "
                         "threshold seeds")
    info: dict[str, Any] = {"sources": []}
    base = None
    if seeds.variant is not None:
        base, info["seeds"] = seed_labels(
            img.numpy(), variant=seeds.variant, thresholds=seeds.thresholds,
            slices=seeds.slices, margin=seeds.margin,
            n_classes=len(seeds.class_names) if seeds.class_names else None)
        info["sources"].append(f"seeds {info['seeds']['variant']}")
    scr = None
    if scribbles is not None:
        scr = read_input(scribbles, role="labels").numpy()
        info["sources"].append(scribbles)
    added = [(p, read_input(p, role="labels").numpy()) for p in add]
    info["sources"] += list(add)
    lab, counts = merged_labels(img.shape, seeds=base, scribbles=scr, added=added)
    return lab, {**info, **counts}


def next_regions_out(model: Any, img: Volume, path: Path, *, n: int,
                     size: int) -> dict[str, Any]:
    """Pick the ``n`` most uncertain windows of ``model`` on ``img`` and write them.

    A ``.csv`` / ``.parquet`` path gets a points table (``rank, z, y, x,
    mean_uncertainty``, napari-readable); any other a uint8 volume of the windows
    painted with their rank.
    """
    from electrode_ct.io import write, write_table
    from electrode_ct.segment.scribbles import regions_volume
    from electrode_ct.segment.training_labels import next_regions, regions_table

    regions, unc = next_regions(model, img, n=n, size=size)
    if Path(path).suffix.lower() in (".csv", ".parquet"):
        write_table(regions_table(regions), path)
    else:
        vol = regions_volume(img.shape, regions, size=size)
        write(img.with_data(vol[0] if img.is_2d else vol).with_class_map(None), path)
    return {"output": str(path), "size": int(size), "regions": regions,
            "mean_uncertainty": float(unc.mean(dtype=np.float64))}
