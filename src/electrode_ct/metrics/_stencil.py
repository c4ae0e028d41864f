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

from collections.abc import Callable, Iterator

import numpy as np

from electrode_ct.metrics._amg import RedBlackLaplacian

F32 = np.float32
SLAB_VOXELS = 1 << 23
"""Voxels per slab at most (the temporaries are a few float32 slabs: ~0.2 GB)."""


RED, BLACK = 0, 1
Values = Callable[[slice], np.ndarray]
"""``values(r) -> the vector's values over the unknown range r`` (any float dtype)."""


class Layout:
    """Numbering of the voxels of a mask: red first, raster order within a colour.

    Parameters
    ----------
    cond : numpy.ndarray
        3-D boolean mask (z, y, x) of the unknowns (kept by reference, not modified).
    """

    def __init__(self, cond: np.ndarray) -> None:
        self.cond = cond
        nz, ny, nx = cond.shape
        self.plane = ny * nx
        planes = max(2, min(nz // 32, SLAB_VOXELS // self.plane))
        self.planes = planes - planes % 2  # even: a slab starts on a coarse plane
        red_yx = ((np.arange(ny)[:, None] + np.arange(nx)[None, :]) & 1) == 0
        # red cells of planes 0, 1, 2, ... and of planes 1, 2, 3, ... (a slab and halo)
        self._red = [np.stack([red_yx ^ bool((z + s) & 1) for z in range(self.planes + 2)])
                     for s in (0, 1)]
        red = np.array([np.count_nonzero(cond[z] & self._red[z & 1][0]) for z in range(nz)],
                       np.int64)
        every = np.count_nonzero(cond.reshape(nz, -1), axis=1).astype(np.int64)
        self.offsets = (np.concatenate([[0], np.cumsum(red)]),
                        np.concatenate([[0], np.cumsum(every - red)]))
        self.n_red = int(self.offsets[RED][-1])
        self.n = self.n_red + int(self.offsets[BLACK][-1])

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape of the mask (voxels)."""
        return self.cond.shape

    def slabs(self) -> Iterator[tuple[int, int]]:
        """(z0, z1) of every slab of planes, in order (z0 even)."""
        nz = self.shape[0]
        for z0 in range(0, nz, self.planes):
            yield z0, min(z0 + self.planes, nz)

    def range(self, z0: int, z1: int, colour: int) -> slice:
        """Unknowns of one colour (:data:`RED`, :data:`BLACK`) in planes z0..z1 (clipped to
        the volume): a contiguous range."""
        off, nz = self.offsets[colour], self.shape[0]
        base = 0 if colour == RED else self.n_red
        return slice(base + int(off[max(z0, 0)]), base + int(off[min(z1, nz)]))

    def positions(self, z0: int, z1: int, colour: int, halo: int = 0) -> np.ndarray:
        """Flat positions of one colour's unknowns of planes z0 − halo..z1 + halo (clipped
        to the volume) in a dense slab whose first plane is z0 − halo."""
        a, b = max(z0 - halo, 0), min(z1 + halo, self.shape[0])
        red = self._red[(a + colour) & 1]
        if b - a > red.shape[0]:  # more planes than a slab and its halo: repeat the pair
            red = np.resize(red[:2], (b - a, *red.shape[1:]))
        pos = np.flatnonzero(self.cond[a:b] & red[: b - a])
        if a > z0 - halo:
            pos += (a - (z0 - halo)) * self.plane
        return pos

    def inner(self, pos: list[np.ndarray], z0: int, z1: int) -> list[np.ndarray]:
        """Of red and black :meth:`positions` with halo 1: those of planes z0..z1 (views)."""
        a = max(z0 - 1, 0)
        return [p[off[z0] - off[a]: off[z1] - off[a]]
                for p, off in zip(pos, self.offsets, strict=True)]

    def dense(self, z0: int, z1: int, values: Values, colours: tuple[int, ...] = (RED, BLACK),
              *, halo: int = 0, dtype: type = F32) -> tuple[np.ndarray, list[np.ndarray]]:
        """Dense slab of planes z0 − halo..z1 + halo holding the values of the given
        colours' unknowns, zero elsewhere (outside the volume, the mask, the colours).

        Returns the slab and the colours' :meth:`positions` in it."""
        out = np.zeros((z1 - z0 + 2 * halo, *self.shape[1:]), dtype)
        flat = out.reshape(-1)
        pos = []
        for c in colours:
            pos.append(self.positions(z0, z1, c, halo))
            flat[pos[-1]] = values(self.range(z0 - halo, z1 + halo, c))
        return out, pos

    def gather(self, slab: np.ndarray, z0: int, z1: int, out: np.ndarray,
               pos: list[np.ndarray] | None = None) -> None:
        """out[unknowns of planes z0..z1] = their values in the dense ``slab`` of those
        planes (``pos``: their red and black positions in it, when known; then ``slab``
        may have more planes)."""
        flat = slab.reshape(-1)
        for c in (RED, BLACK):
            out[self.range(z0, z1, c)] = flat[self.positions(z0, z1, c) if pos is None
                                              else pos[c]]

    def layer(self, ax: int, k: int) -> np.ndarray:
        """Unknowns (int64) of layer ``k`` along axis ``ax``."""
        parts = []
        for z0, z1 in self.slabs():
            if ax == 0 and not z0 <= k < z1:
                continue
            ids = np.full((z1 - z0, *self.shape[1:]), -1, np.int64)
            for c in (RED, BLACK):
                r = self.range(z0, z1, c)
                ids.reshape(-1)[self.positions(z0, z1, c)] = np.arange(r.start, r.stop)
            sel = np.take(ids, k - z0 if ax == 0 else k, axis=ax)
            parts.append(sel[sel >= 0])
        return np.concatenate(parts)


def neighbour_sum(d: np.ndarray, g: tuple[float, float, float]) -> np.ndarray:
    """Σ g_axis · (value of each face neighbour) at the inner planes of a dense slab
    ``d`` that has one halo plane on each side (``g``: conductance per axis z, y, x).

    Returned in a slab shaped like ``d`` (its halo planes zero): the positions in ``d``
    index it."""
    out = np.empty_like(d)
    out[0] = out[-1] = 0
    s = np.add(d[:-2], d[2:], out=out[1:-1])
    if g[0] != 1.0:
        s *= d.dtype.type(g[0])
    inner = d[1:-1]
    for ax, gax in ((1, g[1]), (2, g[2])):
        src = inner if gax == 1.0 else np.multiply(inner, d.dtype.type(gax))
        lo = (slice(None),) * ax + (slice(0, -1),)
        hi = (slice(None),) * ax + (slice(1, None),)
        s[hi] += src[lo]
        s[lo] += src[hi]
    return out


class MaskLaplacian(RedBlackLaplacian):
    """The 7-point operator of the voxels of ``layout``'s mask, applied matrix-free.

    Same operator as :func:`electrode_ct.metrics._gmg.operator` on the finest grid: link
    conductance ``g[axis]`` between face-neighbouring unknowns, ``g_b`` added to the
    diagonal on the first and last layer along ``flow`` (the fixed faces). Red-black
    Gauss-Seidel sweeps (``smooth``) are :class:`RedBlackLaplacian`'s, on this class's
    half-sweeps.

    Parameters
    ----------
    layout : Layout
        The unknowns.
    g : tuple of 3 float
        Link conductance per axis (z, y, x), exact in float32 (scaled µm).
    g_b : float
        Conductance to a fixed face (scaled µm).
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
            s, pos = self.sums(lambda r: F32(1), z0, z1)
            self.add_faces(s[1:-1], z0, g_b)
            layout.gather(s, z0, z1, self.diag, layout.inner(pos, z0, z1))
        self.d_r = self.diag[: self.n_red]
        self.d_b = self.diag[self.n_red:]

    def add_faces(self, s: np.ndarray, z0: int, value: float, *, outlet: bool = True
                  ) -> np.ndarray:
        """Add ``value`` on the voxels of the slab ``s`` (planes from ``z0``) in the first
        layer along the flow axis (and in the last one when ``outlet``)."""
        n = self.layout.shape[self.flow]
        for k in ((0, n - 1) if outlet else (0,)):
            if self.flow != 0:
                s[(slice(None),) * self.flow + (k,)] += value
            elif z0 <= k < z0 + s.shape[0]:
                s[k - z0] += value
        return s

    def sums(self, values: Values, z0: int, z1: int, colours: tuple[int, ...] = (RED, BLACK),
             dtype: type = F32) -> tuple[np.ndarray, list[np.ndarray]]:
        """Neighbour sums Σ g·value over planes z0..z1 from the given colours' values, in a
        slab with one (zero) halo plane on each side, and those colours' positions in it
        (:meth:`Layout.dense`)."""
        d, pos = self.layout.dense(z0, z1, values, colours, halo=1, dtype=dtype)
        return neighbour_sum(d, self.g), pos

    def matvec(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """y = A x (into ``out`` when given; ``out`` must not be ``x``)."""
        lay = self.layout
        y = np.empty_like(x) if out is None else out
        for z0, z1 in lay.slabs():
            s, pos = self.sums(lambda r: x[r], z0, z1)
            flat = s.reshape(-1)
            for c, p in zip((RED, BLACK), lay.inner(pos, z0, z1), strict=True):
                r = lay.range(z0, z1, c)
                np.multiply(self.diag[r], x[r], out=y[r])
                y[r] -= flat[p]
        return y

    __matmul__ = matvec

    def _relax(self, x: np.ndarray, b: np.ndarray, red: bool) -> None:
        """x_c = (b_c + Σ g·x_other) / d_c on one colour, slab by slab, in place."""
        for z0, z1 in self.layout.slabs():
            self._relax_slab(x, b, RED if red else BLACK, z0, z1, self._positions(z0, z1))

    def smooth(self, x: np.ndarray | None, b: np.ndarray, forward: bool, *,
               out: np.ndarray | None = None) -> np.ndarray:
        """One red-black Gauss-Seidel sweep (:meth:`RedBlackLaplacian.smooth`); from a
        given ``x`` the two half-sweeps run together, the second one a slab behind the
        first (the same arithmetic; each slab's positions are found once)."""
        if x is None:
            return super().smooth(None, b, forward, out=out)
        first = RED if forward else BLACK
        behind = None
        for z0, z1 in self.layout.slabs():
            pos = self._positions(z0, z1)
            self._relax_slab(x, b, first, z0, z1, pos)
            if behind is not None:  # its other-colour halo plane is now up to date
                self._relax_slab(x, b, 1 - first, *behind)
            behind = (z0, z1, pos)
        self._relax_slab(x, b, 1 - first, *behind)
        return x

    def _positions(self, z0: int, z1: int) -> list[np.ndarray]:
        return [self.layout.positions(z0, z1, c, halo=1) for c in (RED, BLACK)]

    def _relax_slab(self, x: np.ndarray, b: np.ndarray, c: int, z0: int, z1: int,
                    pos: list[np.ndarray]) -> None:
        """The colour-``c`` update on planes z0..z1 (``pos``: both colours'
        :meth:`Layout.positions` with halo 1)."""
        lay = self.layout
        d = np.zeros((z1 - z0 + 2, *lay.shape[1:]), F32)
        d.reshape(-1)[pos[1 - c]] = x[lay.range(z0 - 1, z1 + 1, 1 - c)]
        s = neighbour_sum(d, self.g).reshape(-1)
        r = lay.range(z0, z1, c)
        xc = x[r]
        np.add(b[r], s[lay.inner(pos, z0, z1)[c]], out=xc)
        xc /= self.diag[r]

    def residual(self, x: np.ndarray, b: np.ndarray, z0: int, z1: int) -> np.ndarray:
        """(b − A x) at the red unknowns of planes z0..z1 as a dense slab, zero elsewhere
        (after a forward red-black sweep the black residual is exactly zero)."""
        s, _ = self.sums(lambda r: x[r], z0, z1, (BLACK,))
        p = self.layout.positions(z0, z1, RED)
        r = self.layout.range(z0, z1, RED)
        s = s[1:-1]
        flat = s.reshape(-1)
        v = flat[p]
        v += b[r]
        v -= self.diag[r] * x[r]
        flat[:] = 0
        flat[p] = v
        return s


def restrict(op: MaskLaplacian, x: np.ndarray, b: np.ndarray, coarse: Layout) -> np.ndarray:
    """Sums of the red residual b − A x over the 2 × 2 × 2 blocks, as the vector of the
    ``coarse`` cells (float32; the black residual is zero after a forward sweep)."""
    rc = np.empty(coarse.n, F32)
    for z0, z1 in op.layout.slabs():
        blocks = pair_sum(op.residual(x, b, z0, z1))
        coarse.gather(blocks, z0 // 2, z0 // 2 + blocks.shape[0], rc)
    return rc


def prolong_add(op: MaskLaplacian, coarse: Layout, ec: np.ndarray, x: np.ndarray) -> None:
    """x += ec[block of each unknown] in place (the 0/1 prolongation), slab by slab."""
    lay = op.layout
    for z0, z1 in lay.slabs():
        e, _ = coarse.dense(z0 // 2, (z1 + 1) // 2, lambda r: ec[r])
        k, m, n = e.shape
        up = np.broadcast_to(e[:, None, :, None, :, None], (k, 2, m, 2, n, 2))
        up = up.reshape(2 * k, 2 * m, 2 * n)[: z1 - z0, : lay.shape[1], : lay.shape[2]]
        flat = up.reshape(-1)
        for c in (RED, BLACK):
            x[lay.range(z0, z1, c)] += flat[lay.positions(z0, z1, c)]


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
