"""Volume input/output: one module per format, one registry.

``read(path) -> Volume`` chooses the format by extension or content;
``write(volume, path)`` writes atomically (temporary name, then rename).
"""

from electrode_ct.io import hdf5 as _hdf5  # noqa: F401  (registers the format)
from electrode_ct.io import npy as _npy  # noqa: F401
from electrode_ct.io import raw as _raw  # noqa: F401  (nrrd, mhd, raw)
from electrode_ct.io import tiff as _tiff  # noqa: F401
from electrode_ct.io import txm as _txm  # noqa: F401
from electrode_ct.io import zarr as _zarr  # noqa: F401
from electrode_ct.io._atomic import atomic_path
from electrode_ct.io.registry import Format, find_format, formats, read, register, write
from electrode_ct.io.tables import read_table, write_json, write_table

__all__ = [
    "Format",
    "atomic_path",
    "find_format",
    "formats",
    "read",
    "read_table",
    "register",
    "write",
    "write_json",
    "write_table",
]
