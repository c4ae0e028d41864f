"""Chord lengths and local thickness of a phase over blocks, with a halo bounded by their size.

Both depend on the phase far from a voxel, so a block reads a halo as large as the largest
size it may meet, given as an option; a size beyond it is an error naming the option and
the block, never a silently cut result.

- Chords along an axis: a block counts the chords that *start* in its interior, reading
  ``ceil(max_chord_um / voxel) + 1`` voxels of halo along that axis only (none across):
  the voxel before a chord (to know it starts there) and its end.
- Local thickness: a sphere of radius r ≤ R = ``max_thickness_um / 2`` covering an interior
  voxel has its centre within R of the block, and its radius (the distance map there)
  depends on the phase within 2R of the block: the halo is ``ceil(2R / voxel) + 1`` voxels
  per axis. Radius levels stop at R; a distance above R in the block is the error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import edt
import numpy as np
import pandas as pd

from electrode_ct.blocks import Block
from electrode_ct.compute.engine import Progress, Source, ZarrRef, reduce_blocks, run_blocks
from electrode_ct.errors import InputError
from electrode_ct.metrics._phase import axis_index, axis_name
from electrode_ct.metrics.local_thickness import (
    chord_statistics,
    distribution,
    runs,
    sphere_levels,
)
from electrode_ct.volume import as_spacing, resolve_phase


def _shape(src: Source) -> tuple[int, ...]:
    return tuple(int(n) for n in (src.open("r") if isinstance(src, ZarrRef) else src).shape)


def _where(block: Block) -> str:
    return f"block {block.index} (voxels " + ", ".join(f"{s.start}:{s.stop}"
                                                       for s in block.write) + ")"


def _chord_partial(value: int, ax: int, n: int, include_border: bool, limit_um: float
                   ) -> Any:
    def partial(region: np.ndarray, block: Block) -> np.ndarray:
        inner = block.interior[ax]
        start, stop = runs(region == value, ax)
        mine = (start >= inner.start) & (start < inner.stop)
        start, stop = start[mine], stop[mine]
        offset = block.read[ax].start
        cut = (stop == region.shape[ax]) & (block.read[ax].stop < n)
        if cut.any():
            raise InputError(f"max_chord_um: a chord along {axis_name(ax)} is longer than "
                             f"{limit_um:g} µm in {_where(block)}; raise max_chord_um")
        if not include_border:
            keep = (start + offset > 0) & (stop + offset < n)
            start, stop = start[keep], stop[keep]
        return np.bincount(stop - start)
    return partial


def chord_lengths_blockwise(src: Source, phase: str | int, *, axis: str | int = "x",
                            class_map: Mapping[str, int] | None = None,
                            spacing: float | Iterable[float] | None = None,
                            include_border: bool = False, max_chord_um: float = 100.0,
                            block_shape: Sequence[int], client: Any = None,
                            progress: Progress | None = None) -> np.ndarray:
    """Chord lengths of one phase along an axis, as
    :func:`~electrode_ct.metrics.chord_lengths` (sorted ascending).

    Parameters
    ----------
    src : ZarrRef or numpy.ndarray
        3-D label volume (z, y, x).
    phase : str or int
        Class name or value.
    axis, class_map, spacing, include_border
        As for :func:`~electrode_ct.metrics.chord_lengths`.
    max_chord_um : float
        Longest chord expected, µm: sets the halo along ``axis``.
    block_shape, client, progress
        As for :func:`electrode_ct.metrics.blockwise.fractions_blockwise`.

    Raises
    ------
    InputError
        A chord longer than ``max_chord_um`` (naming the block).
    """
    ax = axis_index(axis)
    sp3 = as_spacing(spacing, name="spacing")
    if not max_chord_um > 0:
        raise InputError(f"max_chord_um: expected a positive length in µm, got {max_chord_um!r}")
    value = resolve_phase(phase, class_map, where="--phase")
    halo = [0, 0, 0]
    halo[ax] = int(np.ceil(max_chord_um / sp3[ax])) + 1
    parts = reduce_blocks(_chord_partial(value, ax, _shape(src)[ax], include_border,
                                         max_chord_um), src, block_shape=block_shape,
                          halo=halo, client=client, progress=progress)
    counts = np.zeros(max([p.size for p in parts] + [1]), np.int64)
    for p in parts:
        counts[:p.size] += p
    return np.repeat(np.arange(counts.size), counts).astype(np.float64) * sp3[ax]


def chord_length_summary_blockwise(src: Source, phase: str | int, *,
                                   class_map: Mapping[str, int] | None = None,
                                   axes: Iterable[str | int] = ("x", "y", "z"),
                                   spacing: float | Iterable[float] | None = None,
                                   max_chord_um: float = 100.0, block_shape: Sequence[int],
                                   client: Any = None, progress: Progress | None = None
                                   ) -> dict[str, dict[str, float]]:
    """Mean, median and count of the chords per axis, as
    :func:`~electrode_ct.metrics.chord_length_summary` (options as
    :func:`chord_lengths_blockwise`)."""
    return {axis_name(axis_index(a)): chord_statistics(chord_lengths_blockwise(
        src, phase, axis=a, class_map=class_map, spacing=spacing, max_chord_um=max_chord_um,
        block_shape=block_shape, client=client, progress=progress)) for a in axes}


def _thickness_halo(spacing: tuple[float, float, float], max_thickness_um: float) -> list[int]:
    if not max_thickness_um > 0:
        raise InputError(f"max_thickness_um: expected a positive diameter in µm, got "
                         f"{max_thickness_um!r}")
    return [int(np.ceil(max_thickness_um / s)) + 1 for s in spacing]


def _thickness_block(value: int, spacing: tuple[float, float, float], step: float,
                     limit_um: float) -> Any:
    def block_thickness(region: np.ndarray, block: Block) -> np.ndarray:
        m = region == value
        out = np.zeros(m.shape, np.float32)
        if m.any():
            dt = edt.edt(m, anisotropy=spacing, black_border=False, parallel=1)
            if float(block.crop(dt).max()) > limit_um / 2:
                raise InputError(f"max_thickness_um: the phase is thicker than {limit_um:g} µm "
                                 f"in {_where(block)}; raise max_thickness_um")
            sphere_levels(m, dt, spacing, step * min(spacing),
                           min(float(dt.max()), limit_um / 2), out)
        return block.crop(out)
    return block_thickness


def local_thickness_blockwise(src: Source, dst: ZarrRef | np.ndarray, phase: str | int, *,
                              class_map: Mapping[str, int] | None = None,
                              spacing: float | Iterable[float] | None = None,
                              step: float = 0.5, max_thickness_um: float = 20.0,
                              block_shape: Sequence[int], client: Any = None,
                              progress: Progress | None = None, resume: bool = True) -> int:
    """Write the local thickness (µm, float32, 0 outside the phase) of one phase, as
    :func:`~electrode_ct.metrics.local_thickness` of its mask.

    Parameters
    ----------
    src : ZarrRef or numpy.ndarray
        3-D label volume (z, y, x).
    dst : ZarrRef or numpy.ndarray
        float32 output of the same shape.
    phase, class_map, spacing, step
        As for :func:`~electrode_ct.metrics.thickness_distribution`.
    max_thickness_um : float
        Largest thickness (sphere diameter) expected, µm: sets the halo.
    block_shape, client, progress, resume
        As for :func:`~electrode_ct.compute.run_blocks`.

    Returns
    -------
    int
        Blocks computed.

    Raises
    ------
    InputError
        The phase is thicker than ``max_thickness_um`` somewhere (naming the block).
    """
    sp3 = as_spacing(spacing, name="spacing")
    halo = _thickness_halo(sp3, max_thickness_um)
    value = resolve_phase(phase, class_map, where="--phase")
    return run_blocks(_thickness_block(value, sp3, step, max_thickness_um), src, dst,
                      block_shape=block_shape, halo=halo, client=client, resume=resume,
                      progress=progress)


def _thickness_counts(value: int, spacing: tuple[float, float, float], step: float,
                      limit_um: float) -> Any:
    thickness = _thickness_block(value, spacing, step, limit_um)

    def partial(region: np.ndarray, block: Block) -> tuple[np.ndarray, np.ndarray]:
        lt = thickness(region, block)
        return np.unique(lt[block.crop(region) == value], return_counts=True)
    return partial


def thickness_distribution_blockwise(src: Source, phase: str | int, *,
                                     class_map: Mapping[str, int] | None = None,
                                     spacing: float | Iterable[float] | None = None,
                                     step: float = 0.5, max_thickness_um: float = 20.0,
                                     block_shape: Sequence[int], client: Any = None,
                                     progress: Progress | None = None
                                     ) -> tuple[pd.DataFrame, dict[str, float]]:
    """Volume-weighted local-thickness distribution of one phase, as
    :func:`~electrode_ct.metrics.thickness_distribution` (options as
    :func:`local_thickness_blockwise`)."""
    sp3 = as_spacing(spacing, name="spacing")
    value = resolve_phase(phase, class_map, where="--phase")
    parts = reduce_blocks(_thickness_counts(value, sp3, step, max_thickness_um), src,
                          block_shape=block_shape, halo=_thickness_halo(sp3, max_thickness_um),
                          client=client, progress=progress)
    th = np.unique(np.concatenate([t for t, _ in parts]))
    counts = np.zeros(th.size, np.int64)
    for t, c in parts:
        counts[np.searchsorted(th, t)] += c
    if counts.sum() == 0:
        raise InputError(f"--phase: phase {phase!r} (value {value}) is absent from the volume")
    return distribution(th, counts)
