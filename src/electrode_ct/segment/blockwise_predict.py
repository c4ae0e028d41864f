"""Forest and CNN prediction on the out-of-core engine (Zarr in, OME-Zarr out).

The image-wide inputs of a prediction come from reductions over blocks, never from
loading the volume: the forest's normalisation range
(:func:`features.range_of_subsample` of the same regular subsample
:func:`features.robust_range` reads) and a CNN's ``image`` normalisation statistics
(:func:`cnn.normalise.stats_of_values` of the same strided subsample, put back in the
image's flat order). Each block then runs the model's own block computation:

- forest: :meth:`ForestModel.block_function` with the feature halo
  (:func:`features.halo`): probabilities equal to the whole-volume ones.
- CNN, slice-wise along z: blocks of whole z slices (each plane is tiled exactly as in
  memory, since the tiling depends only on the plane). Tri-planar prediction tiles whole
  planes along y and x too, which no block holds, and slice-wise prediction along y or x
  likewise: both are refused on the engine with one line.

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
from electrode_ct.segment.blockwise import slab_shape
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


def _cnn_proba(region: np.ndarray, block: Block, *, model: Any,
               options: dict[str, Any]) -> np.ndarray:
    return model.predict_proba(region, mode="slice", axis=0, **options)


def _cnn_function(model: Any, src: Source, options: dict[str, Any], run: dict[str, Any],
                  two_d: bool) -> Callable[[np.ndarray, Block], np.ndarray]:
    """The CNN's block function: its image statistics fixed to the whole volume's."""
    import copy

    slices = options.get("mode", "slice" if two_d else None) == "slice"
    if not slices or options.get("axis", 0) != 0:
        raise ConfigError(f"mode {options.get('mode', 'the model default')!r} axis "
                          f"{options.get('axis', 0)}: on the engine a CNN predicts z slices "
                          "(--2d); tri-planar and y/x slices need whole planes no block "
                          "holds")
    stats = cnn_stats_blockwise(model, src, **run)
    fixed = model
    if stats is not None:
        fixed = copy.copy(model)
        fixed.normalisation = {**model.normalisation, "mode": "fixed",
                               "train_center": stats[0], "train_scale": stats[1]}
    opts = {k: v for k, v in options.items() if k not in ("mode", "axis")}
    return partial(_cnn_proba, model=fixed, options=opts)


def prediction_plan(model: Any) -> tuple[tuple[int, int, int], float, bool]:
    """Halo (voxels), working bytes per voxel and whether blocks are whole z slices, for
    a model's prediction on the engine."""
    if model.kind == "forest":
        from electrode_ct.segment import features as ft

        return ft.halo(model.config, model.spacing), FOREST_BYTES_PER_VOXEL, False
    return (0, 0, 0), CNN_BYTES_PER_VOXEL, True


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
        Segment every z slice on its own (a CNN on the engine needs it; a forest as in
        :meth:`ForestModel.predict`).
    block_shape : sequence of int
        Block shape (z, y, x); a CNN uses :func:`blockwise.slab_shape` (whole slices).
    client, progress, resume
        As in :func:`compute.run_blocks`.
    **options
        The CNN's prediction options (tile, overlap, batch_size, device, transforms,
        threads; mode only ``slice`` along axis 0); none for a forest.

    Returns
    -------
    dict
        ``block_shape`` used and, for a forest, the ``intensity_range``.

    Raises
    ------
    ConfigError
        Options the engine cannot honour (tri-planar, y/x slices, forest options).
    """
    shape = tuple(int(n) for n in _open(src).shape)
    run = {"client": client, "progress": progress}
    info: dict[str, Any] = {}
    halo, bpv, slab = prediction_plan(model)
    if slab:
        block_shape = slab_shape(shape, block_shape)
        proba = _cnn_function(model, src, options, {"block_shape": block_shape, **run},
                              two_d)
    else:
        if options:
            raise ConfigError(f"forest prediction on the engine takes no options, got "
                              f"{sorted(options)}")
        if two_d and model.config.mode == "3d":
            raise ModelError("per-slice prediction (two_d, --2d) needs a forest trained on "
                             "2-D features (--2d); this one uses 3-D features")
        rng = forest_range_blockwise(model, src, block_shape=block_shape, **run)
        proba, info["intensity_range"] = model.block_function(value_range=rng), list(rng)
    maps = {k: v for k, v in (("probabilities", probabilities),
                              ("uncertainty", uncertainty)) if v is not None}
    func = partial(_predict_part, proba=proba, lut=np.asarray(model.class_values, np.uint8),
                   maps=maps)
    run_blocks(func, src, labels, block_shape=block_shape, halo=halo, resume=resume,
               bytes_per_voxel=bpv, **run)
    info["block_shape"] = list(block_shape)
    return info
