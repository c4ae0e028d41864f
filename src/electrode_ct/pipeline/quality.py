"""SNR / CNR per phase of a run's grey input (the metrics step's ``image_quality``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from electrode_ct.io import read

if TYPE_CHECKING:
    from electrode_ct.pipeline.runner import Run
    from electrode_ct.volume import Volume

SLAB_BYTES = 64e6
"""Grey bytes (float64) per slab when the volume is streamed."""


def image_quality_summary(run: Run, i: int, phases_lazy: Volume) -> dict[str, Any]:
    """:func:`metrics.quality.image_quality` of state ``i``'s unfiltered grey input against
    its phases: in memory when the run keeps the volume there, else streamed in z slabs
    (same figures up to the order of the float64 sums)."""
    from electrode_ct.metrics.quality import (
        image_quality,
        phase_statistics_slabs,
        quality_from_statistics,
    )
    from electrode_ct.pipeline import steps

    inp = run.cfg.input
    grey = steps._crop(run, read(inp.grey[i], lazy=True, voxel_size=inp.voxel_size))
    if grey.shape != phases_lazy.shape:
        return {"note": f"not computed: grey {grey.shape} and phases {phases_lazy.shape} "
                "differ in shape"}
    cmap = phases_lazy.class_map
    if run.cfg.compute.stays_in_memory(phases_lazy.nbytes * 9):  # float64 grey + labels
        ph = steps.phases(run, i)
        return image_quality(steps.grey_input(run, i).numpy(), ph.numpy(),
                             class_map=ph.class_map)
    plane = int(np.prod(grey.shape[1:]))
    depth = max(1, int(SLAB_BYTES // (8 * plane)))

    def slabs() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for z in range(0, grey.shape[0], depth):  # z slabs of the lazy volumes
            yield _load(grey.data[z:z + depth]), _load(phases_lazy.data[z:z + depth])

    return quality_from_statistics(phase_statistics_slabs(slabs, class_map=cmap),
                                   class_map=cmap)


def _load(part: Any) -> np.ndarray:
    """A slab of a numpy, memmap or dask array in memory (dask on this thread)."""
    if hasattr(part, "compute"):
        return np.asarray(part.compute(scheduler="synchronous"))
    return np.asarray(part)
