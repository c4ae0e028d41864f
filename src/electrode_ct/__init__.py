"""electrode-ct: X-ray CT analysis of lithium-ion battery electrodes.

Read a scan, segment its phases, separate and measure particles, detect cracks,
compute microstructure metrics and grey-level statistics, and write a report.

Examples
--------
>>> import electrode_ct as ect
>>> grey, scribbles = ect.data.nmc_microct()
>>> grey.shape, grey.spacing
((75, 75, 75), (0.398, 0.398, 0.398))
"""

from importlib import metadata as _md

from electrode_ct import data
from electrode_ct.errors import ElectrodeCTError, InputError
from electrode_ct.io import read, write
from electrode_ct.volume import Volume

try:
    __version__ = _md.version("electrode-ct")
except _md.PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["ElectrodeCTError", "InputError", "Volume", "__version__", "data", "read", "write"]
