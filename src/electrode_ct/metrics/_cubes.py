"""Integer statistics of a region's interfaces, from which face-counting and marching-cubes
areas follow exactly (and merge exactly over blocks).

Marching cubes on a binary indicator at level 0.5 puts every vertex at an edge midpoint, so
the triangles drawn in one cube depend only on which of its 8 corners are inside: a cube's
area is a table lookup over the 256 corner configurations (the table is taken once from
``skimage.measure.marching_cubes``, Lewiner's method, on each configuration alone; the
triangulation of a cube does not depend on its neighbours). A region's marching-cubes area
is then a histogram of its cubes' configurations times that table: the cubes are counted
once each (no triangle lists), and histograms of blocks add up exactly.

A *cell* is the cube between voxels ``c - 1`` and ``c`` along every axis of the volume
padded by one replicated layer (cells ``0 .. n``); the cells of the padded border (index 0
or n along an axis) straddle the volume's outer face halfway and count half per such axis,
so the isosurface stops at the volume's faces. Histograms keep the number of such axes
(0–3) as a leading index.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

CORNERS = tuple((dz, dy, dx) for dz in (0, 1) for dy in (0, 1) for dx in (0, 1))
"""Corner k of a cell is voxel ``cell + CORNERS[k]``; bit k of its configuration."""


@lru_cache(maxsize=1)
def _triangles() -> tuple[np.ndarray, ...]:
    """Triangles (vertices in voxels, (T, 3, 3)) Lewiner's marching cubes draws in one cube,
    for each corner configuration 0..255."""
    from skimage.measure import marching_cubes

    out = []
    for cfg in range(256):
        if cfg in (0, 255):
            out.append(np.zeros((0, 3, 3)))
            continue
        cube = np.zeros((2, 2, 2), np.float32)
        for k, corner in enumerate(CORNERS):
            cube[corner] = (cfg >> k) & 1
        verts, faces, _, _ = marching_cubes(cube, level=0.5)
        out.append(np.asarray(verts, np.float64)[faces])
    return tuple(out)


@lru_cache(maxsize=16)
def cube_areas(spacing: tuple[float, float, float]) -> np.ndarray:
    """Isosurface area in one cell for each corner configuration, µm² ((256,) float64).

    Parameters
    ----------
    spacing : tuple of 3 float
        Voxel size (z, y, x) in µm.
    """
    sp = np.asarray(spacing, np.float64)
    out = np.zeros(256)
    for cfg, tri in enumerate(_triangles()):
        if len(tri):
            t = tri * sp
            cross = np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])
            out[cfg] = 0.5 * float(np.linalg.norm(cross, axis=1).sum())
    return out


def padded_cells(region: np.ndarray, interior: Sequence[slice], lower: Sequence[bool],
                 upper: Sequence[bool]) -> np.ndarray:
    """The voxels whose cells a block owns: its interior plus one voxel past each upper
    face (read from the halo), with one replicated layer on the faces of the volume.

    Parameters
    ----------
    region : numpy.ndarray
        Block plus a halo of at least 1 voxel where it is not on the volume's upper face.
    interior : sequence of slice
        The block in ``region`` coordinates.
    lower, upper : sequence of bool
        Per axis, whether the block lies on the volume's lower / upper face.

    Returns
    -------
    numpy.ndarray
        An array whose cells (cubes of 2 × 2 × 2 voxels) are the block's cells: cells
        ``s + 1 .. e`` of a block ``[s, e)``, plus cell 0 on a lower face.
    """
    sl = tuple(slice(i.start, i.stop + (0 if up else 1)) for i, up in
               zip(interior, upper, strict=True))
    pad = [(int(lo), int(up)) for lo, up in zip(lower, upper, strict=True)]
    return np.pad(region[sl], pad, mode="edge")


def border_count(cells_shape: Sequence[int], lower: Sequence[bool],
                 upper: Sequence[bool]) -> np.ndarray:
    """Number of axes along which each cell is a padded border cell (uint8, 0–3)."""
    out = np.zeros(tuple(cells_shape), np.uint8)
    for ax, (n, lo, up) in enumerate(zip(cells_shape, lower, upper, strict=True)):
        edge = np.zeros(n, np.uint8)
        edge[0] += bool(lo)
        edge[-1] += bool(up)
        out += np.minimum(edge, 1).reshape([-1 if i == ax else 1 for i in range(3)])
    return out


def configurations(mask: np.ndarray) -> np.ndarray:
    """Corner configuration (bit k = corner k inside) of every cell of ``mask`` (uint8,
    one less than ``mask`` along every axis)."""
    m = mask.view(np.uint8) if mask.dtype == bool else mask.astype(np.uint8)
    shape = tuple(n - 1 for n in m.shape)
    out = np.zeros(shape, np.uint8)
    for k, (a, b, c) in enumerate(CORNERS):
        out |= m[a:a + shape[0], b:b + shape[1], c:c + shape[2]] << np.uint8(k)
    return out


def cube_histogram(config: np.ndarray, border: np.ndarray) -> np.ndarray:
    """Cells per (border count, configuration): (4, 256) int64.

    Only cells the surface crosses are counted (configurations 0 and 255, all outside or
    all inside, hold no area and are left at 0).
    """
    flat = config.ravel()
    crossed = np.flatnonzero((flat - np.uint8(1)) < np.uint8(254))
    code = flat[crossed].astype(np.intp) | (border.ravel()[crossed].astype(np.intp) << 8)
    return np.bincount(code, minlength=1024).reshape(4, 256).astype(np.int64)


def marching_cubes_area(hist: np.ndarray, spacing: tuple[float, float, float]) -> float:
    """Isosurface area (µm²) of a :func:`cube_histogram` (border cells count half per axis)."""
    table = cube_areas(tuple(float(s) for s in spacing))
    return float(sum(0.5 ** b * float(np.dot(hist[b], table)) for b in range(4)))


def face_counts(mask: np.ndarray, lower_extent: Sequence[int] | None = None) -> np.ndarray:
    """Voxel faces between the region and the rest along z, y, x ((3,) int64).

    Parameters
    ----------
    mask : numpy.ndarray of bool
        The region, with (for a block) one voxel past each upper face that is not the
        volume's.
    lower_extent : sequence of int, optional
        The block's own extent per axis: faces along an axis are counted only between
        voxels within that extent on the other axes (each face counted by one block).
        Default: the whole array.
    """
    ext = tuple(mask.shape) if lower_extent is None else tuple(lower_extent)
    out = np.zeros(3, np.int64)
    for ax in range(3):
        lo = [slice(0, e) for e in ext]
        hi = [slice(0, e) for e in ext]
        lo[ax] = slice(0, mask.shape[ax] - 1)
        hi[ax] = slice(1, mask.shape[ax])
        out[ax] = np.count_nonzero(mask[tuple(lo)] != mask[tuple(hi)])
    return out


def face_area(counts: np.ndarray, spacing: tuple[float, float, float]) -> float:
    """Area (µm²) of :func:`face_counts`: each face weighs the product of the two other
    voxel sizes."""
    area = 0.0
    for ax in range(3):
        face = float(np.prod([spacing[k] for k in range(3) if k != ax]))
        area += face * int(counts[ax])
    return area
