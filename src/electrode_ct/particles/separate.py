"""Particle instance segmentation that keeps cracked particles whole.

Three ways to place the cuts between touching particles, one pipeline:

- ``distance``: watershed of the (anisotropic, smoothed) Euclidean distance transform
  of the particle phase, seeded by its h-maxima;
- ``boundary``: watershed of a learned boundary-probability map, seeded by the cores
  (the phase minus the likely boundaries);
- ``triplanar``: slice-wise 2-D instance or foreground predictions along XY, XZ and YZ
  are voted into one 3-D foreground and boundary map, then as ``boundary``.

Crack healing (``heal_cracks_um``) closes gaps up to that width and fills internal
holes *before* the distance transform, so the watershed sees a cracked particle as
one solid body; the labels are then cut back to the original mask, so the crack
voxels stay pore while both halves keep the same id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from electrode_ct.errors import InputError, ShapeError
from electrode_ct.particles.cleanup import relabel_sequential, remove_small
from electrode_ct.particles.confidence import fill_ratio, particle_confidence
from electrode_ct.particles.hypotheses import choose_hypotheses, shape_penalty
from electrode_ct.particles.resplit import particle_solidity, resplit_merged
from electrode_ct.particles.seeding import distance_map, seed_markers, watershed
from electrode_ct.volume import Volume, as_spacing, resolve_phase

METHODS = ("distance", "triplanar", "boundary")


def particle_mask(
    phases: Any,
    *,
    phase: str | int | None = None,
    class_map: Mapping[str, int] | None = None,
    threshold: float = 0.5,
) -> np.ndarray:
    """Boolean mask of the particle phase.

    Parameters
    ----------
    phases : numpy.ndarray or Volume
        Integer phase labels, or a floating probability map of the particle phase.
    phase : str or int, optional
        Class name (looked up in ``class_map``) or label value; required for integer
        phase volumes.
    class_map : mapping, optional
        name -> value; defaults to the Volume's class map.
    threshold : float
        Probability threshold for floating inputs.

    Raises
    ------
    InputError
        When no phase is given for a label volume, or the phase has no voxels.
    """
    arr = np.asarray(getattr(phases, "data", phases))
    if class_map is None and isinstance(phases, Volume):
        class_map = phases.class_map
    if arr.dtype == bool:
        mask = arr
    elif np.issubdtype(arr.dtype, np.floating):
        mask = arr >= threshold
    else:
        if phase is None:
            raise InputError(
                "phase: a phase label volume needs the particle phase (a class name or value, "
                "e.g. phase='active'); none was given"
            )
        mask = arr == resolve_phase(phase, class_map, where="phase")
    if not mask.any():
        raise InputError(f"phases: no voxels of the requested phase {phase!r}")
    return mask


def heal_cracks(
    mask: np.ndarray,
    *,
    width_um: float,
    spacing: float | Iterable[float] = (1.0, 1.0, 1.0),
) -> np.ndarray:
    """Close gaps up to ``width_um`` wide and fill enclosed holes of a binary mask.

    The closing uses an exact Euclidean ball (anisotropic distance transforms) of radius
    ``width_um / 2`` plus half the largest voxel size, so a crack of that width (and any
    narrower) is bridged. The result is a superset of ``mask``.

    Parameters
    ----------
    mask : numpy.ndarray
        Boolean particle mask (z, y, x).
    width_um : float
        Widest crack to close, in µm (0 only fills holes).
    spacing : float or 3 floats
        Voxel size (z, y, x) in µm.
    """
    from scipy import ndimage as ndi

    sp = as_spacing(spacing, name="spacing")
    healed = mask.astype(bool, copy=True)
    if width_um > 0:
        radius = width_um / 2 + max(sp) / 2
        dilated = distance_map(~healed, sp) <= radius
        healed = distance_map(dilated, sp) > radius
        healed |= mask
    return ndi.binary_fill_holes(healed)


def boundary_from_planes(planes: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Vote slice-wise 2-D predictions along z (XY), y (XZ) and x (YZ) into 3-D maps.

    Parameters
    ----------
    planes : sequence of 3 arrays
        Predictions stacked back into (z, y, x) volumes, made slice by slice along axis
        0, 1 and 2 respectively. Each is either 2-D instance labels (integers, ids per
        slice; boundaries are where in-plane neighbours have different ids) or a
        foreground probability (floats in [0, 1]).

    Returns
    -------
    foreground : numpy.ndarray
        Boolean, foreground in at least 2 of the 3 planes.
    boundary : numpy.ndarray
        float32 in [0, 1]: fraction of the instance planes that put a boundary there.
    """
    if len(planes) != 3:
        raise InputError(
            f"planes: expected 3 slice-wise predictions (XY, XZ, YZ), got {len(planes)}"
        )
    shape = np.shape(planes[0])
    votes = np.zeros(shape, dtype=np.uint8)
    boundary = np.zeros(shape, dtype=np.float32)
    for axis, plane in enumerate(planes):
        p = np.asarray(plane)
        if p.shape != shape:
            raise ShapeError(f"planes[{axis}]: shape {p.shape} differs from planes[0] {shape}")
        if np.issubdtype(p.dtype, np.floating):
            votes += p >= 0.5
            continue
        votes += p > 0
        edge = np.zeros(shape, dtype=bool)
        for other in range(3):
            if other == axis:
                continue
            a = np.moveaxis(p, other, 0)
            e = np.moveaxis(edge, other, 0)
            diff = (a[1:] != a[:-1]) & (a[1:] > 0) & (a[:-1] > 0)
            e[1:] |= diff
            e[:-1] |= diff
        boundary += edge
    return votes >= 2, boundary / 3.0


def _same_ids(whole: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The healed regions ``whole`` renumbered with the final ids of ``labels`` (0: removed).

    ``labels`` is ``whole`` cut back to the phase mask, cleaned and made sequential, so
    every final id comes from exactly one id of ``whole``.
    """
    lut = np.zeros(int(whole.max(initial=0)) + 1, dtype=np.uint32)
    inside = labels > 0
    lut[whole[inside]] = labels[inside]
    return lut[whole]


def _finish(mask: np.ndarray, whole: np.ndarray, score: np.ndarray, markers: np.ndarray,
            n_resplit: int, *, spacing: tuple[float, float, float],
            min_volume_um3: float) -> dict[str, Any]:
    """Cut the healed-region labels back to the mask, clean and renumber them."""
    labels = np.where(mask, whole, 0)
    labels, n_small = remove_small(labels, min_volume_um3=min_volume_um3, spacing=spacing)
    labels = relabel_sequential(labels)
    return {"labels": labels, "whole": _same_ids(whole, labels), "score": score,
            "n_small": n_small, "n_markers": int(markers.max()), "n_resplit": n_resplit}


def _distance_run(mask: np.ndarray, width: float, *, spacing: tuple[float, float, float],
                  h_um: float, smooth: float, compactness: float, resplit: bool,
                  min_volume_um3: float) -> dict[str, Any]:
    """Distance-transform watershed of the mask healed with ``width`` µm (one hypothesis)."""
    from scipy import ndimage as ndi

    healed = heal_cracks(mask, width_um=width, spacing=spacing) if width > 0 else mask
    dist = distance_map(healed, spacing)
    score = ndi.gaussian_filter(dist, smooth) if smooth > 0 else dist
    markers = seed_markers(score, h_um, healed)
    labels = watershed(-score, markers, healed, compactness)
    n_resplit = 0
    if resplit and width > 0:
        labels, n_resplit = resplit_merged(labels, mask, score, spacing=spacing, h=h_um,
                                           smooth=smooth, min_volume_um3=min_volume_um3)
    return _finish(mask, labels, score, markers, n_resplit, spacing=spacing,
                   min_volume_um3=min_volume_um3)


def _learned_run(mask: np.ndarray, width: float, *, method: str,
                 boundary: np.ndarray | None, planes: Sequence[np.ndarray] | None,
                 spacing: tuple[float, float, float], h_um: float, smooth: float,
                 compactness: float, resplit: bool, min_volume_um3: float) -> dict[str, Any]:
    """Watershed of a boundary map (``boundary``) or of voted 2-D predictions (``triplanar``)."""
    from scipy import ndimage as ndi

    healed = heal_cracks(mask, width_um=width, spacing=spacing) if width > 0 else mask
    if method == "boundary":
        if boundary is None:
            raise InputError("boundary: method 'boundary' needs a boundary-probability map")
        bnd = np.asarray(getattr(boundary, "data", boundary), dtype=np.float32)
        if bnd.shape != mask.shape:
            raise ShapeError(f"boundary: shape {bnd.shape} differs from phases {mask.shape}")
        region = healed
    else:
        fg, bnd = boundary_from_planes(planes if planes is not None else [mask] * 3)
        region = (fg | healed) if width > 0 else fg
    core = region & (bnd < 0.5)
    dist = distance_map(core, spacing)
    score = ndi.gaussian_filter(dist, smooth) if smooth > 0 else dist
    markers = seed_markers(score, h_um, core)
    elevation = bnd - score / max(float(score.max()), 1e-6)
    labels = watershed(elevation, markers, region, compactness)
    return _finish(mask, labels, score, markers, 0, spacing=spacing,
                   min_volume_um3=min_volume_um3)


def _choose_width(mask: np.ndarray, first: dict[str, Any], second: dict[str, Any], *,
                  spacing: tuple[float, float, float]) -> dict[str, Any]:
    """Where the two healing widths disagree, keep the particles with the smaller penalty.

    See :mod:`electrode_ct.particles.hypotheses`. The result carries the healed-region
    solidity and the distance map of the hypothesis each particle comes from.
    """
    sol1 = particle_solidity(first["whole"], spacing=spacing)
    out = dict(first, solidity=sol1, n_rehealed=0)
    n1, n2 = int(first["labels"].max()), int(second["labels"].max())
    if n1 < 2 or n2 < 1:
        return out
    sol2 = particle_solidity(second["whole"], spacing=spacing)
    fill, _ = fill_ratio(first["labels"], first["score"], spacing=spacing)
    medians = {"median_fill": float(np.median(fill[1:])),
               "median_solidity": float(np.median(sol1[1:]))}
    pen1 = shape_penalty(first["labels"], first["score"], sol1, spacing=spacing, **medians)
    pen2 = shape_penalty(second["labels"], second["score"], sol2, spacing=spacing, **medians)
    labels, n_taken = choose_hypotheses(first["labels"], second["labels"], pen1, pen2, mask)
    if not n_taken:
        return out
    present = np.bincount(labels.ravel(), minlength=n1 + n2 + 1) > 0
    present[0] = True
    lut = (np.cumsum(present) - 1).astype(np.uint32)
    solidity = np.concatenate([sol1, sol2[1:]])[present]
    score = np.where(labels > n1, second["score"], first["score"])
    return dict(out, labels=lut[labels], score=score, solidity=solidity, n_rehealed=n_taken)


def separate_particles(
    phases: Any,
    *,
    phase: str | int | None = None,
    class_map: Mapping[str, int] | None = None,
    spacing: float | Iterable[float] | None = None,
    heal_cracks_um: float = 0.0,
    h: float | None = None,
    method: str = "distance",
    boundary: np.ndarray | None = None,
    planes: Sequence[np.ndarray] | None = None,
    min_volume_um3: float = 0.0,
    compactness: float = 0.0,
    smooth: float = 1.0,
    resplit: bool = True,
    heal_alternative: float = 1.25,
    return_info: bool = False,
) -> np.ndarray | tuple[np.ndarray, dict[str, Any]]:
    """Split the particle phase into particles (uint32 ids, 0 background, sequential).

    Parameters
    ----------
    phases : numpy.ndarray or Volume
        Phase labels (integers; ``phase`` chooses the particle phase) or a probability
        map of the particle phase (floats, thresholded at 0.5). A Volume brings its
        spacing and class map.
    phase : str or int, optional
        Particle phase: a class name looked up in ``class_map`` or a value. Required for
        integer phase volumes (no value is assumed to mean "active").
    class_map : mapping, optional
        name -> value (default: the Volume's).
    spacing : float or 3 floats, optional
        Voxel size (z, y, x) in µm (default: the Volume's, else 1).
    heal_cracks_um : float
        Close cracks up to this width (µm) and fill internal holes before the distance
        transform; labels are cut back to the original mask. 0 disables healing.
    h : float, optional
        Minimum height (µm of distance) of a distance maximum to seed a particle
        (h-maxima); larger values merge more. Default: the largest voxel size.
        For ``boundary``/``triplanar`` the seeds are h-maxima of the core distance.
    method : {"distance", "boundary", "triplanar"}
        How cuts are placed (see the module docstring).
    boundary : numpy.ndarray, optional
        Boundary probability map in [0, 1] (same shape), required by ``boundary``.
    planes : sequence of 3 arrays, optional
        Slice-wise predictions for ``triplanar`` (see :func:`boundary_from_planes`).
        Without them, the particle mask itself is used as the foreground of all three.
    min_volume_um3 : float
        Particles with a smaller volume (µm³, all pieces together) are removed.
    compactness : float
        Compact-watershed parameter (0: classic watershed).
    smooth : float
        Gaussian smoothing (voxels) of the distance map before seeding; 0 disables.
    resplit : bool
        With healing and ``method="distance"``: look again at the particles that are
        much less convex than the typical one (the healing closing may have bridged
        them to a neighbour) and split them where the pieces fit their inscribed balls
        better; cracked particles stay whole
        (:func:`electrode_ct.particles.resplit.resplit_merged`).
    heal_alternative : float
        With healing and ``method="distance"``: also separate with cracks healed up to
        ``heal_alternative * heal_cracks_um`` and, wherever the two results disagree, keep
        the particles that look more like single particles (smaller volume-weighted
        confidence down-weighting; :mod:`electrode_ct.particles.hypotheses`). A crack the
        segmentation widened beyond the given width is bridged by the wider one, while the
        narrower one keeps the small particles the wider closing would merge. 1 (or less)
        disables it.
    return_info : bool
        Also return a dict: ``n_particles``, ``n_removed_small``, ``n_markers``,
        ``n_resplit`` (particles split by ``resplit``), ``n_rehealed`` (regions taken
        from the wider healing, ``heal_alternative``),
        ``n_phase_voxels``, ``method``, ``heal_cracks_um``, ``h_um``, ``peak_um``
        (float64, index = particle id, element 0 unused: the peak of each particle's
        smoothed distance map, µm), ``solidity`` (same indexing: volume / convex-hull
        volume of each particle's healed region, before the cut back) and ``scores``
        (same indexing): the confidence of each particle, its peak down-weighted when
        its volume does not fit that peak like the other particles' and when it is less
        convex than the typical particle
        (:func:`~electrode_ct.particles.confidence.particle_confidence`; merges, fragments
        and truncated particles rank last). Pass it as ``scores=`` to
        :func:`electrode_ct.metrics.instances.match_instances`.

    Returns
    -------
    numpy.ndarray
        uint32 particle labels (z, y, x); possibly empty (all zero) after cleanup.

    Raises
    ------
    InputError
        Unknown method, missing phase, no voxels of the phase, missing boundary map.
    ShapeError
        A boundary map or plane of another shape.

    Examples
    --------
    >>> import numpy as np
    >>> z, y, x = np.mgrid[:20, :20, :36]
    >>> two = (((z - 10)**2 + (y - 10)**2 + (x - 10)**2 <= 64)
    ...        | ((z - 10)**2 + (y - 10)**2 + (x - 25)**2 <= 64)).astype(np.uint8)
    >>> int(separate_particles(two, phase=1).max())
    2
    """

    if method not in METHODS:
        raise InputError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    if spacing is None and isinstance(phases, Volume):
        spacing = phases.spacing
    sp = as_spacing(spacing, name="spacing")
    mask = particle_mask(phases, phase=phase, class_map=class_map)
    if mask.ndim != 3:
        raise ShapeError(f"phases: expected a 3-D (z, y, x) volume, got shape {mask.shape}")
    if heal_cracks_um < 0 or min_volume_um3 < 0:
        raise InputError("heal_cracks_um and min_volume_um3 must be >= 0 µm")
    h_um = float(max(sp) if h is None else h)
    settings = {"spacing": sp, "h_um": h_um, "smooth": smooth, "compactness": compactness,
                "resplit": resplit, "min_volume_um3": min_volume_um3}
    if method == "distance":
        run = _distance_run(mask, heal_cracks_um, **settings)
        if heal_cracks_um > 0 and heal_alternative > 1:
            run = _choose_width(mask, run, _distance_run(mask, heal_alternative * heal_cracks_um,
                                                         **settings), spacing=sp)
    else:
        run = _learned_run(mask, heal_cracks_um, method=method, boundary=boundary,
                           planes=planes, **settings)
    labels = run["labels"]
    if not return_info:
        return labels
    n = int(labels.max())
    solidity = run["solidity"] if "solidity" in run else \
        particle_solidity(run["whole"], spacing=sp)
    scores, peak = particle_confidence(labels, run["score"], spacing=sp, solidity=solidity)
    n_small, n_markers, n_resplit = run["n_small"], run["n_markers"], run["n_resplit"]
    return labels, {
        "n_particles": n,
        "scores": scores,
        "peak_um": peak,
        "solidity": solidity,
        "n_removed_small": n_small,
        "n_markers": n_markers,
        "n_resplit": n_resplit,
        "n_rehealed": run.get("n_rehealed", 0),
        "n_phase_voxels": int(mask.sum()),
        "method": method,
        "heal_cracks_um": float(heal_cracks_um),
        "h_um": h_um,
    }
