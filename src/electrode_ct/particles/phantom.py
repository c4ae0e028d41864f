"""A small packed-sphere phantom with planar cracks and exact particle truth.

Used by the tests and ``benchmarks/particles.py`` to measure how well particle
separation keeps cracked particles whole. Spheres are placed by random sequential
addition with slight overlaps (touching necks, as in a calendered electrode); a
fraction of them is cut right through by a planar crack of a given width.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from electrode_ct.volume import Volume


@dataclass
class CrackedPacking:
    """Phantom arrays.

    Attributes
    ----------
    phases : numpy.ndarray
        uint8 0 pore, 1 active (class map in :attr:`class_map`), cracks are pore.
    truth : numpy.ndarray
        uint32 true particle ids 1..n on the active voxels (a cracked particle has one id).
    grey : numpy.ndarray
        float32 noisy grey image (pore 0.2, active 0.8, Gaussian noise of ``noise``).
    cracked : numpy.ndarray
        Ids of the cracked particles.
    spacing : tuple of float
        Voxel size in µm.
    """

    phases: np.ndarray
    truth: np.ndarray
    grey: np.ndarray
    cracked: np.ndarray
    spacing: tuple[float, float, float]
    class_map = {"pore": 0, "active": 1}

    def volume(self) -> Volume:
        """The phase volume as a :class:`Volume` with spacing and class map."""
        return Volume(self.phases, spacing=self.spacing, metadata={"class_map": self.class_map})


def cracked_packing(
    shape: tuple[int, int, int] = (64, 64, 64),
    *,
    radius: tuple[float, float] = (7.0, 11.0),
    n_particles: int = 40,
    crack_fraction: float = 0.3,
    crack_width: tuple[float, float] = (1.0, 2.0),
    overlap: float = 0.1,
    noise: float = 0.0,
    spacing: float = 1.0,
    seed: int = 0,
) -> CrackedPacking:
    """Make a packed-sphere phantom with cracked particles.

    Parameters
    ----------
    shape : tuple of int
        Volume shape (z, y, x) in voxels.
    radius : (float, float)
        Range of sphere radii in voxels.
    n_particles : int
        Number of spheres attempted (fewer when the box is full).
    crack_fraction : float
        Fraction of the particles cut by a planar crack through their centre region.
    crack_width : (float, float)
        Range of crack widths in voxels.
    overlap : float
        Allowed overlap of neighbours as a fraction of the sum of radii (touching necks).
    noise : float
        Grey-level noise σ (contrast pore→active is 0.6); when > 0 the phases are
        re-segmented from the smoothed noisy grey image (realistic errors).
    spacing : float
        Isotropic voxel size in µm.
    seed : int
        Random seed.
    """
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    shape_a = np.asarray(shape, dtype=np.float64)
    centres: list[np.ndarray] = []
    radii: list[float] = []
    for _ in range(n_particles * 200):
        if len(centres) >= n_particles:
            break
        r = rng.uniform(*radius)
        c = rng.uniform(r * 0.6, shape_a - r * 0.6)
        if centres:
            d = np.linalg.norm(np.asarray(centres) - c, axis=1)
            if np.any(d < (1 - overlap) * (np.asarray(radii) + r)):
                continue
        centres.append(c)
        radii.append(r)
    best = np.full(shape, np.inf, dtype=np.float32)
    truth = np.zeros(shape, dtype=np.uint32)
    crack = np.zeros(shape, dtype=bool)
    n = len(centres)
    is_cracked = np.zeros(n + 1, dtype=bool)
    is_cracked[1 + rng.permutation(n)[: int(round(crack_fraction * n))]] = True
    for i, (c, r) in enumerate(zip(centres, radii, strict=True), start=1):
        lo = np.maximum(np.floor(c - r - 1), 0).astype(int)
        hi = np.minimum(np.ceil(c + r + 2), shape_a).astype(int)
        sl = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        grid = np.ogrid[sl]
        rel = [g - cc for g, cc in zip(grid, c, strict=True)]
        dist = np.sqrt(rel[0] ** 2 + rel[1] ** 2 + rel[2] ** 2) - r
        inside = (dist <= 0) & (dist < best[sl])
        best[sl][inside] = dist[inside]
        truth[sl][inside] = i
        if is_cracked[i]:
            normal = rng.normal(size=3)
            normal /= np.linalg.norm(normal)
            offset = rng.uniform(-0.3, 0.3) * r
            width = rng.uniform(*crack_width)
            plane = rel[0] * normal[0] + rel[1] * normal[1] + rel[2] * normal[2] - offset
            crack[sl] |= (np.abs(plane) < width / 2) & (dist <= 0)
    crack &= truth > 0
    owner = truth.copy()
    crack &= is_cracked[owner]
    truth[crack] = 0
    phases = (truth > 0).astype(np.uint8)
    grey = np.where(phases > 0, 0.8, 0.2).astype(np.float32)
    if noise > 0:
        grey = grey + rng.normal(0, noise, shape).astype(np.float32)
        phases = (ndi.gaussian_filter(grey, 0.7) > 0.5).astype(np.uint8)
    return CrackedPacking(phases=phases, truth=truth, grey=grey,
                          cracked=np.flatnonzero(is_cracked), spacing=(float(spacing),) * 3)
