"""Whole-volume jobs of the widgets on the out-of-core engine (no science here).

A volume larger than ``in_memory_below_mb`` (:class:`~electrode_ct.compute.ComputeConfig`,
default 256 MB) is segmented the way ``ect run`` does it: the pipeline's
:class:`~electrode_ct.pipeline.compute.PipelineCompute` opens a Dask ``LocalCluster``
(:func:`electrode_ct.compute.open_client`), plans the blocks from the memory budget, gives
the block tasks a Zarr source (the layer's own OME-Zarr, or a streamed copy) and the library's
blockwise function writes the labels into an OME-Zarr, published to the output path only
when every block is done. The widget shows that store as a lazy labels layer. Smaller
volumes stay in memory; both paths give identical labels.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import FileEdit, FloatSpinBox

from electrode_ct.volume import Volume

Segment = Callable[[Any, Any, dict[str, Any]], Any]
"""``segment(src, dst, run)``: a blockwise library call writing labels into ``dst``;
``run`` holds ``block_shape``, ``client`` and ``progress``."""


class EngineControls:
    """The widget fields of whole-volume jobs: engine threshold (MB) and output OME-Zarr."""

    def __init__(self, name: str) -> None:
        from electrode_ct.compute.config import ComputeConfig

        self.name = name
        self.above = FloatSpinBox(label="engine above (MB)", min=0.0, max=1e9, step=64.0,
                                  value=round(ComputeConfig().in_memory_limit_mb()))
        self.output = FileEdit(label="engine output", mode="w", filter="*.ome.zarr")
        self.compute: dict[str, Any] = {}
        """Other :class:`ComputeConfig` settings (scheduler, workers, memory, blocks)."""

    @property
    def widgets(self) -> list[Any]:
        """The fields, to add to a widget's container."""
        return [self.above, self.output]

    def config(self) -> Any:
        """The :class:`ComputeConfig` of the job: :attr:`compute` and the threshold field."""
        from electrode_ct.compute.config import ComputeConfig

        return ComputeConfig(**{**self.compute, "in_memory_below_mb": float(self.above.value)})

    def use_engine(self, vol: Volume) -> bool:
        """Whether ``vol`` goes to the engine: larger than the threshold, or a scheduler
        other than ``local`` was set (as ``ect run`` decides)."""
        from electrode_ct.pipeline.compute import PipelineCompute

        return PipelineCompute(self.config(), work=Path(".")).use_engine(vol.nbytes)

    def out_path(self, layer: str) -> Path:
        """The output store: the field's path, else a new one in a temporary folder (a
        store a layer still shows is never replaced under it)."""
        import uuid

        value = str(self.output.value or "")
        if value and value != "." and not Path(value).is_dir():
            return Path(value)
        folder = Path(tempfile.gettempdir()) / "electrode-ct-napari"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{layer}_{self.name}_{uuid.uuid4().hex[:8]}.ome.zarr".replace(" ", "_")
        return folder / name


def counted(progress: Callable[..., Iterator[Any]]) -> Callable[[Iterable[Any]], Iterator[Any]]:
    """The engine's progress wrapper from a job's ``progress(iterable, total)``.

    Block lists have a length; distributed's ``as_completed`` counts what is left.
    """
    def wrap(items: Iterable[Any]) -> Iterator[Any]:
        n = len(items) if hasattr(items, "__len__") else getattr(items, "count", lambda: 0)()
        return progress(items, total=n)

    return wrap


def segment_on_engine(vol: Volume, out: Path, cfg: Any, *, plan: tuple[Any, float, bool],
                      segment: Segment, class_map: dict[str, int] | None,
                      progress: Callable[..., Iterator[Any]]) -> tuple[Volume, Any]:
    """Labels of ``vol`` by ``segment`` on the engine, published to the OME-Zarr ``out``.

    Parameters
    ----------
    vol : Volume
        Grey image (lazy or in memory).
    out : pathlib.Path
        Output OME-Zarr (replaced only when every block succeeded).
    cfg : ComputeConfig
        Scheduler, workers, memory and block settings.
    plan : (halo, bytes per voxel, whole slices)
        The blockwise call's block plan (e.g. :func:`blockwise_predict.prediction_plan`).
    segment : callable
        ``segment(src, dst, run)`` (see :data:`Segment`); its result is returned.
    class_map : dict, optional
        Written into the store.
    progress : callable
        The job's ``progress(iterable, total)`` (Cancel stops at the next block).

    Returns
    -------
    (Volume, object)
        The labels read lazily from ``out``, and ``segment``'s result.
    """
    from electrode_ct.io import read
    from electrode_ct.io.zarr import create_ome_zarr
    from electrode_ct.pipeline.compute import PipelineCompute, publish
    from electrode_ct.segment.blockwise import slab_shape

    work = Path(tempfile.mkdtemp(prefix="ect-engine-", dir=out.parent))
    eng = PipelineCompute(cfg, work=work, quiet=True)
    try:
        halo, bpv, slab = plan
        blocks = eng.block_shape(vol.shape, halo=halo, bytes_per_voxel=bpv)
        blocks = slab_shape(vol.shape, blocks) if slab else blocks
        src = eng.zarr_input(vol, "grey")
        dst = create_ome_zarr(work / "labels.ome.zarr", vol, dtype=np.uint8, chunks=blocks,
                              class_map=class_map)
        result = segment(src, dst, {"block_shape": blocks, "client": eng.client(),
                                    "progress": counted(progress)})
        eng.close()
        publish(dst, out)
    finally:
        eng.close()
        shutil.rmtree(work, ignore_errors=True)
    return read(str(out), lazy=True), result


def predict_on_engine(model: Any, grey: Volume, out: Path, cfg: Any,
                      progress: Callable[..., Iterator[Any]], *, two_d: bool = False) -> Any:
    """Labels of ``model`` (forest or CNN) on ``grey`` by
    :func:`electrode_ct.segment.blockwise_predict.predict_blockwise` into the OME-Zarr
    ``out``, as a lazy (dask) array."""
    from electrode_ct.segment.blockwise_predict import predict_blockwise, prediction_plan

    cmap = dict(zip(model.class_names, model.class_values, strict=True))
    vol, _ = segment_on_engine(
        grey, out, cfg, plan=prediction_plan(model), class_map=cmap, progress=progress,
        segment=lambda src, dst, run: predict_blockwise(model, src, dst, two_d=two_d, **run))
    return vol.data


def threshold_on_engine(grey: Volume, out: Path, cfg: Any, options: dict[str, Any],
                        progress: Callable[..., Iterator[Any]]) -> tuple[Any, np.ndarray]:
    """Labels (lazy) and cut values of :func:`electrode_ct.segment.blockwise.
    threshold_blockwise` with the widget's ``options`` into the OME-Zarr ``out``."""
    from electrode_ct.segment.blockwise import threshold_blockwise, threshold_bytes_per_voxel
    from electrode_ct.segment.classes import class_map
    from electrode_ct.segment.threshold import phase_count

    n = phase_count(options["method"], classes=options.get("classes"),
                    thresholds=options.get("thresholds"), fractions=options.get("fractions"))
    vol, cuts = segment_on_engine(
        grey, out, cfg, plan=((0, 0, 0), threshold_bytes_per_voxel(grey.dtype), False),
        class_map=class_map(n), progress=progress,
        segment=lambda src, dst, run: threshold_blockwise(src, dst, **options, **run))
    return vol.data, cuts
