"""Embedded real samples (see ``data/README.md`` for sources and licences).

- :func:`nmc_microct`: NREL NMC-1-cal lab micro-CT crop (75³, 0.398 µm) and the ilastik
  scribbles drawn on it (MIT licence, NREL "expertsegmentation").
- :func:`nmc_phases`: 3-phase label volume of the same electrode type with CBD bridges
  (251 × 301 × 301, 0.398 µm; BSD-3-Clause, NREL MATBOX).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from electrode_ct.volume import Volume

NMC_VOXEL_UM = 0.398
"""Nominal voxel size of the NREL NMC-1-cal scan, in µm."""


def path(name: str) -> Path:
    """Filesystem path of an embedded data file."""
    return Path(str(resources.files(__name__).joinpath(name)))


def _read(name: str) -> Volume:
    import tifffile

    p = path(name)
    return Volume(tifffile.imread(p), spacing=(NMC_VOXEL_UM,) * 3,
                  metadata={"source": str(p), "format": "tiff"})


def nmc_microct() -> tuple[Volume, Volume]:
    """The NREL NMC-1-cal micro-CT crop and its sparse ilastik scribbles.

    Returns
    -------
    grey : Volume
        uint16 grey volume, 75 × 75 × 75 voxels of 0.398 µm.
    scribbles : Volume
        uint8 training labels on slices z = 0, 33, 74: 0 unlabelled, 1 active (NMC),
        2 pore + carbon-binder. Class map attached.
    """
    grey = _read("nmc1cal.tif")
    labels = _read("nmc1cal_labels.tif").with_class_map({"active": 1, "pore_cbd": 2})
    return grey, labels


def nmc_phases() -> Volume:
    """3-phase NMC-1-cal label volume (0 pore, 1 NMC active, 2 CBD bridges), 0.398 µm voxels.

    Note the value order differs from electrode-ct's own default (0 pore, 1 cbd,
    2 active); the attached class map says which is which.
    """
    return _read("nmc1cal_phases_matbox.tif").with_class_map({"pore": 0, "active": 1, "cbd": 2})
