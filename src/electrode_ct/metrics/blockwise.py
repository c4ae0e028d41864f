"""Phase metrics as exact reductions over blocks, on the block engine (serially or on Dask).

Every function reads a label volume block by block (a :class:`~electrode_ct.compute.ZarrRef`,
or a numpy array when ``client`` is None), has each block return small integer partials
(voxel counts, cube-configuration histograms, face counts, interface voxels) and merges them
exactly, so the result equals the in-memory function's on the whole volume (identical
counts and fractions; areas to rounding, within 1e-9 relative).

Halo rules: fractions and profiles read no halo; face counting, marching cubes and
interface voxels read 1 voxel (a block owns the faces and cubes on its upper boundaries
only, so each is counted once); the ``gradient`` surface method reads the Gaussian's
radius plus one. Connected components and percolation are in
:mod:`electrode_ct.metrics.components_blockwise`; chord lengths and local thickness, whose
halo follows a bound on their size, in :mod:`electrode_ct.metrics.sizes_blockwise`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from electrode_ct.blocks import Block
from electrode_ct.compute.engine import Progress, Source, ZarrRef, reduce_blocks
from electrode_ct.metrics._phase import axis_index
from electrode_ct.metrics.components_blockwise import components_blockwise, percolation_blockwise
from electrode_ct.metrics.fractions import (
    fractions_from_counts,
    phase_keys,
    profile_table,
    reported_values,
)
from electrode_ct.metrics.quality import interface_counts, interface_result
from electrode_ct.metrics.sizes_blockwise import (
    chord_length_summary_blockwise,
    chord_lengths_blockwise,
    local_thickness_blockwise,
    thickness_distribution_blockwise,
)
from electrode_ct.metrics.surface import (
    Region,
    assemble,
    check_method,
    gradient_halo,
    phase_groups,
    region_statistics,
    statistic_area,
)
from electrode_ct.volume import as_spacing

__all__ = [
    "chord_length_summary_blockwise",
    "chord_lengths_blockwise",
    "components_blockwise",
    "fractions_blockwise",
    "interface_percent_blockwise",
    "local_thickness_blockwise",
    "percolation_blockwise",
    "phase_profile_blockwise",
    "surface_areas_blockwise",
    "surfaces_and_interfaces_blockwise",
    "thickness_distribution_blockwise",
    "value_counts_blockwise",
]


def volume_shape(src: Source) -> tuple[int, ...]:
    """Shape of a block source (a Zarr reference or an array)."""
    return tuple(int(n) for n in (src.open("r") if isinstance(src, ZarrRef) else src).shape)


def region_of(block: Block, shape: Sequence[int]) -> Region:
    """Where ``block`` lies: its interior in the region read, whether it is on the lower /
    upper face of the volume along each axis."""
    return (block.interior, tuple(w.start == 0 for w in block.write),
            tuple(w.stop == n for w, n in zip(block.write, shape, strict=True)))


def _value_counts(region: np.ndarray, block: Block) -> tuple[np.ndarray, np.ndarray]:
    lab = block.crop(region)
    if lab.dtype.kind == "u" and lab.dtype.itemsize <= 2:  # small labels: no sort
        counts = np.bincount(lab.ravel())
        present = np.flatnonzero(counts)
        return present, counts[present]
    return np.unique(lab, return_counts=True)


def value_counts_blockwise(src: Source, *, block_shape: Sequence[int], client: Any = None,
                           progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Label values present and their voxel counts (sorted values, int64 counts)."""
    parts = reduce_blocks(_value_counts, src, block_shape=block_shape, client=client,
                          progress=progress)
    vals = np.unique(np.concatenate([v for v, _ in parts]).astype(np.int64))
    counts = np.zeros(vals.size, np.int64)
    for v, c in parts:
        counts[np.searchsorted(vals, v.astype(np.int64))] += c
    return vals, counts


def fractions_blockwise(src: Source, *, class_map: Mapping[str, int] | None = None,
                        values: Iterable[int] | None = None, block_shape: Sequence[int],
                        client: Any = None, progress: Progress | None = None
                        ) -> dict[str, float]:
    """Volume fraction of each phase, as :func:`~electrode_ct.metrics.volume_fractions`
    (without a mask).

    Parameters
    ----------
    src : ZarrRef or numpy.ndarray
        Label volume.
    class_map, values
        As for :func:`~electrode_ct.metrics.volume_fractions`.
    block_shape : sequence of int
        Block shape in voxels (no halo).
    client : distributed.Client, optional
        One task per block on the cluster; None runs serially.
    progress : callable, optional
        Wraps the iteration over finished blocks.

    Returns
    -------
    dict
        ``{key: fraction}`` (0–1), keys and order as the in-memory function.
    """
    present, counts = value_counts_blockwise(src, block_shape=block_shape, client=client,
                                             progress=progress)
    return fractions_of_counts(present, counts, class_map=class_map, values=values)


def fractions_of_counts(present: np.ndarray, counts: np.ndarray, *,
                        class_map: Mapping[str, int] | None = None,
                        values: Iterable[int] | None = None) -> dict[str, float]:
    """Volume fractions from :func:`value_counts_blockwise` (see :func:`fractions_blockwise`)."""
    vals = reported_values(present, values, class_map)
    lookup = dict(zip(present.tolist(), counts.tolist(), strict=True))
    mine = np.array([lookup.get(int(v), 0) for v in vals], np.int64)
    return fractions_from_counts(mine, vals, int(counts.sum()), class_map)


def _profile_partial(axis: int) -> Any:
    def partial(region: np.ndarray, block: Block) -> tuple[int, np.ndarray, np.ndarray]:
        lab = block.crop(region)
        lo, hi = int(lab.min()), int(lab.max())
        counts = np.stack([np.bincount(np.take(lab, k, axis=axis).ravel().astype(np.int64) - lo,
                                       minlength=hi - lo + 1) for k in range(lab.shape[axis])])
        keep = counts.sum(axis=0) > 0
        return block.write[axis].start, np.arange(lo, hi + 1)[keep], counts[:, keep]
    return partial


def phase_profile_blockwise(src: Source, *, axis: str | int = "z",
                            class_map: Mapping[str, int] | None = None,
                            values: Iterable[int] | None = None,
                            spacing: float | Iterable[float] | None = None,
                            block_shape: Sequence[int], client: Any = None,
                            progress: Progress | None = None) -> pd.DataFrame:
    """Phase fractions of every slice along an axis, as
    :func:`~electrode_ct.metrics.phase_profile` (without a mask).

    Parameters
    ----------
    src : ZarrRef or numpy.ndarray
        3-D label volume (z, y, x).
    axis, class_map, values, spacing
        As for :func:`~electrode_ct.metrics.phase_profile`.
    block_shape, client, progress
        As for :func:`fractions_blockwise`.
    """
    ax = axis_index(axis)
    sp3 = as_spacing(spacing, name="spacing")
    parts = reduce_blocks(_profile_partial(ax), src, block_shape=block_shape, client=client,
                          progress=progress)
    present = np.unique(np.concatenate([v for _, v, _ in parts]))
    vals = reported_values(present, values, class_map)
    n_sl = volume_shape(src)[ax]
    counts = np.zeros((n_sl, vals.size + 1), np.int64)
    column = {int(v): j for j, v in enumerate(vals)}  # others: the last column
    for start, v, c in parts:
        col = np.array([column.get(int(x), vals.size) for x in v], np.intp)
        np.add.at(counts, (slice(start, start + c.shape[0]), col), c)
    return profile_table(counts, vals, class_map, spacing=sp3[ax])


def _surface_partial(groups: list[tuple[int, ...]], method: str,
                     spacing: tuple[float, float, float], sigma: float,
                     shape: tuple[int, ...]) -> Any:
    def partial(region: np.ndarray, block: Block) -> list[Any]:
        return region_statistics(region, groups, method=method,
                                 where=region_of(block, shape), spacing=spacing, sigma=sigma)
    return partial


def surface_areas_blockwise(src: Source, *, method: str = "marching_cubes",
                            spacing: float | Iterable[float] | None = None,
                            class_map: Mapping[str, int] | None = None,
                            values: Iterable[int] | None = None, pairs: bool = True,
                            sigma: float = 1.0, block_shape: Sequence[int],
                            client: Any = None, progress: Progress | None = None
                            ) -> dict[str, Any]:
    """Surface and interfacial areas, as :func:`~electrode_ct.metrics.surface_areas`.

    ``face`` and ``marching_cubes`` merge integer counts (face counts per axis, cube
    configuration histograms) over blocks reading a 1-voxel halo: the same areas as in
    memory, bit for bit. ``gradient`` sums the gradient magnitude of each block's interior
    with a halo of the Gaussian's radius plus one (equal to rounding).

    Parameters
    ----------
    src : ZarrRef or numpy.ndarray
        3-D label volume (z, y, x).
    method, spacing, class_map, values, pairs, sigma
        As for :func:`~electrode_ct.metrics.surface_areas`; the values present are found
        with one more pass when ``values`` is not given.
    block_shape, client, progress
        As for :func:`fractions_blockwise`.
    """
    sp3 = as_spacing(spacing, name="spacing")
    check_method(method, sigma)
    shape = volume_shape(src)
    if values is None:
        vals = value_counts_blockwise(src, block_shape=block_shape, client=client,
                                      progress=progress)[0]
    else:
        vals = np.asarray(list(values), dtype=np.int64)
    groups = [tuple(int(vals[i]) for i in g) for g in phase_groups(len(vals), pairs=pairs)]
    halo = gradient_halo(sigma) if method == "gradient" else 1
    parts = reduce_blocks(_surface_partial(groups, method, sp3, float(sigma), shape), src,
                          block_shape=block_shape, halo=halo, client=client, progress=progress)
    return _surface_result(parts, vals, method=method, spacing=sp3, class_map=class_map,
                           pairs=pairs, shape=shape)


def _surface_result(parts: list[list[Any]], vals: np.ndarray, *, method: str,
                    spacing: tuple[float, float, float], class_map: Mapping[str, int] | None,
                    pairs: bool, shape: tuple[int, ...]) -> dict[str, Any]:
    """Sum the blocks' statistics of each group, then areas as in memory."""
    stats = [sum(p[i] for p in parts) for i in range(len(parts[0]))]
    areas = [statistic_area(st, method=method, spacing=spacing) for st in stats]
    return assemble(areas, phase_keys(vals, class_map),
                    float(np.prod(shape) * np.prod(spacing)), method=method, pairs=pairs)


def _fused_partial(surfaces: Any, values: np.ndarray) -> Any:
    def partial(region: np.ndarray, block: Block) -> tuple[list[Any], np.ndarray]:
        return surfaces(region, block), interface_counts(region, values, block.interior)
    return partial


def surfaces_and_interfaces_blockwise(src: Source, values: Iterable[int], *,
                                      method: str = "marching_cubes",
                                      spacing: float | Iterable[float] | None = None,
                                      class_map: Mapping[str, int] | None = None,
                                      sigma: float = 1.0, block_shape: Sequence[int],
                                      client: Any = None, progress: Progress | None = None
                                      ) -> tuple[dict[str, Any], dict[str, float]]:
    """:func:`surface_areas_blockwise` (with pairs) and :func:`interface_percent_blockwise`
    in one pass over the blocks (each block read once, with the larger of their halos).

    ``values`` are the label values present in the volume.
    """
    sp3 = as_spacing(spacing, name="spacing")
    check_method(method, sigma)
    shape = volume_shape(src)
    vals = np.unique(np.asarray(list(values), dtype=np.int64))
    groups = [tuple(int(vals[i]) for i in g) for g in phase_groups(len(vals))]
    surfaces = _surface_partial(groups, method, sp3, float(sigma), shape)
    halo = gradient_halo(sigma) if method == "gradient" else 1
    parts = reduce_blocks(_fused_partial(surfaces, vals), src, block_shape=block_shape,
                          halo=halo, client=client, progress=progress)
    areas = _surface_result([p[0] for p in parts], vals, method=method, spacing=sp3,
                            class_map=class_map, pairs=True, shape=shape)
    return areas, interface_result(sum(p[1] for p in parts), vals, int(np.prod(shape)),
                                   class_map)


def _interface_partial(values: np.ndarray) -> Any:
    def partial(region: np.ndarray, block: Block) -> np.ndarray:
        return interface_counts(region, values, block.interior)
    return partial


def interface_percent_blockwise(src: Source, *, class_map: Mapping[str, int] | None = None,
                                values: Iterable[int] | None = None,
                                block_shape: Sequence[int], client: Any = None,
                                progress: Progress | None = None) -> dict[str, float]:
    """Interface voxel percentage per phase pair, as
    :func:`~electrode_ct.metrics.interface_percentage` (a 1-voxel halo).

    ``values`` are the label values present (found with one more pass when not given).
    """
    if values is None:
        vals = value_counts_blockwise(src, block_shape=block_shape, client=client,
                                      progress=progress)[0]
    else:
        vals = np.unique(np.asarray(list(values), dtype=np.int64))
    parts = reduce_blocks(_interface_partial(vals), src, block_shape=block_shape, halo=1,
                          client=client, progress=progress)
    return interface_result(sum(parts), vals, int(np.prod(volume_shape(src))), class_map)
