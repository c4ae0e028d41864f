"""``ect measure``'s inputs and its two paths: in memory, or on the block engine.

The engine path streams inputs that are not Zarr already into the job's work folder
(:class:`electrode_ct.cli._engine.EngineJob` for the labels, the same folder for the grey
volume and the background mask) and runs
:func:`electrode_ct.measure.blockwise.measure_blockwise`; the folder holds only input
copies (the reductions are not resumable), so it is removed when the command ends, with
or without error. No science in here.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from electrode_ct.cli import _compute as co
from electrode_ct.cli._common import check_input, info, progress, read_input
from electrode_ct.errors import InputError, ShapeError
from electrode_ct.volume import Volume


@dataclass
class MeasureInputs:
    """The volumes of one ``ect measure`` call, read lazily, shapes checked."""

    labels: Volume
    labels_path: str
    grey: Volume | None
    grey_path: str | None
    background: Volume | None
    background_path: str | None

    @classmethod
    def read(cls, labels: str, grey: str | None, background: str | None, *,
             voxel: str | None) -> MeasureInputs:
        """Open the inputs lazily; a grey or mask shape unlike the labels' is one error."""
        lab = read_input(labels, role="labels", voxel=voxel, lazy=True)
        g = read_input(grey, lazy=True) if grey is not None else None
        mask = read_input(background, role="any", lazy=True) \
            if (background is not None and grey is not None) else None
        for vol, path, what in ((g, grey, "grey"), (mask, background, "background")):
            if vol is not None and vol.shape != lab.shape:
                raise ShapeError(f"{path}: {what} shape {vol.shape} differs from the labels' "
                                 f"shape {lab.shape} ({labels})")
        return cls(lab, labels, g, grey, mask, background if mask is not None else None)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size (z, y, x) in µm (z = 1 for a 2-D image)."""
        sp = self.labels.spacing
        return (1.0, *sp[1:]) if self.labels.is_2d else tuple(sp)  # type: ignore[return-value]

    @property
    def nbytes(self) -> int:
        """Bytes of the label and grey volumes together."""
        return self.labels.nbytes + (self.grey.nbytes if self.grey is not None else 0)


def measure_memory(inputs: MeasureInputs, opts: dict[str, Any],
                   timings: dict[str, float]) -> tuple[Any, Any]:
    """The in-memory path: today's :func:`~electrode_ct.measure.table.particle_table`."""

    from electrode_ct.measure.blockwise import check_label_ids
    from electrode_ct.measure.table import particle_table

    t0 = time.perf_counter()
    lab = inputs.labels.compute()
    check_input(lab, inputs.labels_path, "labels")
    top = int(lab.numpy().max(initial=0))
    if top == 0:
        raise InputError(f"{inputs.labels_path}: no particles (every voxel is 0); expected a "
                         "particle label volume from 'ect particles'")
    check_label_ids(top, name=inputs.labels_path)
    g = mask = None
    if inputs.grey is not None:
        gv = inputs.grey.compute()
        check_input(gv, str(inputs.grey_path), "grey")
        g = gv.data
        mask = inputs.background.numpy() if inputs.background is not None else None
    timings["read"] = time.perf_counter() - t0
    info("measuring grey levels per particle and layer, then morphology")
    return particle_table(lab.data, g, spacing=inputs.spacing, background=mask,
                          timings=timings, **opts)


def _identity(path: str | None) -> list[Any] | None:
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return [os.path.abspath(path)]
    return [os.path.abspath(path), st.st_size, st.st_mtime_ns]


def measure_engine(inputs: MeasureInputs, out: Path, cfg: Any, opts: dict[str, Any],
                   timings: dict[str, float]) -> tuple[Any, Any]:
    """The engine path: :func:`~electrode_ct.measure.blockwise.measure_blockwise` on the
    session's client (blocks planned, and refused, before a cluster starts)."""
    from electrode_ct.cli._engine import EngineJob, plan_blocks
    from electrode_ct.io.stream import zarr_source
    from electrode_ct.measure.blockwise import MEASURE_BYTES_PER_VOXEL, measure_blockwise

    blocks = plan_blocks(cfg, inputs.labels.shape, (0, 0, 0), MEASURE_BYTES_PER_VOXEL)
    params = {"command": "measure", "blocks": blocks, "grey": _identity(inputs.grey_path),
              "background": _identity(inputs.background_path)}
    t0 = time.perf_counter()
    with co.session(cfg, inputs.nbytes, explicit=True) as client:
        job = EngineJob.start(inputs.labels, inputs.labels_path, out, cfg, client, params)
        try:
            refs = [job.source()] + [
                zarr_source(vol, job.work / f"{name}.ome.zarr", memory_limit=job.memory_limit,
                            reuse=True, progress=lambda it, d=name: progress(it, desc=f"copy {d}"))
                if vol is not None else None
                for vol, name in ((inputs.grey, "grey"), (inputs.background, "background"))]
            timings["read"] = time.perf_counter() - t0
            info(f"measuring particles block by block ({blocks} voxels a block)")
            return measure_blockwise(
                refs[0], refs[1], background=refs[2], spacing=inputs.spacing,
                block_shape=blocks, client=client, memory_limit=job.memory_limit,
                progress=lambda it: progress(it, desc="measure"), timings=timings,
                names=(inputs.labels_path, str(inputs.grey_path)), **opts)
        finally:
            shutil.rmtree(job.work, ignore_errors=True)
