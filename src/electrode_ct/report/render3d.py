"""Offline 3-D views of labelled particles: marching-cubes meshes, shaded, in matplotlib.

No display and no OpenGL: each particle's surface is a
:func:`skimage.measure.marching_cubes` mesh of its (down-sampled) mask, drawn as a
:class:`~mpl_toolkits.mplot3d.art3d.Poly3DCollection` with Lambert shading under an
orthographic projection, on the Agg backend. The cost is capped: at most
``max_particles`` particles (the largest ones, plus every particle asked to be
highlighted up to the same cap) and a volume down-sampled by a whole stride so that its
longest side is at most ``max_side`` voxels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from electrode_ct.errors import InputError
from electrode_ct.report.figures import plt  # the Agg backend, no display

LIGHT = np.array([0.45, 0.35, 0.82])
"""Direction of the light (z, y, x components in the mesh frame; normalised on use)."""


def largest(labels: np.ndarray, ids: Sequence[int] | None, cap: int) -> np.ndarray:
    """The ``cap`` largest particles (voxel count in ``labels``) among ``ids`` (all present
    ids when None), largest first; ids absent from ``labels`` are left out."""
    count = np.bincount(labels.ravel())
    present = np.flatnonzero(count)
    present = present[present > 0]
    want = present if ids is None else np.intersect1d(present, np.asarray(ids, np.int64))
    order = np.argsort(-count[want], kind="stable")
    return want[order][:cap]


def particle_meshes(labels: np.ndarray, spacing: Sequence[float], ids: Sequence[int], *,
                    stride: int = 1) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Marching-cubes mesh of every particle ``ids`` of a label volume.

    Parameters
    ----------
    labels : numpy.ndarray
        (z, y, x) integer labels (0 = background).
    spacing : sequence of 3 float
        Voxel size (z, y, x), µm.
    ids : sequence of int
        Particles to mesh (ids absent from the volume are skipped).
    stride : int
        Down-sampling step applied to the volume first (1 = full resolution).

    Returns
    -------
    dict
        ``id -> (vertices (n, 3) in µm (z, y, x), faces (m, 3))``.
    """
    from scipy import ndimage
    from skimage.measure import marching_cubes

    sub = np.asarray(labels)[::stride, ::stride, ::stride]
    sp = np.asarray(spacing, np.float64) * stride
    boxes = ndimage.find_objects(sub)
    out = {}
    for i in ids:
        box = boxes[int(i) - 1] if 0 < int(i) <= len(boxes) else None
        if box is None:
            continue
        mask = np.pad(sub[box] == i, 1).astype(np.float32)
        verts, faces, _, _ = marching_cubes(mask, 0.5, spacing=tuple(sp))
        origin = np.array([s.start - 1 for s in box]) * sp
        out[int(i)] = (verts + origin, faces)
    return out


def _shade(tris: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Lambert-shaded RGBA per triangle (two-sided, ambient 0.35)."""
    n = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    lam = np.abs(n @ (LIGHT / np.linalg.norm(LIGHT)))
    rgb = np.asarray(colour, np.float64)[None, :3] * (0.35 + 0.65 * lam[:, None])
    return np.c_[np.clip(rgb, 0, 1), np.ones(len(tris))]


def render_particles(labels: np.ndarray, spacing: Sequence[float], *,
                     colours: Mapping[int, Any] | None = None, ids: Sequence[int] | None = None,
                     max_particles: int = 80, max_side: int = 96, ax: Any = None,
                     title: str = "", elev: float = 25.0,
                     azim: float = -55.0) -> tuple[Figure, dict[str, int]]:
    """A shaded 3-D view of the particles of a label volume.

    Parameters
    ----------
    labels : numpy.ndarray
        (z, y, x) integer labels (0 = background).
    spacing : sequence of 3 float
        Voxel size (z, y, x), µm.
    colours : mapping, optional
        ``id -> colour`` (any matplotlib colour); default a seeded random colour per id.
    ids : sequence of int, optional
        Particles to draw (default all); the ``max_particles`` largest of them are drawn.
    max_particles : int
        Most particles drawn (>= 1).
    max_side : int
        The volume is down-sampled by the smallest whole stride that brings its longest
        side to at most this many voxels (>= 8).
    ax : mpl_toolkits.mplot3d.Axes3D, optional
        Axes to draw into (default a new figure).
    title : str
        Axes title.
    elev, azim : float
        View angles, degrees.

    Returns
    -------
    (matplotlib.figure.Figure, dict)
        The figure and ``n_particles`` (drawn), ``n_faces``, ``stride``.

    Raises
    ------
    InputError
        A label volume that is not 3-D or integer, ``max_particles`` < 1, ``max_side`` < 8.
    """
    import matplotlib.colors as mcolors
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    lab = np.asarray(labels)
    if lab.ndim != 3 or not np.issubdtype(lab.dtype, np.integer):
        raise InputError(f"labels: expected a 3-D integer label volume, got {lab.ndim}-D "
                         f"{lab.dtype}")
    if max_particles < 1 or max_side < 8:
        raise InputError(f"render: expected max_particles >= 1 and max_side >= 8, got "
                         f"{max_particles}, {max_side}")
    stride = max(1, int(np.ceil(max(lab.shape) / max_side)))
    chosen = largest(lab[::stride, ::stride, ::stride], ids, max_particles)
    meshes = particle_meshes(lab, spacing, chosen, stride=stride)
    rng = np.random.default_rng(0)
    polys, faces_rgba = [], []
    for i, (verts, faces) in meshes.items():
        tris = verts[faces][:, :, ::-1]  # (x, y, z) for matplotlib
        c = mcolors.to_rgba(colours[i]) if colours and i in colours else \
            (*(0.25 + 0.7 * rng.random(3)), 1.0)
        polys.append(tris)
        faces_rgba.append(_shade(tris, np.asarray(c)))
    if ax is None:
        fig = plt.figure(figsize=(5, 4.5))
        ax = fig.add_subplot(projection="3d")
    fig = ax.figure
    extent = np.asarray(lab.shape, np.float64) * np.asarray(spacing, np.float64)
    if polys:
        ax.add_collection3d(Poly3DCollection(np.concatenate(polys),
                                             facecolors=np.concatenate(faces_rgba),
                                             edgecolors="none"))
    ax.set(xlim=(0, extent[2]), ylim=(0, extent[1]), zlim=(0, extent[0]),
           xlabel="x (µm)", ylabel="y (µm)", zlabel="z (µm)")
    ax.set_box_aspect(tuple(extent[::-1]))
    ax.set_proj_type("ortho")
    ax.view_init(elev=elev, azim=azim)
    ax.set_title(title, fontsize=9)
    return fig, {"n_particles": len(meshes), "stride": stride,
                 "n_faces": int(sum(len(p) for p in polys))}
