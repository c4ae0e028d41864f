"""CNN prediction on the engine, slice-wise along any axis and tri-planar.

A 2-D network predicts whole planes, and the tiling of a plane depends only on the plane.
A block of whole planes perpendicular to an axis (a slab: the volume's full extent along
the two other axes, no halo) therefore predicts its planes exactly as the whole volume
does. Slice-wise prediction along axis ``a`` is one pass of slabs along ``a``.

Tri-planar prediction is three passes, z then y then x, that repeat the float32
operations of :func:`electrode_ct.segment.cnn.predict.predict_volume` in its order:
pass z stores P_z; pass y stores P_z + P_y; pass x adds P_x, divides by 3 and hands the
probabilities to the caller's block function (labels, maps). The partial sums between
passes are (K, z, y, x) float32 Zarr arrays beside a Zarr output (``.NAME.planes-<axis>.zarr``,
removed when the last pass ends; with markers, so an interrupted run resumes) or numpy
arrays on the serial path. Each pass reads the previous sums across its slabs: extra
reads of 4·K bytes per voxel, no extra memory per block beyond the slab's sums.

The image normalisation is fixed beforehand to the whole volume's statistics, from a
reduction (:func:`blockwise_predict.cnn_stats_blockwise`).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from electrode_ct.blocks import Block
from electrode_ct.compute.engine import ZarrRef, run_blocks
from electrode_ct.errors import ConfigError
from electrode_ct.segment.blockwise import slab_shape

Source = ZarrRef | np.ndarray
BlockFunction = Callable[[np.ndarray, Block], np.ndarray]

SUMS_CHUNK = 128
"""Chunk side (voxels) of the partial-sum arrays along the axes a pass does not cut."""


def prediction_mode(model: Any, shape: Sequence[int], *, two_d: bool = False,
                    options: Mapping[str, Any] | None = None) -> tuple[str, int]:
    """The (mode, axis) :meth:`CNNModel.predict` uses for a volume of ``shape``.

    Raises
    ------
    ConfigError
        ``two_d`` with another mode or axis than z slices.
    """
    opts = dict(options or {})
    if two_d:
        if opts.get("mode", "slice") != "slice" or opts.get("axis", 0) != 0:
            raise ConfigError(f"two_d (--2d) predicts z slices (mode 'slice', axis 0); got "
                              f"mode {opts.get('mode')!r}, axis {opts.get('axis')!r}")
        return "slice", 0
    mode = opts.get("mode") or model.prediction.get("mode", "auto")
    axis = opts.get("axis")
    axis = int(model.prediction.get("axis", 0) if axis is None else axis)
    if mode == "auto":
        mode = "triplanar" if min(shape) >= 8 else "slice"
    if mode not in ("slice", "triplanar") or axis not in (0, 1, 2):
        raise ConfigError(f"CNN prediction mode {mode!r} axis {axis}: expected 'slice' "
                          "along axis 0, 1 or 2, or 'triplanar'")
    return str(mode), axis


def pass_axes(mode: str, axis: int) -> tuple[int, ...]:
    """The slab axes of the passes, in order (the last one writes the outputs)."""
    return (0, 1, 2) if mode == "triplanar" else (axis,)


def _planes_part(region: np.ndarray, block: Block, *, model: Any, axis: int,
                 options: dict[str, Any], previous: Source | None,
                 divide: int) -> np.ndarray:
    """One slab's probabilities along ``axis`` plus the earlier passes' sums."""
    p = model.predict_proba(region, mode="slice", axis=axis, **options)
    if previous is not None:
        prev = previous.open("r") if isinstance(previous, ZarrRef) else previous
        p = np.asarray(prev[(slice(None), *block.write)]) + p
    return p / np.float32(divide) if divide else p


def _sums(like: ZarrRef | np.ndarray, k: int, shape: tuple[int, ...], axis: int,
          blocks: tuple[int, ...], *, resume: bool) -> ZarrRef | np.ndarray:
    """The partial sums written by the pass along ``axis`` (kept when resuming)."""
    if not isinstance(like, ZarrRef):
        return np.zeros((k, *shape), np.float32)
    import zarr

    base = Path(like.path)
    path = base.parent / f".{base.name}.planes-{'zyx'[axis]}.zarr"
    chunks = [min(SUMS_CHUNK, n) for n in shape]
    chunks[axis] = blocks[axis]
    zarr.open_array(str(path), mode="a" if resume else "w", zarr_format=2,
                    shape=(k, *shape), chunks=(k, *chunks), dtype=np.float32)
    return ZarrRef(str(path), "")


def cnn_passes(model: Any, src: Source, labels: ZarrRef | np.ndarray, *,
               finish: Callable[[BlockFunction], BlockFunction], mode: str, axis: int,
               block_shape: Sequence[int], options: dict[str, Any], resume: bool = True,
               **run: Any) -> tuple[int, int, int]:
    """Run the passes of a CNN prediction; the last writes ``labels`` through
    ``finish(proba)`` (a block function from a probability function).

    Parameters
    ----------
    model : CNNModel
        With its normalisation fixed to the whole volume's statistics.
    src : ZarrRef or numpy.ndarray
        Grey volume (z, y, x).
    labels : ZarrRef or numpy.ndarray
        The output; a Zarr output's chunks must divide the last pass's slabs
        (:func:`output_blocks`).
    finish : callable
        Makes the last pass's block function from its probability function.
    mode, axis : str, int
        From :func:`prediction_mode`.
    block_shape : sequence of int
        Slab thickness along each pass's axis (the other sides span the volume).
    options : dict
        Prediction options (tile, overlap, batch_size, device, transforms, threads).
    resume, **run
        As in :func:`compute.run_blocks` (client, progress).

    Returns
    -------
    tuple of int
        The last pass's slab shape.
    """
    shape = tuple(int(n) for n in (src.open("r") if isinstance(src, ZarrRef) else src).shape)
    axes = pass_axes(mode, axis)
    k = len(model.class_values)
    previous: Source | None = None
    scratch: list[ZarrRef] = []
    for i, ax in enumerate(axes):
        blocks = slab_shape(shape, block_shape, ax)
        last = i == len(axes) - 1
        proba = partial(_planes_part, model=model, axis=ax, options=options,
                        previous=previous, divide=len(axes) if last else 0)
        if last:
            run_blocks(finish(proba), src, labels, block_shape=blocks, resume=resume, **run)
            break
        sums = _sums(labels, k, shape, ax, blocks, resume=resume)
        run_blocks(proba, src, sums, block_shape=blocks, resume=resume, **run)
        scratch += [sums] if isinstance(sums, ZarrRef) else []
        previous = sums
    for ref in scratch:
        shutil.rmtree(ref.path, ignore_errors=True)
    return blocks


def output_blocks(model: Any, shape: Sequence[int], block_shape: Sequence[int], *,
                  two_d: bool = False, options: Mapping[str, Any] | None = None
                  ) -> tuple[int, int, int]:
    """The block (and output chunk) shape of a CNN prediction's outputs: slabs along the
    last pass's axis."""
    mode, axis = prediction_mode(model, shape, two_d=two_d, options=options)
    return slab_shape(shape, block_shape, pass_axes(mode, axis)[-1])
