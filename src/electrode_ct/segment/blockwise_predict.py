"""Forest and CNN prediction on the out-of-core engine (Zarr in, OME-Zarr out).

The image-wide inputs of a prediction come from reductions over blocks, never from
loading the volume: the forest's normalisation range
(:func:`features.range_of_subsample` of the same regular subsample
:func:`features.robust_range` reads) and a CNN's ``image`` normalisation statistics
(:func:`cnn.normalise.stats_of_values` of the same strided subsample, put back in the
image's flat order). Each block then runs the model's own block computation:

- forest: :meth:`ForestModel.block_function` with the feature halo
  (:func:`features.halo`): probabilities equal to the whole-volume ones.
- CNN: slabs of whole planes, one pass per plane direction, tri-planar included
  (:mod:`electrode_ct.segment.blockwise_cnn`): probabilities equal to the whole-volume
  ones.

Labels (the model's class values, uint8), and when asked probabilities (K, z, y, x)
float32 and the normalised entropy (z, y, x) float32, are written by one block task:
the labels through :func:`compute.run_blocks`, the two maps by the same task into their
own OME-Zarr arrays (same chunks), before the block is marked finished.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any

import numpy as np

from electrode_ct.blocks import Block
from electrode_ct.compute.engine import ZarrRef, reduce_blocks, run_blocks
from electrode_ct.errors import ConfigError, ModelError
from electrode_ct.segment.blockwise_cnn import cnn_passes, prediction_mode
from electrode_ct.segment.models import entropy

Source = ZarrRef | np.ndarray
Progress = Callable[[Iterable[Any]], Iterable[Any]] | None

FOREST_BYTES_PER_VOXEL = 100.0
"""Working memory of forest prediction per voxel of block plus halo (features)."""

CNN_BYTES_PER_VOXEL = 48.0
"""Working memory of CNN prediction per voxel of a slab (probabilities, activations)."""


def _open(src: Source) -> Any:
    return src.open("r") if isinstance(src, ZarrRef) else src


def _flat_index(block: Block, shape: tuple[int, ...]) -> np.ndarray:
    grids = np.meshgrid(*(np.arange(s.start, s.stop) for s in block.write), indexing="ij")
    return np.ravel_multi_index(tuple(grids), shape).ravel()


# -- image-wide inputs as reductions -----------------------------------------------------
def _range_part(region: np.ndarray, block: Block, *, step: int
                ) -> tuple[np.ndarray, float, float]:
    v = region[block.interior]
    first = [(-s.start) % step for s in block.write]
    sub = v[tuple(slice(f, None, step) for f in first)]
    return sub.astype(np.float64).ravel(), float(v.min()), float(v.max())


def forest_range_blockwise(model: Any, src: Source, **run: Any) -> tuple[float, float]:
    """The forest's normalisation range of the whole volume, from a reduction.

    Returns
    -------
    (float, float)
        What :func:`features.intensity_range` gives for the whole volume (bitwise).
    """
    from electrode_ct.segment import features as ft

    shape = tuple(int(n) for n in _open(src).shape)
    step = ft.subsample_step(shape, 2_000_000)
    parts = reduce_blocks(partial(_range_part, step=step), src, **run)
    sub = np.concatenate([p[0] for p in parts])
    robust = ft.range_of_subsample(
        sub, lambda: (min(p[1] for p in parts), max(p[2] for p in parts)))
    return ft.normalisation_range(robust, model.config.normalise,
                                  reference_width=model.reference_width)


def _stats_part(region: np.ndarray, block: Block, *, shape: tuple[int, ...],
                step: int) -> tuple[np.ndarray, np.ndarray]:
    flat = _flat_index(block, shape)
    pick = flat % step == 0
    vals = np.asarray(region[block.interior], np.float32).ravel()[pick]
    return flat[pick], vals


def cnn_stats_blockwise(model: Any, src: Source, **run: Any) -> tuple[float, float] | None:
    """A CNN's normalisation (centre, scale) for the whole volume from a reduction, or
    ``None`` for a model with fixed (training) statistics."""
    from electrode_ct.segment.cnn.normalise import stats_of_values, stats_step

    n = model.normalisation
    if n.get("mode", "image") == "fixed":
        return None
    shape = tuple(int(s) for s in _open(src).shape)
    parts = reduce_blocks(partial(_stats_part, shape=shape,
                                  step=stats_step(int(np.prod(shape)))), src, **run)
    flat = np.concatenate([p[0] for p in parts])
    vals = np.concatenate([p[1] for p in parts])
    return stats_of_values(vals[np.argsort(flat, kind="stable")])


# -- the block task ----------------------------------------------------------------------
def _finishing(proba: Callable[..., np.ndarray], *, lut: np.ndarray,
               maps: dict[str, ZarrRef | np.ndarray]) -> Callable[..., np.ndarray]:
    """The block function writing labels (returned) and maps from ``proba``."""
    return partial(_predict_part, proba=proba, lut=lut, maps=maps)


def _predict_part(region: np.ndarray, block: Block, *, proba: Callable[..., np.ndarray],
                  lut: np.ndarray, maps: dict[str, ZarrRef | np.ndarray]) -> np.ndarray:
    p = proba(region, block)
    if "probabilities" in maps:
        _write(maps["probabilities"], (slice(None), *block.write), p)
    if "uncertainty" in maps:
        _write(maps["uncertainty"], block.write, entropy(p))
    return lut[np.argmax(p, axis=0)]


def _write(dst: ZarrRef | np.ndarray, where: tuple[slice, ...], values: np.ndarray) -> None:
    out = dst.open("r+") if isinstance(dst, ZarrRef) else dst
    out[where] = values


def _fixed_model(model: Any, src: Source, run: dict[str, Any]) -> Any:
    """The CNN with its image statistics fixed to the whole volume's (a reduction)."""
    import copy

    stats = cnn_stats_blockwise(model, src, **run)
    if stats is None:
        return model
    fixed = copy.copy(model)
    fixed.normalisation = {**model.normalisation, "mode": "fixed",
                           "train_center": stats[0], "train_scale": stats[1]}
    return fixed


def _one_job(model: Any) -> Any:
    """The forest predicting on one thread, as a Dask worker runs it anyway (one thread per
    task, and a daemon process where scikit-learn would fall back to one job with a warning
    per block)."""
    import copy

    one = copy.copy(model)
    one.stage1 = copy.copy(model.stage1)
    one.stage1.n_jobs = 1
    return one


def prediction_plan(model: Any, shape: Sequence[int] | None = None, *, two_d: bool = False,
                    **options: Any) -> tuple[tuple[int, int, int], float, int | None]:
    """Halo (voxels), working bytes per voxel, and the axis of the whole-plane slabs the
    outputs are written in (``None``: any blocks), for a model's prediction on the engine.

    ``shape`` (the volume's) decides a CNN's ``auto`` mode: tri-planar outputs are
    written by x slabs, slice-wise ones by slabs along their axis.
    """
    if model.kind == "forest":
        from electrode_ct.segment import features as ft

        return ft.halo(model.config, model.spacing), FOREST_BYTES_PER_VOXEL, None
    mode, axis = prediction_mode(model, shape or (8, 8, 8), two_d=two_d, options=options)
    return (0, 0, 0), CNN_BYTES_PER_VOXEL, (2 if mode == "triplanar" else axis)


def predict_blockwise(model: Any, src: Source, labels: ZarrRef | np.ndarray, *,
                      probabilities: ZarrRef | np.ndarray | None = None,
                      uncertainty: ZarrRef | np.ndarray | None = None,
                      two_d: bool = False, block_shape: Sequence[int],
                      client: Any = None, progress: Progress = None, resume: bool = True,
                      **options: Any) -> dict[str, Any]:
    """:meth:`predict` of a forest or CNN model on the engine.

    Parameters
    ----------
    model : ForestModel or CNNModel
        A loaded model (:func:`segment.models.load_model`).
    src : ZarrRef or numpy.ndarray
        Grey volume (z, y, x) (numpy only with ``client=None``).
    labels : ZarrRef or numpy.ndarray
        uint8 output of the volume's shape (class values).
    probabilities, uncertainty : ZarrRef or numpy.ndarray, optional
        float32 outputs (K, z, y, x) and (z, y, x), written only when given (OME-Zarr
        from ``io.zarr.create_ome_zarr(..., lead=(K,), lead_axes=("c",))``).
    two_d : bool
        Segment every z slice on its own (as :meth:`predict` of either kind).
    block_shape : sequence of int
        Block shape (z, y, x); a CNN uses slabs of whole planes with these sides
        (:func:`blockwise.slab_shape`); Zarr outputs must be chunked as
        :func:`prediction_plan`'s slabs.
    client, progress, resume
        As in :func:`compute.run_blocks`.
    **options
        The CNN's prediction options (mode, axis, tile, overlap, batch_size, device,
        transforms, threads); none for a forest.

    Returns
    -------
    dict
        ``block_shape`` used and, for a forest, the ``intensity_range``.

    Raises
    ------
    ConfigError
        Options for a forest, an unknown CNN mode, ``two_d`` with another mode.
    """
    shape = tuple(int(n) for n in _open(src).shape)
    run = {"client": client, "progress": progress}
    info: dict[str, Any] = {}
    maps = {k: v for k, v in (("probabilities", probabilities),
                              ("uncertainty", uncertainty)) if v is not None}
    finish = partial(_finishing, lut=np.asarray(model.class_values, np.uint8), maps=maps)
    if model.kind != "forest":
        mode, axis = prediction_mode(model, shape, two_d=two_d, options=options)
        opts = {k: v for k, v in options.items() if k not in ("mode", "axis")}
        block_shape = cnn_passes(_fixed_model(model, src, {"block_shape": block_shape, **run}),
                                 src, labels, finish=finish, mode=mode, axis=axis,
                                 block_shape=block_shape, options=opts, resume=resume,
                                 bytes_per_voxel=CNN_BYTES_PER_VOXEL, **run)
        info["mode"], info["axis"] = mode, axis
    else:
        if options:
            raise ConfigError(f"forest prediction on the engine takes no options, got "
                              f"{sorted(options)}")
        if two_d and model.config.mode == "3d":
            raise ModelError("per-slice prediction (two_d, --2d) needs a forest trained on "
                             "2-D features (--2d); this one uses 3-D features")
        rng = forest_range_blockwise(model, src, block_shape=block_shape, **run)
        info["intensity_range"] = list(rng)
        halo, bpv, _ = prediction_plan(model)
        fitted = _one_job(model) if client is not None else model
        run_blocks(finish(fitted.block_function(value_range=rng)), src, labels,
                   block_shape=block_shape, halo=halo, resume=resume, bytes_per_voxel=bpv,
                   **run)
    info["block_shape"] = list(block_shape)
    return info
