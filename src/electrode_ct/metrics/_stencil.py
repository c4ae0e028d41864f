"""Matrix-free 7-point finite-volume operator on a voxel mask, a slab of planes at a time.

The finest level of the lean tortuosity solver (:mod:`electrode_ct.metrics._gmg`). The
unknowns are the voxels of the conducting mask, red ((z + y + x) even) first and each
colour in raster order, so the unknowns of one colour in planes z0..z1 form one
contiguous range (:class:`Layout`, from per-plane counts). A product scatters the values
of a slab of planes (plus one halo plane on each side) into a dense float32 slab, zero
outside the mask, adds the conductance-weighted face neighbours by shifted slices (a
neighbour outside the mask adds its zero: no link table is needed) and gathers the sums
at the slab's conducting voxels. Every link joins a red and a black voxel, so the sums at
one colour read the other colour only: a red-black Gauss-Seidel half-sweep updates its
colour in place, slab after slab.

Memory: the mask (1 byte per voxel, the caller's), the float32 diagonal (4 bytes per
unknown) and slab-sized temporaries (:data:`SLAB_VOXELS`); a CSR matrix of the same
operator takes ~24 bytes per unknown.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from electrode_ct.metrics._amg import RedBlackLaplacian

F32 = np.float32
SLAB_VOXELS = 1 << 23
"""Voxels per slab at most (the temporaries are a few float32 slabs: ~0.2 GB)."""


class Layout:
    """Numbering of the voxels of a mask: red first, raster order within a colour.

    Parameters
    ----------
    cond : numpy.ndarray
        3-D boolean mask (z, y, x) of the unknowns (kept by reference).
    """

    def __init__(self, cond: np.ndarray) -> None:
        self.cond = cond
        nz, ny, nx = cond.shape
        even = ((np.arange(ny)[:, None] + np.arange(nx)[None, :]) & 1) == 0
        self._red_yx = np.stack([even, ~even])  # red cells of an even / an odd plane
        red = np.array([np.count_nonzero(cond[z] & self._red_yx[z & 1]) for z in range(nz)],
                       np.int64)
        every = np.count_nonzero(cond.reshape(nz, -1), axis=1).astype(np.int64)
        self.red_off = np.concatenate([[0], np.cumsum(red)])
        self.black_off = np.concatenate([[0], np.cumsum(every - red)])
        self.n_red = int(self.red_off[-1])
        self.n = self.n_red + int(self.black_off[-1])
        planes = max(2, min(nz // 32, SLAB_VOXELS // (ny * nx)))
        self.planes = planes - planes % 2  # even: slabs start on a coarse plane

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape of the mask (voxels)."""
        return self.cond.shape

    def slabs(self) -> Iterator[tuple[int, int]]:
        """(z0, z1) of every slab, in order (z0 even)."""
        nz = self.shape[0]
        for z0 in range(0, nz, self.planes):
            yield z0, min(z0 + self.planes, nz)

    def masks(self, z0: int, z1: int) -> tuple[np.ndarray, np.ndarray]:
        """Red and black unknowns of planes z0..z1 as boolean slabs."""
        pick = np.arange(z0, z1) & 1
        c = self.cond[z0:z1]
        return c & self._red_yx[pick], c & self._red_yx[1 - pick]

    def ranges(self, z0: int, z1: int) -> tuple[slice, slice]:
        """Red and black unknown ranges of planes z0..z1."""
        nr = self.n_red
        return (slice(int(self.red_off[z0]), int(self.red_off[z1])),
                slice(nr + int(self.black_off[z0]), nr + int(self.black_off[z1])))

    def dense(self, z0: int, z1: int, red: np.ndarray | None, black: np.ndarray | None, *,
              halo: int = 0, dtype: type = F32) -> np.ndarray:
        """Dense slab of planes z0 − halo..z1 + halo (zero outside the volume and the mask)
        holding the given red and black values of the planes inside the volume.

        ``red`` / ``black``: the vector's values over :meth:`ranges` of those planes, or
        None (zeros)."""
        ny, nx = self.shape[1:]
        out = np.zeros((z1 - z0 + 2 * halo, ny, nx), dtype)
        a, b = max(z0 - halo, 0), min(z1 + halo, self.shape[0])
        view = out[a - (z0 - halo): b - (z0 - halo)]
        m_red, m_black = self.masks(a, b)
        if red is not None:
            view[m_red] = red
        if black is not None:
            view[m_black] = black
        return out

    def gather(self, slab: np.ndarray, z0: int, z1: int, out: np.ndarray) -> None:
        """Write the values of a dense slab of planes z0..z1 at its unknowns into ``out``."""
        rs, bs = self.ranges(z0, z1)
        m_red, m_black = self.masks(z0, z1)
        out[rs] = slab[m_red]
        out[bs] = slab[m_black]

    def halo_ranges(self, z0: int, z1: int) -> tuple[slice, slice]:
        """:meth:`ranges` of planes z0 − 1..z1 + 1 clipped to the volume."""
        return self.ranges(max(z0 - 1, 0), min(z1 + 1, self.shape[0]))

    def indices(self, z0: int, z1: int) -> np.ndarray:
        """Dense int64 slab of the unknown index of every voxel of planes z0..z1 (−1 off
        the mask)."""
        rs, bs = self.ranges(z0, z1)
        out = np.full((z1 - z0, *self.shape[1:]), -1, np.int64)
        m_red, m_black = self.masks(z0, z1)
        out[m_red] = np.arange(rs.start, rs.stop)
        out[m_black] = np.arange(bs.start, bs.stop)
        return out

    def layer(self, ax: int, k: int) -> np.ndarray:
        """Unknowns (int64) of layer ``k`` along axis ``ax``."""
        parts = []
        for z0, z1 in self.slabs():
            if ax == 0 and not z0 <= k < z1:
                continue
            sel = np.take(self.indices(z0, z1), k - z0 if ax == 0 else k, axis=ax)
            parts.append(sel[sel >= 0])
        return np.concatenate(parts)


def neighbour_sum(d: np.ndarray, g: tuple[float, float, float]) -> np.ndarray:
    """Σ g_axis · (value of each face neighbour) at the inner planes of a dense slab
    ``d`` that has one halo plane on each side (``g``: conductances per axis, µm)."""
    s = np.add(d[:-2], d[2:])
    if g[0] != 1.0:
        s *= d.dtype.type(g[0])
    inner = d[1:-1]
    t = np.zeros_like(s)
    for ax, gax in ((1, g[1]), (2, g[2])):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[ax], hi[ax] = slice(0, -1), slice(1, None)
        lo, hi = tuple(lo), tuple(hi)
        t[hi] = inner[lo]  # the neighbour below along ax
        t[tuple(slice(None) if a != ax else 0 for a in range(3))] = 0
        t[lo] += inner[hi]  # and the one above
        if gax != 1.0:
            t *= d.dtype.type(gax)
        s += t
    return s


class MaskLaplacian(RedBlackLaplacian):
    """The 7-point operator of the voxels of ``layout``'s mask, applied matrix-free.

    Same operator as :func:`electrode_ct.metrics._gmg.operator` on the finest grid: link
    conductance ``g[axis]`` between face-neighbouring unknowns, ``g_b`` added to the
    diagonal on the first and last layer along ``flow`` (the fixed faces).

    Parameters
    ----------
    layout : Layout
        The unknowns.
    g : tuple of 3 float
        Link conductance per axis (z, y, x), exact in float32 (µm, scaled).
    g_b : float
        Conductance to a fixed face (µm, scaled).
    flow : int
        Axis of the fixed faces.
    """

    def __init__(self, layout: Layout, g: tuple[float, float, float], g_b: float,
                 flow: int) -> None:
        self.layout, self.g, self.g_b, self.flow = layout, g, g_b, flow
        self.n_red, self.n = layout.n_red, layout.n
        self.shape = (self.n, self.n)
        self.dtype = np.dtype(F32)
        self.diag = np.empty(self.n, F32)
        for z0, z1 in layout.slabs():
            ones = layout.dense(z0, z1, F32(1), F32(1), halo=1)
            s = self.add_faces(neighbour_sum(ones, g), z0, F32(g_b))
            layout.gather(s, z0, z1, self.diag)
        self.d_r = self.diag[: self.n_red]
        self.d_b = self.diag[self.n_red:]

    def add_faces(self, s: np.ndarray, z0: int, value: float, *, outlet: bool = True
                  ) -> np.ndarray:
        """Add ``value`` on the voxels of slab ``s`` (planes from ``z0``) in the first layer
        along the flow axis (and the last one when ``outlet``)."""
        n = self.layout.shape[self.flow]
        for k in ((0, n - 1) if outlet else (0,)):
            if self.flow == 0:
                if z0 <= k < z0 + s.shape[0]:
                    s[k - z0] += value
            else:
                sl = [slice(None)] * 3
                sl[self.flow] = k
                s[tuple(sl)] += value
        return s

    def sums(self, x: np.ndarray, z0: int, z1: int, *, red: bool = True,
             black: bool = True) -> np.ndarray:
        """Neighbour sums Σ g·x over planes z0..z1 from the red and/or black values."""
        rs, bs = self.layout.halo_ranges(z0, z1)
        d = self.layout.dense(z0, z1, x[rs] if red else None, x[bs] if black else None,
                              halo=1, dtype=x.dtype)
        return neighbour_sum(d, self.g)

    def matvec(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """y = A x (into ``out`` when given; ``out`` must not be ``x``)."""
        y = np.empty_like(x) if out is None else out
        for z0, z1 in self.layout.slabs():
            s = self.sums(x, z0, z1)
            s = np.negative(s, out=s)
            self.layout.gather(s, z0, z1, y)
            rs, bs = self.layout.ranges(z0, z1)
            for r in (rs, bs):
                y[r] += self.diag[r] * x[r]
        return y

    __matmul__ = matvec

    def _relax(self, x: np.ndarray, b: np.ndarray, red: bool) -> None:
        """x_c = (b_c + Σ g·x_other) / d_c on one colour, slab by slab, in place."""
        for z0, z1 in self.layout.slabs():
            s = self.sums(x, z0, z1, red=not red, black=red)
            m = self.layout.masks(z0, z1)[0 if red else 1]
            r = self.layout.ranges(z0, z1)[0 if red else 1]
            xc = x[r]
            np.add(b[r], s[m], out=xc)
            xc /= self.diag[r]

    def residual(self, x: np.ndarray, b: np.ndarray, z0: int, z1: int) -> np.ndarray:
        """(b − A x) at the red unknowns of planes z0..z1 as a dense slab, zero elsewhere
        (after a forward red-black sweep the black residual is exactly zero)."""
        s = self.sums(x, z0, z1, red=False)
        m = self.layout.masks(z0, z1)[0]
        r = self.layout.ranges(z0, z1)[0]
        s[~m] = 0
        s[m] += b[r] - self.diag[r] * x[r]
        return s


def restrict(op: MaskLaplacian, x: np.ndarray, b: np.ndarray, coarse: Layout) -> np.ndarray:
    """Sums of the red residual b − A x over the 2 × 2 × 2 blocks, as the coarse vector of
    ``coarse`` (float32; the black residual is zero after a forward sweep)."""
    rc = np.empty(coarse.n, F32)
    for z0, z1 in op.layout.slabs():
        blocks = pair_sum(op.residual(x, b, z0, z1))
        c0 = z0 // 2
        coarse.gather(blocks, c0, c0 + blocks.shape[0], rc)
    return rc


def prolong_add(op: MaskLaplacian, coarse: Layout, ec: np.ndarray, x: np.ndarray) -> None:
    """x += ec[block of each unknown] in place (the 0/1 prolongation), slab by slab."""
    lay = op.layout
    for z0, z1 in lay.slabs():
        c0, c1 = z0 // 2, (z1 + 1) // 2
        rs, bs = coarse.ranges(c0, c1)
        e = coarse.dense(c0, c1, ec[rs], ec[bs])
        for ax in range(3):
            e = e.repeat(2, axis=ax)
        e = e[: z1 - z0, : lay.shape[1], : lay.shape[2]]
        rs, bs = lay.ranges(z0, z1)
        m_red, m_black = lay.masks(z0, z1)
        x[rs] += e[m_red]
        x[bs] += e[m_black]


def pair_sum(a: np.ndarray, axes: tuple[int, ...] = (0, 1, 2)) -> np.ndarray:
    """Sum of neighbouring pairs along ``axes`` (odd lengths padded with zeros)."""
    for ax in axes:
        if a.shape[ax] % 2:
            pad = [(0, 0)] * a.ndim
            pad[ax] = (0, 1)
            a = np.pad(a, pad)
        even = [slice(None)] * a.ndim
        odd = [slice(None)] * a.ndim
        even[ax], odd[ax] = slice(0, None, 2), slice(1, None, 2)
        a = a[tuple(even)] + a[tuple(odd)]
    return a
