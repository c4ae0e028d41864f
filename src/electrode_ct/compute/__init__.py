"""Out-of-core and cluster execution: settings, Dask clusters and block tasks.

- :mod:`~electrode_ct.compute.config`: :class:`ComputeConfig` (the ``compute:`` section).
- :mod:`~electrode_ct.compute.cluster`: :func:`open_client` (LocalCluster, a scheduler
  address, or dask-jobqueue) and :func:`cluster_script`.
- :mod:`~electrode_ct.compute.engine`: :func:`run_blocks` / :func:`reduce_blocks`, one task
  per block on Zarr, resumable.
"""

from electrode_ct.compute.cluster import cluster_script, open_client
from electrode_ct.compute.config import ComputeConfig, parse_bytes
from electrode_ct.compute.engine import (
    BlockFailed,
    ZarrRef,
    default_block_shape,
    reduce_blocks,
    run_blocks,
)

__all__ = ["BlockFailed", "ComputeConfig", "ZarrRef", "cluster_script", "default_block_shape",
           "open_client", "parse_bytes", "reduce_blocks", "run_blocks"]
