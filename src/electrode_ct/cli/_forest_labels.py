"""Training labels of ``ect segment train-forest``: threshold seeds, scribbles and added
strokes merged in that order, and the regions to label next (no science in here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from electrode_ct.cli._argv import parse_floats
from electrode_ct.cli._common import read_input
from electrode_ct.errors import InputError, ShapeError
from electrode_ct.volume import Volume

SEED_METHODS = ("multiotsu", "otsu", "li", "triangle")
"""Threshold methods accepted by ``--seed-thresholds`` besides explicit cut values."""


@dataclass(frozen=True)
class SeedOptions:
    """The ``--seeded`` options: variant, cut values or method, slices, margin, names."""

    variant: str | None
    thresholds: str
    slices: str | None
    margin: float | None
    class_names: list[str] | None


def _cuts(image: np.ndarray, opts: SeedOptions) -> list[float]:
    """Cut values from ``--seed-thresholds``: numbers, or a method on the whole image."""
    from electrode_ct.segment.threshold import threshold_values

    text = opts.thresholds.strip().lower()
    if text not in SEED_METHODS:
        cuts = parse_floats(text, name="--seed-thresholds")
        if not cuts:
            raise InputError("--seed-thresholds: expected cut values or one of "
                             f"{', '.join(SEED_METHODS)}, got {opts.thresholds!r}")
        return sorted(cuts)
    classes = len(opts.class_names) if opts.class_names else (3 if text == "multiotsu" else 2)
    if text != "multiotsu" and classes != 2:
        raise InputError(f"--seed-thresholds {text}: gives 2 classes, but "
                         f"{classes} class names were given")
    return [float(c) for c in threshold_values(image, method=text, classes=classes)]


def seed_labels(img: Volume, opts: SeedOptions) -> tuple[np.ndarray, dict[str, Any]]:
    """Threshold seeds (ML1–ML3) of the image and their description."""
    from electrode_ct.segment.scribbles import ML_VARIANTS, seed_slices, threshold_seeds

    variant = opts.variant.strip().upper()
    if variant not in ML_VARIANTS:
        raise InputError(f"--seeded: expected one of {', '.join(ML_VARIANTS)}, "
                         f"got {opts.variant!r}")
    arr = img.numpy()
    if opts.margin is not None and not (np.isfinite(opts.margin) and opts.margin >= 0):
        raise InputError(f"--seed-margin: expected grey levels >= 0, got {opts.margin}")
    cuts = _cuts(arr, opts)
    zs = seed_slices(img.shape[0], opts.slices, variant=variant)
    seeds = threshold_seeds(arr if arr.ndim == 3 else arr[None], cuts, variant=variant,
                            margin=opts.margin, slices=zs)
    return seeds, {"variant": variant, "thresholds": cuts, "slices": zs.tolist(),
                   "margin": opts.margin, "n_seeded": int(np.count_nonzero(seeds))}


def _strokes(path: str, shape: tuple[int, ...], what: str) -> np.ndarray:
    lab = read_input(path, role="labels").numpy()
    lab = lab[None] if lab.ndim == 2 else lab
    if lab.shape != shape:
        raise ShapeError(f"{path}: {what} have shape {lab.shape} but the image has shape "
                         f"{shape}; expected the same shape")
    return lab


def training_labels(img: Volume, scribbles: str | None, add: list[str],
                    seeds: SeedOptions) -> tuple[np.ndarray, dict[str, Any]]:
    """Seeds, then scribbles, then each ``--add`` file drawn over what came before.

    Returns
    -------
    labels : numpy.ndarray
        uint8 (z, y, x) training labels (0 unlabelled).
    info : dict
        ``sources``, ``n_labelled``, ``n_added`` (voxels the ``--add`` files label),
        ``n_relabelled`` (of those, voxels that had another label before), ``seeds``.
    """
    from electrode_ct.segment.scribbles import merge_scribbles

    if scribbles is None and seeds.variant is None:
        raise InputError("SCRIBBLES: expected a scribbles file, or --seeded ML1|ML2|ML3 for "
                         "threshold seeds")
    shape = tuple(img.shape)
    info: dict[str, Any] = {"sources": []}
    lab = np.zeros(shape, np.uint8)
    if seeds.variant is not None:
        lab, info["seeds"] = seed_labels(img, seeds)
        info["sources"].append(f"seeds {info['seeds']['variant']}")
    if scribbles is not None:
        lab = merge_scribbles(lab, _strokes(scribbles, shape, "scribbles"))
        info["sources"].append(scribbles)
    before = lab
    for path in add:  # the correction rounds, in order
        lab = merge_scribbles(lab, _strokes(path, shape, "added strokes (--add)"))
        info["sources"].append(path)
    added = lab != before
    info.update(n_labelled=int(np.count_nonzero(lab)), n_added=int(np.count_nonzero(added)),
                n_relabelled=int(np.count_nonzero(added & (before > 0))))
    return lab, info


def next_regions_out(model: Any, img: Volume, path: Path, *, n: int,
                     size: int) -> dict[str, Any]:
    """Predict the image, pick the ``n`` most uncertain windows and write them to ``path``.

    A ``.csv`` / ``.parquet`` path gets a points table (``rank, z, y, x,
    mean_uncertainty``, napari-readable); any other a uint8 volume of the windows
    painted with their rank.
    """
    import pandas as pd

    from electrode_ct.io import write, write_table
    from electrode_ct.segment.scribbles import regions_volume, uncertain_regions

    if n < 1 or size < 1:
        raise InputError(f"--next-n / --next-size: expected at least 1, got {n} / {size}")
    pred = model.predict(img, uncertainty=True)
    unc = np.asarray(pred.uncertainty)
    regions = uncertain_regions(unc, n=n, size=size)
    if Path(path).suffix.lower() in (".csv", ".parquet"):
        table = pd.DataFrame(regions, columns=["z", "y", "x", "mean_uncertainty"])
        table.insert(0, "rank", np.arange(1, len(table) + 1))
        write_table(table, path)
    else:
        vol = regions_volume(unc.shape if unc.ndim == 3 else (1, *unc.shape), regions,
                             size=size)
        write(img.with_data(vol[0] if img.is_2d else vol).with_class_map(None), path)
    return {"output": str(path), "size": int(size), "regions": regions,
            "mean_uncertainty": float(unc.mean(dtype=np.float64))}
