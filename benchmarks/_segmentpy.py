"""The SegmentPy nano-CT slices with expert labels, loaded per sub-volume (shared by benchmarks).

The expert labels are 0 = NMC (active) and 1/2 = carbon-binder domain or pore. Which of 1/2
is CBD is decided ONCE per sub-volume from the mean grey level pooled over all its slices
(CBD is brighter than pore in nano-CT). Deciding per slice is wrong: the grey-level order of
labels 1 and 2 flips on single slices (A slice 1, C slice 698) while the labels stay
consistent within a sub-volume, so per-slice mapping would corrupt references and training
labels alike.

Labels are returned as training values 1..3 = pore, cbd, active (ordered by grey level);
``phases(labels)`` gives the project's phase codes 0 pore, 1 cbd, 2 active.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile

ROOT = Path(__file__).resolve().parents[1]
SEGMENTPY = ROOT / "tests" / "data" / "segmentpy_nmc_nanoct"
SUBVOLUMES: dict[str, list[int]] = {"A": [1, 100, 200, 300, 400],
                                    "C": [394, 470, 546, 622, 698, 774]}
"""Slices of each sub-volume (far apart in z: independent 2-D images)."""

CLASS_NAMES: tuple[str, ...] = ("pore", "cbd", "active")
"""Names of training values 1, 2, 3 (increasing grey level)."""

PHASE_MAP: dict[str, int] = {"pore": 0, "cbd": 1, "active": 2}
"""Class map of :func:`phases` (the project's phase codes)."""

EXPERT_NMC = 0
"""Expert label value of the NMC active material."""


@dataclass
class SubVolume:
    """One sub-volume's grey slices and remapped expert labels.

    Attributes
    ----------
    name : str
        ``"A"`` or ``"C"``.
    slices : list of int
        Slice numbers (file names).
    images : dict
        Slice number -> float32 (y, x) grey image as stored.
    labels : dict
        Slice number -> uint8 (y, x) labels 1 pore, 2 cbd, 3 active.
    mapping : dict
        Expert value -> training value (one mapping for the whole sub-volume).
    pooled_mean_grey : dict
        Expert value -> mean grey level over all slices of the sub-volume.
    """

    name: str
    slices: list[int]
    images: dict[int, np.ndarray] = field(repr=False)
    labels: dict[int, np.ndarray] = field(repr=False)
    mapping: dict[int, int]
    pooled_mean_grey: dict[int, float]


def pooled_means(images: list[np.ndarray], labels: list[np.ndarray]) -> np.ndarray:
    """Mean grey level of expert values 0, 1, 2 over all given slices (pooled)."""
    sums = np.zeros(3)
    counts = np.zeros(3)
    for img, lab in zip(images, labels, strict=True):
        flat = lab.ravel().astype(np.intp)
        sums += np.bincount(flat, weights=img.ravel().astype(np.float64), minlength=3)[:3]
        counts += np.bincount(flat, minlength=3)[:3]
    return sums / np.maximum(counts, 1)


def subvolume_mapping(images: list[np.ndarray], labels: list[np.ndarray]) -> dict[int, int]:
    """Expert value -> training value (1 pore, 2 cbd, 3 active) from pooled grey means.

    Parameters
    ----------
    images, labels : list of numpy.ndarray
        All slices of one sub-volume and their expert labels (0 NMC, 1/2 CBD or pore).

    Returns
    -------
    dict
        ``{0: 3, brighter of 1/2: 2, darker of 1/2: 1}``.
    """
    mean = pooled_means(images, labels)
    cbd, pore = (1, 2) if mean[1] > mean[2] else (2, 1)
    return {EXPERT_NMC: 3, cbd: 2, pore: 1}


def load_subvolume(name: str) -> SubVolume:
    """Read every slice of sub-volume ``name`` and map its labels with one mapping.

    Parameters
    ----------
    name : {"A", "C"}

    Returns
    -------
    SubVolume
    """
    slices = SUBVOLUMES[name]
    images = {n: tifffile.imread(SEGMENTPY / f"{n}.tif").astype(np.float32) for n in slices}
    expert = {n: tifffile.imread(SEGMENTPY / f"{n}_label.tif") for n in slices}
    imgs, labs = [images[n] for n in slices], [expert[n] for n in slices]
    mapping = subvolume_mapping(imgs, labs)
    lut = np.zeros(256, np.uint8)
    for k, v in mapping.items():
        lut[k] = v
    labels = {n: lut[expert[n]] for n in slices}
    pooled = {k: float(v) for k, v in enumerate(pooled_means(imgs, labs))}
    return SubVolume(name=name, slices=list(slices), images=images, labels=labels,
                     mapping=mapping, pooled_mean_grey=pooled)


def phases(labels: np.ndarray) -> np.ndarray:
    """Training values 1..3 -> phase codes 0 pore, 1 cbd, 2 active (uint8)."""
    return (np.asarray(labels).astype(np.int16) - 1).astype(np.uint8)
