"""A scan prepared for flaw classification: candidates, healed masks, descriptors, slices.

:func:`prepare_scan` does the work every classifier shares, once per scan: input checks,
candidate particles, healed masks, the fine-scale image and the 3-D descriptors (the
features classifier's input). :func:`cnn_slices` cuts the CNN's input from it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from electrode_ct.cracks.candidates import (
    candidate_table,
    check_inputs,
    heal_labels,
    require_candidates,
)
from electrode_ct.errors import InputError
from electrode_ct.volume import as_spacing

FINE_SLICE_SCALE = 4.0
"""Fine-scale units (robust standard deviations) mapped to one contrast unit in CNN slices
(``sample_slices`` clips to [-2, 1]: -8 .. +4 standard deviations)."""


@dataclass
class PreparedScan:
    """Candidates, healed labels, descriptors and fine-scale image of a scan.

    Attributes
    ----------
    grey, labels, healed : numpy.ndarray
        Grey volume, particle labels and healed particle masks (z, y, x).
    spacing : 3 floats
        Voxel size (z, y, x) in µm.
    candidates : pandas.DataFrame
        :func:`~electrode_ct.cracks.candidates.candidate_table` of every particle.
    ids : numpy.ndarray
        Candidate particle ids (the rows of ``descriptors`` and of every result).
    descriptors : pandas.DataFrame
        :func:`~electrode_ct.cracks.descriptors.particle_descriptors` of ``ids``.
    reference : object
        Population grey levels (solid, background) the descriptors were measured against.
    fine : numpy.ndarray
        Fine-scale image of ``grey`` (:func:`~electrode_ct.cracks.highpass.fine_scale`),
        shared by the descriptors, the CNN slices and the integral crack volume.
    """

    grey: np.ndarray
    labels: np.ndarray
    healed: np.ndarray
    spacing: tuple[float, float, float]
    candidates: pd.DataFrame
    ids: np.ndarray
    descriptors: pd.DataFrame
    reference: Any
    fine: np.ndarray


def prepare_scan(grey: Any, labels: Any, *, spacing: float | Iterable[float] = (1.0, 1.0, 1.0),
                 heal_width_um: float | None = None, grey_name: str = "grey",
                 labels_name: str = "labels",
                 grey_range: tuple[float, float] | None = None) -> PreparedScan:
    """Check inputs, pick candidates, heal the masks and compute the descriptors.

    Parameters
    ----------
    grey, labels : numpy.ndarray or Volume
        Grey volume and particle labels (z, y, x).
    spacing : float or 3 floats
        Voxel size (z, y, x) in µm.
    heal_width_um : float, optional
        Widest crack bridged by the healing closing (µm); default two voxels.
    grey_name, labels_name : str
        Names (files or parameters) used in error messages.
    grey_range : (float, float), optional
        Quantisation range of the descriptors
        (:func:`~electrode_ct.cracks.descriptors.quantise_range` of ``grey``, computed when
        not given; the block engine merges it from blocks).

    Returns
    -------
    PreparedScan

    Raises
    ------
    InputError, ShapeError
        Bad inputs (see :func:`~electrode_ct.cracks.candidates.check_inputs`) or no
        candidate particles.
    """
    from electrode_ct.cracks.descriptors import particle_descriptors
    from electrode_ct.cracks.highpass import fine_scale

    g, lab = check_inputs(grey, labels, grey_name=grey_name, labels_name=labels_name)
    sp = as_spacing(spacing, name="spacing")
    cand = candidate_table(lab, spacing=sp)
    ids = require_candidates(cand, name=labels_name)
    width = 2 * max(sp) if heal_width_um is None else float(heal_width_um)
    healed = heal_labels(lab, width_um=width, spacing=sp)
    fine = fine_scale(g, healed)
    desc, ref = particle_descriptors(g, healed, ids, spacing=sp, fine=fine,
                                     grey_range=grey_range)
    return PreparedScan(g, lab, healed, sp, cand, ids, desc, ref, fine)


def cnn_slices(scan: PreparedScan, ids: np.ndarray, *, image: str = "both", k: int = 10,
               axes: int | str | list[int] = 0, size: int = 32) -> np.ndarray:
    """Slices of the particles ``ids`` for the CNN, cut from the image(s) ``image``.

    Parameters
    ----------
    scan : PreparedScan
        From :func:`prepare_scan`.
    ids : numpy.ndarray
        Particle ids (rows of the result).
    image : {"both", "fine", "grey"}
        ``grey``: the contrast-normalised grey volume; ``fine``: the fine-scale image
        (:func:`~electrode_ct.cracks.highpass.fine_scale`, divided by
        :data:`FINE_SLICE_SCALE`); ``both``: the two, stacked on axis 2.
    k, axes, size : int, axes, int
        As :func:`~electrode_ct.cracks.sampling.sample_slices`.

    Returns
    -------
    numpy.ndarray
        float32 ``(len(ids), n_slices, size, size)``, or ``(len(ids), n_slices, 2, size,
        size)`` for ``both``.
    """
    from electrode_ct.cracks.cnn_model import IMAGES
    from electrode_ct.cracks.sampling import sample_slices

    if image not in IMAGES:
        raise InputError(f"image: expected one of {', '.join(IMAGES)}, got {image!r}")
    out = []
    if image in ("grey", "both"):
        ref = scan.reference
        out.append(sample_slices(scan.grey, scan.healed, ids, k=k, axes=axes, size=size,
                                 solid=ref.to_input(ref.solid),
                                 background=ref.to_input(ref.background)))
    if image in ("fine", "both"):
        out.append(sample_slices(scan.fine, scan.healed, ids, k=k,
                                 axes=axes, size=size, solid=0.0,
                                 background=-FINE_SLICE_SCALE))
    return out[0] if len(out) == 1 else np.stack(out, axis=2)
