"""Particle flaws: central intergranular crack networks, radial planar cracks, internal voids.

Every flaw is analytic and attached to its particle (offsets relative to the particle
centre), so it can be evaluated at any sampling density and moves with the particle under
a rigid transform. Crack planes are rendered with an anti-aliased slab profile: a sample
of spacing ``h`` at signed distance ``s`` from the crack mid-plane is covered by the
fraction ``clip((w/2 + h/2 - |s|) / h, 0, min(1, w/h))`` -- the exact overlap of a
width-``w`` slab with the sample's footprint -- so sub-voxel widths darken voxels in
proportion to the crack volume (the partial-volume effect). Only the voxels near a flaw
(:func:`flaw_candidates`) are sub-sampled (:func:`flaw_samples`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

KINDS: tuple[str, ...] = ("network", "radial", "void")
"""Flaw kinds: ``network`` (central intergranular cracks), ``radial`` (planar cracks through
the centre to the surface), ``void`` (internal voids)."""

MAX_PLANES = 6
MAX_VOIDS = 3


@dataclass
class Flaws:
    """Flaw geometry of every particle of a scene (inactive rows are ignored).

    Attributes
    ----------
    active : ndarray of bool, shape (N,)
        Particle carries a flaw.
    kind : ndarray of int, shape (N,)
        Index into :data:`KINDS`.
    severity : ndarray, shape (N,)
        Severity in [0, 1] (drawn from Beta(2, 2)); sets extent, plane count and width.
    normals : ndarray, shape (N, MAX_PLANES, 3)
        Unit normals of the crack planes (z, y, x).
    offsets_um : ndarray, shape (N, MAX_PLANES)
        Plane offsets ``n . p`` relative to the particle centre, µm.
    n_planes : ndarray of int, shape (N,)
        Number of planes used.
    extent_um : ndarray, shape (N,)
        Radius of the sphere (around the centre) the cracks are confined to, µm.
    width_um : ndarray, shape (N,)
        Full crack width, µm.
    void_offsets_um : ndarray, shape (N, MAX_VOIDS, 3)
        Void centres relative to the particle centre, µm.
    void_radius_um : ndarray, shape (N, MAX_VOIDS)
        Void radii, µm (0 = no void).
    """

    active: np.ndarray
    kind: np.ndarray
    severity: np.ndarray
    normals: np.ndarray
    offsets_um: np.ndarray
    n_planes: np.ndarray
    extent_um: np.ndarray
    width_um: np.ndarray
    void_offsets_um: np.ndarray
    void_radius_um: np.ndarray

    def take(self, index: np.ndarray) -> Flaws:
        """Rows at ``index``."""
        return Flaws(**{k: v[index] for k, v in self.__dict__.items()})

    def with_active(self, index: np.ndarray) -> Flaws:
        """The same flaws with exactly the particles at ``index`` active."""
        active = np.zeros(len(self.active), bool)
        active[np.asarray(index, np.int64)] = True
        return replace(self, active=active)

    def transformed(self, rotation: np.ndarray) -> Flaws:
        """Rotate the flaw geometry with its particles (rotation R on (z, y, x) vectors)."""
        return replace(self, normals=self.normals @ rotation.T,
                       void_offsets_um=self.void_offsets_um @ rotation.T)

    def opened(self, openness: np.ndarray) -> Flaws:
        """Flaws at a state of charge: width and extent scaled per particle.

        Parameters
        ----------
        openness : ndarray, shape (N,)
            0 = closed (no flaw), 1 = as drawn; values above 1 open further. Width scales
            linearly, crack extent as ``min(1, 0.4 + 0.6 * openness)`` of the drawn one
            (cracks grow outwards on charge), void radius as ``0.6 + 0.4 * openness``.
        """
        o = np.asarray(openness, float)
        grow = np.minimum(1.0, 0.4 + 0.6 * o)
        return replace(self, active=self.active & (o > 0), width_um=self.width_um * o,
                       extent_um=self.extent_um * grow,
                       void_radius_um=self.void_radius_um * np.where(o > 0, 0.6 + 0.4 * o, 0.0)[
                           :, None])


def draw_flaws(rng: np.random.Generator, radius_um: np.ndarray, *, width_um: float,
               kinds: tuple[str, ...] = KINDS) -> Flaws:
    """Draw one flaw per particle (activate a subset with ``Flaws.active``).

    Parameters
    ----------
    rng : numpy.random.Generator
        Random generator.
    radius_um : ndarray, shape (N,)
        Particle (equivalent) radii, µm.
    width_um : float
        Mean full crack width, µm (each particle: ``width * (0.75 + 0.5 * severity)``).
    kinds : tuple of str
        Kinds to draw from, uniformly.

    Returns
    -------
    Flaws
        With ``active`` all False.
    """
    n = len(radius_um)
    r = np.asarray(radius_um, float)
    kind_idx = np.array([KINDS.index(k) for k in kinds])
    kind = kind_idx[rng.integers(0, len(kind_idx), n)]
    sev = rng.beta(2.0, 2.0, n)
    normals = rng.normal(size=(n, MAX_PLANES, 3))
    normals /= np.linalg.norm(normals, axis=2, keepdims=True)
    centre_jitter = rng.uniform(-0.15, 0.15, (n, MAX_PLANES)) * r[:, None]
    is_net = kind == KINDS.index("network")
    offsets = np.where(is_net[:, None], centre_jitter, 0.0)
    n_planes = np.where(is_net, 3 + np.floor(sev * 3.999), 1 + np.floor(sev * 1.999)).astype(int)
    n_planes = np.where(kind == KINDS.index("void"), 0, n_planes)
    extent = np.where(is_net, (0.35 + 0.5 * sev) * r, 1.2 * r)
    width = width_um * (0.75 + 0.5 * sev)
    vdir = rng.normal(size=(n, MAX_VOIDS, 3))
    vdir /= np.linalg.norm(vdir, axis=2, keepdims=True)
    vrad = (0.12 + 0.18 * sev)[:, None] * r[:, None] * rng.uniform(0.6, 1.0, (n, MAX_VOIDS))
    vpos = vdir * rng.uniform(0.0, 0.45, (n, MAX_VOIDS, 1)) * r[:, None, None]
    n_voids = 1 + np.floor(sev * 2.999).astype(int)
    vrad = np.where((np.arange(MAX_VOIDS)[None] < n_voids[:, None])
                    & (kind == KINDS.index("void"))[:, None], vrad, 0.0)
    return Flaws(active=np.zeros(n, bool), kind=kind, severity=sev, normals=normals,
                 offsets_um=offsets, n_planes=n_planes, extent_um=extent, width_um=width,
                 void_offsets_um=vpos, void_radius_um=vrad)


def flaw_reach_um(flaws: Flaws, i: int) -> float:
    """Radius (µm, around the particle centre) that contains all of particle ``i``'s flaws
    (0 when it has none)."""
    if not flaws.active[i]:
        return 0.0
    reach = 0.0
    if flaws.n_planes[i] > 0 and flaws.width_um[i] > 0:
        reach = float(flaws.extent_um[i])
    voids = flaws.void_radius_um[i] > 0
    if voids.any():
        far = np.linalg.norm(flaws.void_offsets_um[i], axis=1) + flaws.void_radius_um[i]
        reach = max(reach, float(far[voids].max()))
    return reach


def flaw_candidates(flaws: Flaws, i: int, zc: np.ndarray, yc: np.ndarray, xc: np.ndarray, *,
                    sample_um: float, reach_um: float) -> np.ndarray | None:
    """Voxels (centres on a grid) that a flaw of particle ``i`` may partly cover.

    Parameters
    ----------
    flaws : Flaws
        Scene flaws.
    i : int
        Particle index.
    zc, yc, xc : ndarray of float32
        Voxel-centre coordinates relative to the particle centre along each axis, µm.
    sample_um : float
        Sub-sample spacing, µm (anti-aliasing footprint of each sub-sample).
    reach_um : float
        Largest distance from a voxel centre to one of its sub-samples, µm.

    Returns
    -------
    ndarray of bool, shape (len(zc), len(yc), len(xc)), or None
        True where some sub-sample may be covered; None when the particle has no active
        flaw.
    """
    if not flaws.active[i]:
        return None
    shape = (len(zc), len(yc), len(xc))
    cand = np.zeros(shape, bool)
    k = int(flaws.n_planes[i])
    zz = (zc * zc)[:, None, None]
    yx = (yc * yc)[:, None] + (xc * xc)[None, :]
    if k > 0 and flaws.width_um[i] > 0:
        thr = np.float32((flaws.width_um[i] + sample_um) / 2 + reach_um)
        for p in range(k):
            n = flaws.normals[i, p].astype(np.float32)
            s = (n[0] * zc - np.float32(flaws.offsets_um[i, p]))[:, None, None] + (
                n[1] * yc[:, None] + n[2] * xc[None, :])[None]
            np.abs(s, out=s)
            cand |= s < thr
        cand &= (zz + yx[None]) < np.float32((flaws.extent_um[i] + reach_um) ** 2)
    for v in np.flatnonzero(flaws.void_radius_um[i] > 0):
        o = flaws.void_offsets_um[i, v].astype(np.float32)
        d2 = ((zc - o[0]) ** 2)[:, None, None] + (((yc - o[1]) ** 2)[:, None]
                                                 + ((xc - o[2]) ** 2)[None, :])[None]
        cand |= d2 < np.float32((flaws.void_radius_um[i, v] + sample_um / 2 + reach_um) ** 2)
    return cand


def flaw_samples(flaws: Flaws, i: int, points: np.ndarray, offsets: np.ndarray,
                 sample_um: float) -> np.ndarray:
    """Fraction of each sub-sample covered by particle ``i``'s flaws.

    Crack planes use the exact overlap of a width-``w`` slab with the sub-sample's
    footprint, ``clip((w/2 + h/2 - |s|) / h, 0, min(1, w/h))``, inside the crack sphere;
    voids a linear ramp over one sub-sample spacing.

    Parameters
    ----------
    flaws : Flaws
        Scene flaws (particle ``i`` active).
    i : int
        Particle index.
    points : ndarray, shape (M, 3)
        Voxel centres relative to the particle centre, µm.
    offsets : ndarray, shape (S, 3)
        Sub-sample offsets from a voxel centre, µm.
    sample_um : float
        Sub-sample spacing ``h``, µm.

    Returns
    -------
    ndarray of float32, shape (M, S)
        Covered fraction in [0, 1].
    """
    h = float(sample_um)
    pts = np.asarray(points, np.float32)
    offs = np.asarray(offsets, np.float32)
    cov = np.zeros((len(pts), len(offs)), np.float32)
    k = int(flaws.n_planes[i])
    if k > 0 and flaws.width_um[i] > 0:
        w = float(flaws.width_um[i])
        top = min(1.0, w / h)
        normals = flaws.normals[i, :k].astype(np.float32)
        base = pts @ normals.T - flaws.offsets_um[i, :k].astype(np.float32)  # (M, k)
        along = offs @ normals.T  # (S, k)
        for p in range(k):
            s = np.abs(base[:, p, None] + along[None, :, p])
            s -= np.float32((w + h) / 2)
            s *= np.float32(-1 / h)
            np.clip(s, 0.0, top, out=s)
            np.maximum(cov, s, out=cov)
        cov *= _square_distance(pts, offs) <= np.float32(flaws.extent_um[i] ** 2)
    for v in np.flatnonzero(flaws.void_radius_um[i] > 0):
        s = _square_distance(pts - flaws.void_offsets_um[i, v].astype(np.float32), offs)
        np.sqrt(s, out=s)
        s -= np.float32(flaws.void_radius_um[i, v])
        s *= np.float32(-1 / h)
        s += np.float32(0.5)
        np.clip(s, 0.0, 1.0, out=s)
        np.maximum(cov, s, out=cov)
    return cov


def _square_distance(points: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``|p + o|²`` for every point and offset, (M, S) float32 (one matrix product)."""
    left = np.empty((len(points), 5), np.float32)
    left[:, :3] = 2 * points
    left[:, 3] = (points * points).sum(axis=1)
    left[:, 4] = 1.0
    right = np.empty((5, len(offsets)), np.float32)
    right[:3] = offsets.T
    right[3] = 1.0
    right[4] = (offsets * offsets).sum(axis=1)
    out = left @ right
    np.maximum(out, 0, out=out)
    return out


def expected_flaw_voxels_um3(flaws: Flaws, radius_um: np.ndarray, voxel_um: float) -> np.ndarray:
    """Rough volume per particle (µm³) of the voxels its flaws will fill at least half of.

    A slab of width ``w`` fills half of about ``clip(2 w - h, 0, w) / h`` voxels per voxel
    column of size ``h`` (none when ``w <= h / 2``). Used to pre-compensate fractions.
    """
    r = np.asarray(radius_um, float)
    reach = np.minimum(flaws.extent_um, r)
    eff = np.clip(2 * flaws.width_um - voxel_um, 0, flaws.width_um)
    planes = flaws.n_planes * np.pi * reach**2 * eff * 0.8
    voids = (4 / 3 * np.pi * flaws.void_radius_um**3).sum(axis=1)
    return np.where(flaws.active, planes + voids, 0.0)
