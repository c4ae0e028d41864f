"""Per-particle morphology table: size, position, shape, surface, contacts.

One row per particle label, no per-particle loop on the default path:

- counts, centroids, second moments and bounding boxes from the x-runs of the label
  volume (:func:`electrode_ct.labels.label_runs`, z-slabs): closed-form sums per run,
  ``bincount`` over runs; ids are used as they are (compacted only when very large);
- contacts from face-adjacent label pairs (:func:`electrode_ct.labels.contact_pairs`);
- surface area from weighted 2×2×2 local configurations of every label in one pass
  (:func:`configuration_weights`); per-particle marching cubes and face counting remain
  available as ``surface_method``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from electrode_ct.errors import InputError
from electrode_ct.labels import SLAB_VOXELS, check_labels, contact_pairs, label_runs
from electrode_ct.volume import as_spacing

BASIC_COLUMNS = (
    "label", "n_voxels", "volume_um3", "equivalent_diameter_um",
    "centroid_z", "centroid_y", "centroid_x",
    "centroid_z_um", "centroid_y_um", "centroid_x_um",
    "bbox_z0", "bbox_y0", "bbox_x0", "bbox_z1", "bbox_y1", "bbox_x1",
    "touches_border", "n_neighbours",
)
"""Columns of ``properties="basic"`` (in this order)."""

SHAPE_COLUMNS = (
    "surface_area_um2", "sphericity",
    "axis_major_um", "axis_intermediate_um", "axis_minor_um", "elongation", "flatness",
)
"""Columns added by ``properties="all"``."""

SURFACE_METHODS = ("configurations", "marching_cubes", "face")



DENSE_IDS = 1 << 22
"""Largest label id accumulated in dense per-id arrays; above it ids are compacted first."""


def _run_moments(
    arr: np.ndarray, *, slab_voxels: int = SLAB_VOXELS, second: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Present ids, raw moments and bounding boxes of every label, from x-runs.

    Each run of ``L`` voxels starting at (z, y, x0) contributes closed-form sums
    (Σx = L·x0 + L(L−1)/2, Σx² = L·x0² + x0·L(L−1) + (L−1)L(2L−1)/6, ...), so the voxel
    work is one comparison pass; the ``bincount`` calls run over runs, not voxels.

    ``second=False`` leaves the second moments (columns 4-9) at 0: the ``basic``
    columns need only counts, centroids and boxes.

    Returns
    -------
    ids : numpy.ndarray
        Sorted present label ids (int64), background excluded.
    mom : numpy.ndarray
        float64 (n, 10): count, Σz, Σy, Σx, Σzz, Σyy, Σxx, Σzy, Σzx, Σyx (voxel units).
    box : numpy.ndarray
        int64 (n, 6): z0, y0, x0 (inclusive), z1, y1, x1 (exclusive).
    """
    top = int(arr.max(initial=0))
    if top < DENSE_IDS:
        table = None
        size = top + 1
    else:
        import fastremap

        table = fastremap.unique(arr)
        table = table[table != 0].astype(np.int64)
        size = table.size
    mom = np.zeros((size, 10), dtype=np.float64)
    lo = np.full((size, 3), np.iinfo(np.int64).max, dtype=np.int64)
    hi = np.full((size, 3), -1, dtype=np.int64)
    for runs in label_runs(arr, slab_voxels=slab_voxels):
        if runs.label.size == 0:
            continue
        idx = runs.label.astype(np.intp) if table is None \
            else np.searchsorted(table, runs.label.astype(np.int64))
        z, y, x0, n = runs.z, runs.y, runs.x0, runs.length
        for col, w in enumerate(_run_sums(z, y, x0, n, second)):
            mom[:, col] += np.bincount(idx, weights=w, minlength=size)
        for k, v in enumerate((z, y, x0)):
            np.minimum.at(lo[:, k], idx, v)
        for k, v in enumerate((z, y, x0 + n - 1)):
            np.maximum.at(hi[:, k], idx, v)
    present = np.flatnonzero(mom[:, 0] > 0)
    if table is None:
        present = present[present > 0]
        ids = present.astype(np.int64)
    else:
        ids = table[present]
    box = np.concatenate([lo[present], hi[present] + 1], axis=1)
    return ids, mom[present], box


def _run_sums(z: np.ndarray, y: np.ndarray, x0: np.ndarray, n: np.ndarray,
              second: bool) -> Iterator[np.ndarray]:
    """Per-run n, Σz, Σy, Σx and, with ``second``, Σzz, Σyy, Σxx, Σzy, Σzx, Σyx."""
    sx = n * x0 + n * (n - 1) // 2
    zn, yn = z * n, y * n
    yield from (n, zn, yn, sx)
    if second:
        sxx = n * x0 * x0 + x0 * n * (n - 1) + (n - 1) * n * (2 * n - 1) // 6
        yield from (z * zn, y * yn, sxx, z * yn, z * sx, y * sx)


def _face_area(
    arr: np.ndarray, ids: np.ndarray, spacing: tuple[float, float, float]
) -> np.ndarray:
    """Area per label (aligned with ``ids``) by counting exposed voxel faces, µm²."""
    area = np.zeros(ids.size, dtype=np.float64)
    face_um2 = (spacing[1] * spacing[2], spacing[0] * spacing[2], spacing[0] * spacing[1])
    padded = np.pad(arr, 1)
    for axis in range(3):
        a = np.moveaxis(padded, axis, 0)[:-1]
        b = np.moveaxis(padded, axis, 0)[1:]
        diff = a != b
        for side in (a, b):
            where = side[diff & (side > 0)]
            area += face_um2[axis] * np.bincount(np.searchsorted(ids, where),
                                                 minlength=ids.size)
    return area


def _marching_cubes_area(
    arr: np.ndarray, ids: np.ndarray, boxes: np.ndarray,
    spacing: tuple[float, float, float], sigma: float,
) -> np.ndarray:
    """Area per label: marching cubes on each particle's lightly smoothed mask (µm²).

    A loop over particles on their bounding-box crops: exact reference, ~10 ms a particle.
    """
    from scipy import ndimage as ndi
    from skimage.measure import marching_cubes, mesh_surface_area

    area = np.zeros(ids.size, dtype=np.float64)
    pad = int(np.ceil(3 * sigma)) + 1
    for i, (lab, box) in enumerate(zip(ids, boxes, strict=True)):
        own = arr[box[0]:box[3], box[1]:box[4], box[2]:box[5]] == lab
        crop = np.pad(own, pad).astype(np.float32)
        if sigma > 0:
            crop = ndi.gaussian_filter(crop, sigma, mode="constant")
        if crop.max() <= 0.5:  # a sub-voxel speck vanishes on smoothing: count its faces
            area[i] = _face_area(own.astype(np.uint8), np.array([1]), spacing)[0]
            continue
        verts, faces, _, _ = marching_cubes(crop, 0.5, spacing=spacing)
        area[i] = mesh_surface_area(verts, faces)
    return area


def _areas_by_id(
    arr: np.ndarray, ids: np.ndarray, spacing: tuple[float, float, float], *,
    method: str, sigma: float, boxes: np.ndarray | None = None,
) -> np.ndarray:
    """Surface area of the labels ``ids`` (sorted, present) of a 3-D volume, in µm²."""
    if method == "configurations":
        return _configuration_area(arr, ids, spacing)
    if method == "face":
        return _face_area(arr, ids, spacing)
    if method == "marching_cubes":
        if boxes is None:
            boxes = _run_moments(arr)[2]
        return _marching_cubes_area(arr, ids, boxes, spacing, float(sigma))
    raise InputError(f"surface method: expected one of {SURFACE_METHODS}, got {method!r}")


def particle_surface_areas(
    labels: np.ndarray,
    *,
    spacing: float | Iterable[float] = (1.0, 1.0, 1.0),
    method: str = "configurations",
    sigma: float = 0.75,
) -> np.ndarray:
    """Surface area of every particle, in µm².

    Parameters
    ----------
    labels : numpy.ndarray
        Integer particle labels, 0 = background, (z, y, x).
    spacing : float or 3 floats
        Voxel size (z, y, x) in µm.
    method : {"configurations", "marching_cubes", "face"}
        ``configurations`` (default): weighted 2×2×2 local configurations, all particles
        in one vectorised pass (:func:`configuration_weights`); spheres of radius >= 5
        voxels within 1 %. ``marching_cubes``: each particle's mask smoothed with a
        Gaussian of ``sigma`` voxels and meshed at level 0.5 (a loop over particles,
        ~10x slower; within 1 % from radius 8). ``face``: exposed voxel faces; fast but
        ~50 % too large on smooth surfaces (the staircase bias). Measured biases:
        ``docs/particles.md``.
    sigma : float
        Gaussian smoothing in voxels for ``marching_cubes``.

    Returns
    -------
    numpy.ndarray
        Float64 array of length ``labels.max() + 1`` (index = label id; absent ids and
        element 0 are 0).
    """
    arr = check_labels(labels, ndim=(3,))
    sp = as_spacing(spacing, name="spacing")
    out = np.zeros(int(arr.max(initial=0)) + 1, dtype=np.float64)
    if method not in SURFACE_METHODS:
        raise InputError(f"surface method: expected one of {SURFACE_METHODS}, got {method!r}")
    ids, _, boxes = _run_moments(arr)
    if ids.size:
        out[ids] = _areas_by_id(arr, ids, sp, method=method, sigma=sigma, boxes=boxes)
    return out


_CORNERS = np.array([[(k >> 2) & 1, (k >> 1) & 1, k & 1] for k in range(8)], dtype=np.int64)
"""Corner k of a 2×2×2 cube is offset (dz, dy, dx); bit k of a configuration code."""


def _fibonacci_normals(m: int) -> np.ndarray:
    """2m unit vectors evenly spread over the sphere (m and their opposites)."""
    i = np.arange(m) + 0.5
    cos_t = 1.0 - 2.0 * i / m
    phi = np.pi * (1.0 + 5.0**0.5) * i
    sin_t = np.sqrt(1.0 - cos_t**2)
    v = np.stack([cos_t, sin_t * np.sin(phi), sin_t * np.cos(phi)], axis=1)
    return np.concatenate([v, -v])


def _plane_frequencies(normals: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Expected cubes of each configuration per µm² of a plane, for each normal (m, 256).

    A cube whose corners project to q_0 <= ... <= q_7 on the normal has, for a plane
    offset t uniform between q_k and q_k+1, the corners of the k+1 lowest projections
    inside; the number of such cubes per unit plane area is the interval length divided
    by the cube volume.
    """
    q = normals @ (_CORNERS * spacing).T  # (m, 8)
    order = np.argsort(q, axis=1, kind="stable")
    qs = np.take_along_axis(q, order, axis=1)
    m = len(normals)
    freq = np.zeros((m, 256))
    code = np.zeros(m, dtype=np.int64)
    rows = np.arange(m)
    for k in range(7):
        code |= 1 << order[:, k]
        np.add.at(freq, (rows, code), (qs[:, k + 1] - qs[:, k]) / float(np.prod(spacing)))
    return freq


@lru_cache(maxsize=16)
def configuration_weights(spacing: tuple[float, float, float]) -> np.ndarray:
    """Surface area (µm²) credited to each 2×2×2 configuration of a particle's voxels.

    Weighted local configurations (Lindblad 2005) generalised to any voxel spacing: the
    256 weights minimise, over 2 000 plane orientations spread evenly on the sphere, the
    squared error of the expected area per unit plane area, with a small ridge towards
    the gradient weights |∇χ|·V (χ the trilinear interpolant of the cube's corners at its
    centre), which also give the configurations no plane can produce. The fit is exact
    linear algebra, done once per spacing (~0.1 s).

    Parameters
    ----------
    spacing : tuple of 3 floats
        Voxel size (z, y, x) in µm.

    Returns
    -------
    numpy.ndarray
        float64 (256,): weight of configuration code ``Σ_k [corner k inside] << k``,
        corner k at offset ((k >> 2) & 1, (k >> 1) & 1, k & 1); codes 0 and 255 weigh 0.
    """
    # one BLAS thread: the fit's products and solve must not depend on the thread count
    # (multi-threaded BLAS sums in another order; areas would differ in the last bits)
    with threadpool_limits(limits=1, user_api="blas"):
        return _fit_configuration_weights(np.asarray(spacing, dtype=np.float64))


def _fit_configuration_weights(sp: np.ndarray) -> np.ndarray:
    bits = (np.arange(256)[:, None] >> np.arange(8)) & 1
    grad = np.zeros((256, 3))
    for axis in range(3):
        top = _CORNERS[:, axis] == 1
        grad[:, axis] = (bits[:, top].mean(axis=1) - bits[:, ~top].mean(axis=1)) / sp[axis]
    prior = np.linalg.norm(grad, axis=1) * float(np.prod(sp))
    freq = _plane_frequencies(_fibonacci_normals(1000), sp)
    prior /= float((freq @ prior).mean())
    ridge = 1e-3 * len(freq)
    normal = freq.T @ freq + ridge * np.eye(256)
    weights = np.linalg.solve(normal, freq.sum(axis=0) + ridge * prior)
    weights[[0, 255]] = 0.0
    return weights


def _configuration_area(
    arr: np.ndarray, ids: np.ndarray, spacing: tuple[float, float, float],
    *, slab_voxels: int = SLAB_VOXELS // 2,
) -> np.ndarray:
    """Area per label (aligned with ``ids``) from its 2×2×2 configurations, in one pass.

    The volume is padded with background (the volume border closes a cut particle, as
    for marching cubes); only cubes whose corners are not all equal are visited. In a
    cube, each label present gets the weight of its own corner pattern (the other
    labels count as outside), so a contact face is surface for both particles.
    """
    w = configuration_weights(tuple(float(s) for s in spacing))
    nz, ny, nx = arr.shape
    py, px = ny + 2, nx + 2
    plane = py * px
    offsets = _CORNERS @ np.array([plane, px, 1])
    lut = None
    if ids[-1] < DENSE_IDS:
        lut = np.zeros(int(ids[-1]) + 1, dtype=np.intp)
        lut[ids] = np.arange(ids.size)
    area = np.zeros(ids.size, dtype=np.float64)
    step = max(1, slab_voxels // plane)
    for c0 in range(-1, nz, step):  # cubes whose lower corner is at z = c0 .. c1 - 1
        c1 = min(nz, c0 + step)
        block = np.zeros((c1 - c0 + 2, py, px), dtype=arr.dtype)  # + a spare zero plane
        z_lo, z_hi = max(c0, 0), min(c1 + 1, nz)
        block[z_lo - c0:z_hi - c0, 1:-1, 1:-1] = arr[z_lo:z_hi]
        flat = block.reshape(-1)
        n = (c1 - c0) * plane
        # a cube is mixed when its corners differ: separable along x, then y, then z
        size = flat.size
        mx = flat[1:] != flat[:-1]
        mxy = mx[:size - px - 1] | mx[px:size - 1]
        mxy |= flat[:size - px - 1] != flat[px:size - 1]
        mixed = mxy[:n] | mxy[plane:plane + n]
        mixed |= flat[:n] != flat[plane:plane + n]
        del mx, mxy
        idx = np.flatnonzero(mixed)
        if idx.size == 0:
            continue
        corner = [flat[idx + o] for o in offsets]
        covered = np.zeros(idx.size, dtype=np.int64)
        for k in range(8):  # each label of a cube once, at its first corner
            rows = np.flatnonzero((covered & (1 << k)) == 0)
            if rows.size == 0:
                continue
            lab = corner[k][rows]
            code = np.zeros(rows.size, dtype=np.int64)
            for j in range(k, 8):
                code |= (corner[j][rows] == lab).astype(np.int64) << j
            covered[rows] |= code
            fg = lab != 0
            where = lab[fg]
            pos = lut[where] if lut is not None else np.searchsorted(ids, where)
            area += np.bincount(pos, weights=w[code[fg]], minlength=ids.size)
    return area


def _principal_lengths(mom: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """Full principal axis lengths (µm) of the equivalent ellipsoid, sorted descending."""
    count = np.maximum(mom[:, 0], 1.0)
    mean = mom[:, 1:4] / count[:, None]
    sp = np.asarray(spacing)
    cov = np.empty((mom.shape[0], 3, 3))
    second = {(0, 0): 4, (1, 1): 5, (2, 2): 6, (0, 1): 7, (0, 2): 8, (1, 2): 9}
    for (i, j), col in second.items():
        c = (mom[:, col] / count - mean[:, i] * mean[:, j]) * sp[i] * sp[j]
        cov[:, i, j] = c
        cov[:, j, i] = c
    # each voxel is a box, not a point: add its own variance s²/12 per axis
    cov[:, np.arange(3), np.arange(3)] += sp**2 / 12.0
    eig = np.linalg.eigvalsh(cov)[:, ::-1]
    # a solid ellipsoid of semi-axis a has variance a²/5 along that axis
    return 2.0 * np.sqrt(5.0 * np.clip(eig, 0.0, None))


def morphology_table(
    labels: np.ndarray,
    *,
    spacing: float | Iterable[float] = (1, 1, 1),
    properties: str = "all",
    surface_method: str = "configurations",
    sigma: float = 0.75,
) -> pd.DataFrame:
    """One row per particle: size, position, bounding box, shape, surface and contacts.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer particle label volume (z, y, x), 0 = background (any ids; need not be
        sequential). A 2-D image is treated as one slice.
    spacing : float or 3 floats
        Voxel size (z, y, x) in µm.
    properties : {"all", "basic"}
        ``basic`` skips the surface and shape columns (:data:`SHAPE_COLUMNS`).
    surface_method : {"configurations", "marching_cubes", "face"}
        How ``surface_area_um2`` is measured (see :func:`particle_surface_areas`).
    sigma : float
        Gaussian smoothing in voxels of the ``marching_cubes`` surface.

    Returns
    -------
    pandas.DataFrame
        Columns (units in the names; centroids and boxes in voxels unless ``_um``):

        - ``label`` (uint32 particle id), ``n_voxels``, ``volume_um3``,
          ``equivalent_diameter_um`` (diameter of the sphere of the same volume),
        - ``centroid_z, centroid_y, centroid_x`` (voxels) and ``centroid_*_um`` (µm,
          voxel centre at index × spacing),
        - ``bbox_z0 .. bbox_x1``: bounding box, start inclusive, end exclusive (voxels),
        - ``touches_border``: a voxel on a face of the volume,
        - ``n_neighbours``: number of other particles sharing a voxel face (contacts),
        - with ``properties="all"``: ``surface_area_um2``, ``sphericity``
          = π^(1/3) (6V)^(2/3) / A, ``axis_major_um``, ``axis_intermediate_um``,
          ``axis_minor_um`` (full axes of the ellipsoid with the same second moments),
          ``elongation`` = major / intermediate and ``flatness`` = intermediate / minor
          (both >= 1, the ITK convention).

        An empty label volume gives an empty table with the same columns.

    Raises
    ------
    InputError
        When ``labels`` is not an integer array or ``properties`` is unknown.

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.zeros((5, 5, 5), np.uint32); lab[1:3, 1:3, 1:3] = 7
    >>> morphology_table(lab, properties="basic")[["label", "n_voxels"]].values.tolist()
    [[7, 8]]
    """
    if properties not in ("all", "basic"):
        raise InputError(f"properties: expected 'all' or 'basic', got {properties!r}")
    arr = check_labels(labels, name="labels")
    is_2d = arr.ndim == 2
    if is_2d:
        arr = arr[None]
    sp = as_spacing(spacing, name="spacing")
    columns = list(BASIC_COLUMNS) + (list(SHAPE_COLUMNS) if properties == "all" else [])
    ids, mom, boxes = _run_moments(arr, second=properties == "all")
    n = ids.size
    if n == 0:
        return pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in columns})

    count = mom[:, 0]
    voxel_um3 = float(np.prod(sp))
    volume = count * voxel_um3
    cen = mom[:, 1:4] / count[:, None]
    neighbours = np.zeros(n, dtype=np.int64)
    pairs = contact_pairs(arr)
    if len(pairs):
        neighbours += np.bincount(np.searchsorted(ids, pairs.ravel()), minlength=n)
    shape = np.asarray(arr.shape)
    on_face = (boxes[:, 3:] == shape) | (boxes[:, :3] == 0)
    touches = on_face[:, 1:].any(axis=1) if is_2d else on_face.any(axis=1)

    data: dict[str, Any] = {
        "label": ids.astype(np.uint32),
        "n_voxels": count.astype(np.int64),
        "volume_um3": volume,
        "equivalent_diameter_um": np.cbrt(6.0 * volume / np.pi),
    }
    for k, axis in enumerate("zyx"):
        data[f"centroid_{axis}"] = cen[:, k]
    for k, axis in enumerate("zyx"):
        data[f"centroid_{axis}_um"] = cen[:, k] * sp[k]
    for k, key in enumerate(("bbox_z0", "bbox_y0", "bbox_x0", "bbox_z1", "bbox_y1", "bbox_x1")):
        data[key] = boxes[:, k]
    data["touches_border"] = touches
    data["n_neighbours"] = neighbours
    if properties == "all":
        area = _areas_by_id(arr, ids, sp, method=surface_method, sigma=sigma, boxes=boxes)
        data["surface_area_um2"] = area
        with np.errstate(divide="ignore", invalid="ignore"):
            data["sphericity"] = np.where(
                area > 0, np.pi ** (1 / 3) * (6 * volume) ** (2 / 3) / area, np.nan
            )
        axes = _principal_lengths(mom, sp)
        data["axis_major_um"] = axes[:, 0]
        data["axis_intermediate_um"] = axes[:, 1]
        data["axis_minor_um"] = axes[:, 2]
        data["elongation"] = axes[:, 0] / axes[:, 1]
        data["flatness"] = axes[:, 1] / axes[:, 2]
    return pd.DataFrame(data, columns=columns)


def _dtype(column: str) -> str:
    if column == "label":
        return "uint32"
    if column == "touches_border":
        return "bool"
    if column in ("n_voxels", "n_neighbours") or column.startswith("bbox_"):
        return "int64"
    return "float64"
