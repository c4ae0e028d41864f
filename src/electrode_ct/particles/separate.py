"""Particle instance segmentation that keeps cracked particles whole.

Three ways to place the cuts between touching particles, one function each, and
:func:`separate_particles` choosing among them by name; all return a :class:`Separation`:

- :func:`separate_distance`: watershed of the (anisotropic, smoothed) Euclidean distance
  transform of the particle phase, seeded by its h-maxima;
- :func:`separate_boundary`: watershed of a learned boundary-probability map, seeded by
  the cores (the phase minus the likely boundaries);
- :func:`separate_triplanar`: slice-wise 2-D instance or foreground predictions along XY,
  XZ and YZ are voted into one 3-D foreground and boundary map
  (:func:`boundary_from_planes`), then as ``boundary``.

Crack healing (``heal_cracks_um``) closes gaps up to that width and fills internal
holes *before* the distance transform, so the watershed sees a cracked particle as
one solid body; the labels are then cut back to the original mask, so the crack
voxels stay pore while both halves keep the same id. The shape scores that rank the
particles and repair the healing are in :mod:`electrode_ct.particles.shape`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from electrode_ct.errors import InputError, ShapeError
from electrode_ct.particles.cleanup import relabel_sequential, remove_small
from electrode_ct.particles.hypotheses import choose_hypotheses
from electrode_ct.particles.resplit import resplit_merged
from electrode_ct.particles.seeding import (
    ball_closing,
    fill_mask_holes,
    relative_seed_markers,
    seed_markers,
    smoothed_distance,
    watershed,
)
from electrode_ct.particles.shape import (
    fill_ratio,
    particle_confidence,
    particle_solidity,
    shape_penalty,
)
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
    sp = as_spacing(spacing, name="spacing")
    healed = mask.astype(bool, copy=True)
    if width_um > 0:
        healed = ball_closing(healed, width_um / 2 + max(sp) / 2, sp)
        healed |= mask
    return fill_mask_holes(healed)


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


def check_boundary(bnd: np.ndarray, *, name: str = "boundary") -> np.ndarray:
    """``bnd`` as float32, refusing values outside [0, 1] (NaN included).

    Raises
    ------
    InputError
        A map that is not a probability.
    """
    arr = np.asarray(bnd, dtype=np.float32)
    lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
    if np.isnan(arr).any() or lo < 0 or hi > 1:
        raise InputError(f"{name}: a boundary probability map must lie in [0, 1], got values "
                         f"{lo:g}..{hi:g}{' and NaN' if np.isnan(arr).any() else ''}")
    return arr


@dataclass(frozen=True)
class Decisions:
    """The volume-wide medians behind the healing decisions, given from outside.

    In memory each is taken from the particles of the volume being separated; a block of
    a larger volume (:mod:`electrode_ct.particles.blockwise`) gets the medians of the
    whole volume instead, so that it decides as the whole volume would. Each value is a
    pair (median solidity, median fill ratio); ``None`` computes it locally as today.

    Attributes
    ----------
    resplit, resplit_wider : (float, float) or None
        Medians of the healed watershed regions (before the re-split) at the given and at
        the wider healing width (:func:`~electrode_ct.particles.resplit.resplit_merged`).
    choose : (float, float) or None
        Medians of the given-width result (after the re-split) that the choice between
        the two widths compares penalties with (:func:`_choose_width`).
    """

    resplit: tuple[float, float] | None = None
    resplit_wider: tuple[float, float] | None = None
    choose: tuple[float, float] | None = None


@dataclass
class _Run:
    """One watershed result before scoring: final labels, healed-region labels (same ids,
    0 where removed), the distance map seeded on (µm) and the counts."""

    labels: np.ndarray
    whole: np.ndarray
    score: np.ndarray
    n_small: int
    n_markers: int
    n_resplit: int = 0
    n_rehealed: int = 0
    solidity: np.ndarray | None = None


@dataclass(eq=False)
class Separation:
    """Particles found by a separation, with their confidence and what happened on the way.

    ``scores``, ``peak_um`` and ``solidity`` are computed on first use (one convex hull
    per particle, 1-2 ms each); until then the result also holds the healed-region labels
    and the distance map they are computed from.

    Attributes
    ----------
    labels : numpy.ndarray
        uint32 particle labels (z, y, x), 0 = background, sequential; possibly all zero
        after cleanup.
    method : str
        ``distance``, ``boundary``, ``triplanar`` or ``learned``.
    heal_cracks_um, h_um : float
        Healing width and seed height used (µm); ``h_um`` None: relative seeds
        (``learned``, :data:`~electrode_ct.particles.learned.SEED_DEPTH`).
    n_phase_voxels, n_markers, n_removed_small : int
        Voxels of the particle phase, watershed seeds, particles removed as too small.
    n_resplit : int
        Particles split by the re-split of heal-bridged merges (``distance`` only).
    n_rehealed : int
        Regions taken from the wider healing width (``distance`` only).
    """

    labels: np.ndarray
    method: str
    heal_cracks_um: float
    h_um: float | None
    n_phase_voxels: int
    n_markers: int
    n_removed_small: int
    n_resplit: int = 0
    n_rehealed: int = 0
    _run: _Run | None = field(default=None, repr=False)
    _spacing: tuple[float, float, float] = field(default=(1.0, 1.0, 1.0), repr=False)
    _scored: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(
        default=None, init=False, repr=False)

    @property
    def n_particles(self) -> int:
        """Number of particles (the largest id)."""
        return int(self.labels.max(initial=0))

    @property
    def scores(self) -> np.ndarray:
        """float64, index = particle id (element 0 unused): the confidence of each particle.

        Its distance peak, down-weighted when its volume does not fit that peak like the
        other particles' and when it is less convex than the typical particle
        (:func:`~electrode_ct.particles.shape.particle_confidence`; merges, fragments and
        truncated particles rank last). Pass it as ``scores=`` to
        :func:`electrode_ct.metrics.instances.match_instances`.
        """
        return self._score()[0]

    @property
    def peak_um(self) -> np.ndarray:
        """Same indexing: the peak of each particle's smoothed distance map (µm)."""
        return self._score()[1]

    @property
    def solidity(self) -> np.ndarray:
        """Same indexing: volume / convex-hull volume of each particle's healed region,
        before the cut back."""
        return self._score()[2]

    def _score(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._scored is None:
            run, sp = self._run, self._spacing
            solidity = run.solidity if run.solidity is not None else \
                particle_solidity(run.whole, spacing=sp)
            scores, peak = particle_confidence(self.labels, run.score, spacing=sp,
                                               solidity=solidity)
            self._scored, self._run = (scores, peak, solidity), None
        return self._scored

    def summary(self) -> dict[str, Any]:
        """The counts and settings (everything but the arrays) as a JSON-ready dict."""
        keys = ("n_particles", "n_removed_small", "n_markers", "n_resplit", "n_rehealed",
                "n_phase_voxels", "method", "heal_cracks_um", "h_um")
        return {k: getattr(self, k) for k in keys}


def _same_ids(whole: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The healed regions ``whole`` renumbered with the final ids of ``labels`` (0: removed).

    ``labels`` is ``whole`` cut back to the phase mask, cleaned and made sequential, so
    every final id comes from exactly one id of ``whole``.
    """
    lut = np.zeros(int(whole.max(initial=0)) + 1, dtype=np.uint32)
    inside = labels > 0
    lut[whole[inside]] = labels[inside]
    return lut[whole]


def _finish(mask: np.ndarray, whole: np.ndarray, score: np.ndarray, n_markers: int,
            n_resplit: int, *, spacing: tuple[float, float, float],
            min_volume_um3: float) -> _Run:
    """Cut the healed-region labels back to the mask, clean and renumber them."""
    labels = np.where(mask, whole, 0)
    labels, n_small = remove_small(labels, min_volume_um3=min_volume_um3, spacing=spacing)
    labels = relabel_sequential(labels)
    return _Run(labels, _same_ids(whole, labels), score, n_small, n_markers, n_resplit)


def _healed(mask: np.ndarray, width: float, spacing: tuple[float, float, float]) -> np.ndarray:
    """``mask`` with cracks up to ``width`` µm closed and holes filled (itself for 0)."""
    return heal_cracks(mask, width_um=width, spacing=spacing) if width > 0 else mask


def distance_watershed(mask: np.ndarray, width: float, *,
                       spacing: tuple[float, float, float], h_um: float, smooth: float,
                       compactness: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Watershed of the mask healed with ``width`` µm, before the re-split and cut back.

    Returns
    -------
    labels, score, markers : numpy.ndarray
        Healed-region labels, the smoothed distance map they were seeded on (µm) and the
        seeds.
    """
    healed, score = healed_score(mask, width, spacing=spacing, smooth=smooth)
    markers = seed_markers(score, h_um, healed)
    return watershed(-score, markers, healed, compactness), score, markers


def healed_score(mask: np.ndarray, width: float, *, spacing: tuple[float, float, float],
                 smooth: float) -> tuple[np.ndarray, np.ndarray]:
    """The mask healed with ``width`` µm and its smoothed distance map (µm), the map
    :func:`distance_watershed` seeds and floods."""
    healed = _healed(mask, width, spacing)
    return healed, smoothed_distance(healed, spacing, smooth)


Watershed = Callable[[float], tuple[np.ndarray, np.ndarray, int]]
"""A healing width -> (healed-region labels, score, number of seeds) of
:func:`distance_watershed` for a given mask: how a block of a larger volume hands over the
watersheds it already computed in an earlier pass (:mod:`~electrode_ct.particles.blockwise`)."""


def _distance_run(mask: np.ndarray, width: float, *, spacing: tuple[float, float, float],
                  h_um: float, smooth: float, compactness: float, resplit: bool,
                  min_volume_um3: float, medians: tuple[float, float] | None = None,
                  watershed: Watershed | None = None) -> _Run:
    """Distance-transform watershed of the mask healed with ``width`` µm (one hypothesis);
    ``watershed`` gives it instead of computing it."""
    if watershed is None:
        labels, score, markers = distance_watershed(mask, width, spacing=spacing, h_um=h_um,
                                                    smooth=smooth, compactness=compactness)
        n_markers = int(markers.max())
    else:
        labels, score, n_markers = watershed(width)
    n_resplit = 0
    if resplit and width > 0:
        labels, n_resplit = resplit_merged(labels, mask, score, spacing=spacing, h=h_um,
                                           smooth=smooth, min_volume_um3=min_volume_um3,
                                           medians=medians)
    return _finish(mask, labels, score, n_markers, n_resplit, spacing=spacing,
                   min_volume_um3=min_volume_um3)


def _boundary_run(mask: np.ndarray, region: np.ndarray, bnd: np.ndarray, *,
                  spacing: tuple[float, float, float], h_um: float, smooth: float,
                  compactness: float, min_volume_um3: float, core_below: float = 0.5,
                  relative_depth: float | None = None) -> _Run:
    """Watershed of ``region`` on a boundary map, seeded by the cores (``bnd`` <
    ``core_below``): h-maxima of their distance map (``h_um``), or its relative h-maxima
    (``relative_depth``, :func:`~.seeding.relative_seed_markers`) when given."""
    core = region & (bnd < core_below)
    score = smoothed_distance(core, spacing, smooth)
    if relative_depth is None:
        markers = seed_markers(score, h_um, core)
    else:
        markers = relative_seed_markers(score, relative_depth, core, voxel_um=min(spacing))
    elevation = bnd - score / max(float(score.max()), 1e-6)
    labels = watershed(elevation, markers, region, compactness)
    return _finish(mask, labels, score, int(markers.max()), 0, spacing=spacing,
                   min_volume_um3=min_volume_um3)


def choose_medians(first: _Run, *, spacing: tuple[float, float, float]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Solidity of the healed regions and fill ratio of the particles of the given-width
    result (index = particle id): what :func:`_choose_width` takes the medians of."""
    sol = particle_solidity(first.whole, spacing=spacing)
    return sol, fill_ratio(first.labels, first.score, spacing=spacing)[0]


def _choose_width(mask: np.ndarray, first: _Run, second: _Run, *,
                  spacing: tuple[float, float, float],
                  given: tuple[float, float] | None = None) -> _Run:
    """Where the two healing widths disagree, keep the particles with the smaller penalty.

    See :mod:`electrode_ct.particles.hypotheses`. The result carries the healed-region
    solidity and the distance map of the hypothesis each particle comes from. ``given``
    (median solidity, median fill) replaces the medians of ``first``'s particles.
    """
    sol1, fill = choose_medians(first, spacing=spacing)
    out = replace(first, solidity=sol1, n_rehealed=0)
    n1, n2 = int(first.labels.max()), int(second.labels.max())
    if n1 < (2 if given is None else 1) or n2 < 1:
        return out
    sol2 = particle_solidity(second.whole, spacing=spacing)
    if given is None:
        given = (float(np.median(sol1[1:])), float(np.median(fill[1:])))
    medians = {"median_fill": given[1], "median_solidity": given[0]}
    pen1 = shape_penalty(first.labels, first.score, sol1, spacing=spacing, **medians)
    pen2 = shape_penalty(second.labels, second.score, sol2, spacing=spacing, **medians)
    labels, n_taken = choose_hypotheses(first.labels, second.labels, pen1, pen2, mask)
    if not n_taken:
        return out
    present = np.bincount(labels.ravel(), minlength=n1 + n2 + 1) > 0
    present[0] = True
    lut = (np.cumsum(present) - 1).astype(np.uint32)
    solidity = np.concatenate([sol1, sol2[1:]])[present]
    score = np.where(labels > n1, second.score, first.score)
    return replace(out, labels=lut[labels], score=score, solidity=solidity, n_rehealed=n_taken)


def distance_hypotheses(mask: np.ndarray, heal: float, *, heal_alternative: float,
                        given: Decisions, spacing: tuple[float, float, float],
                        watershed: Watershed | None = None,
                        first: Callable[[], _Run] | None = None, **settings: Any) -> _Run:
    """The healing width ``heal``'s run and, with a wider alternative, the choice between
    the two (:func:`separate_distance`'s result before it is wrapped); ``settings`` are
    :func:`_distance_run`'s. ``first`` gives the ``heal`` run (with the medians
    ``given.resplit``) instead of computing it: a block of a volume stores it in an earlier
    pass (:mod:`~electrode_ct.particles.blockwise`)."""
    run = first() if first is not None else _distance_run(
        mask, heal, medians=given.resplit, spacing=spacing, watershed=watershed, **settings)
    if heal > 0 and heal_alternative > 1:
        wider = _distance_run(mask, heal_alternative * heal, medians=given.resplit_wider,
                              spacing=spacing, watershed=watershed, **settings)
        run = _choose_width(mask, run, wider, spacing=spacing, given=given.choose)
    return run


def _inputs(phases: Any, *, phase: str | int | None, class_map: Mapping[str, int] | None,
            spacing: float | Iterable[float] | None, heal_cracks_um: float, h: float | None,
            min_volume_um3: float) -> tuple[np.ndarray, tuple[float, float, float], float]:
    """Check the common inputs: the particle mask, the spacing (µm) and the seed height (µm)."""
    if spacing is None and isinstance(phases, Volume):
        spacing = phases.spacing
    sp = as_spacing(spacing, name="spacing")
    mask = particle_mask(phases, phase=phase, class_map=class_map)
    if mask.ndim != 3:
        raise ShapeError(f"phases: expected a 3-D (z, y, x) volume, got shape {mask.shape}")
    if heal_cracks_um < 0 or min_volume_um3 < 0:
        raise InputError("heal_cracks_um and min_volume_um3 must be >= 0 µm")
    return mask, sp, float(max(sp) if h is None else h)


def _result(run: _Run, mask: np.ndarray, *, method: str, heal_cracks_um: float,
            h_um: float | None,
            spacing: tuple[float, float, float]) -> Separation:
    """The :class:`Separation` of a run (scored on first use)."""
    return Separation(labels=run.labels, method=method, heal_cracks_um=float(heal_cracks_um),
                      h_um=h_um, n_phase_voxels=int(mask.sum()), n_markers=run.n_markers,
                      n_removed_small=run.n_small, n_resplit=run.n_resplit,
                      n_rehealed=run.n_rehealed, _run=run, _spacing=spacing)


def separate_distance(
    phases: Any,
    *,
    phase: str | int | None = None,
    class_map: Mapping[str, int] | None = None,
    spacing: float | Iterable[float] | None = None,
    heal_cracks_um: float = 0.0,
    h: float | None = None,
    min_volume_um3: float = 0.0,
    compactness: float = 0.0,
    smooth: float = 1.0,
    resplit: bool = True,
    heal_alternative: float = 1.25,
    decisions: Decisions | None = None,
) -> Separation:
    """Split the particle phase by a watershed of its (healed) distance transform.

    Parameters
    ----------
    phases, phase, class_map, spacing, heal_cracks_um, h, min_volume_um3, compactness, smooth
        As :func:`separate_particles`.
    resplit : bool
        With healing: look again at the particles that are much less convex than the
        typical one (the healing closing may have bridged them to a neighbour) and split
        them where the pieces fit their inscribed balls better; cracked particles stay
        whole (:func:`electrode_ct.particles.resplit.resplit_merged`).
    heal_alternative : float
        With healing: also separate with cracks healed up to ``heal_alternative *
        heal_cracks_um`` and, wherever the two results disagree, keep the particles that
        look more like single particles (smaller volume-weighted confidence
        down-weighting; :mod:`electrode_ct.particles.hypotheses`). A crack the
        segmentation widened beyond the given width is bridged by the wider one, while the
        narrower one keeps the small particles the wider closing would merge. 1 (or less)
        disables it.
    decisions : Decisions, optional
        Volume-wide medians for a block of a larger volume (default: this volume's).

    Returns
    -------
    Separation
    """
    mask, sp, h_um = _inputs(phases, phase=phase, class_map=class_map, spacing=spacing,
                             heal_cracks_um=heal_cracks_um, h=h, min_volume_um3=min_volume_um3)
    settings = {"spacing": sp, "h_um": h_um, "smooth": smooth, "compactness": compactness,
                "resplit": resplit, "min_volume_um3": min_volume_um3}
    run = distance_hypotheses(mask, heal_cracks_um, heal_alternative=heal_alternative,
                              given=decisions or Decisions(), **settings)
    return _result(run, mask, method="distance", heal_cracks_um=heal_cracks_um, h_um=h_um,
                   spacing=sp)


def separate_boundary(
    phases: Any,
    boundary: Any,
    *,
    phase: str | int | None = None,
    class_map: Mapping[str, int] | None = None,
    spacing: float | Iterable[float] | None = None,
    heal_cracks_um: float = 0.0,
    h: float | None = None,
    min_volume_um3: float = 0.0,
    compactness: float = 0.0,
    smooth: float = 1.0,
) -> Separation:
    """Split the particle phase by a watershed of a boundary-probability map.

    Seeds are the h-maxima of the distance transform of the cores (the healed phase where
    ``boundary`` < 0.5); the watershed floods ``boundary`` minus the normalised core
    distance over the healed phase.

    Parameters
    ----------
    phases : numpy.ndarray or Volume
        As :func:`separate_particles`.
    boundary : numpy.ndarray or Volume
        Boundary probability in [0, 1], same shape as ``phases``.
    phase, class_map, spacing, heal_cracks_um, h, min_volume_um3, compactness, smooth
        As :func:`separate_particles`.

    Returns
    -------
    Separation

    Raises
    ------
    InputError
        No boundary map (and as :func:`separate_particles`).
    ShapeError
        A boundary map of another shape.
    """
    if boundary is None:
        raise InputError("boundary: method 'boundary' needs a boundary-probability map")
    mask, sp, h_um = _inputs(phases, phase=phase, class_map=class_map, spacing=spacing,
                             heal_cracks_um=heal_cracks_um, h=h, min_volume_um3=min_volume_um3)
    bnd = check_boundary(np.asarray(getattr(boundary, "data", boundary)))
    if bnd.shape != mask.shape:
        raise ShapeError(f"boundary: shape {bnd.shape} differs from phases {mask.shape}")
    run = _boundary_run(mask, _healed(mask, heal_cracks_um, sp), bnd, spacing=sp, h_um=h_um,
                        smooth=smooth, compactness=compactness, min_volume_um3=min_volume_um3)
    return _result(run, mask, method="boundary", heal_cracks_um=heal_cracks_um, h_um=h_um,
                   spacing=sp)


def separate_triplanar(
    phases: Any,
    planes: Sequence[np.ndarray] | None = None,
    *,
    phase: str | int | None = None,
    class_map: Mapping[str, int] | None = None,
    spacing: float | Iterable[float] | None = None,
    heal_cracks_um: float = 0.0,
    h: float | None = None,
    min_volume_um3: float = 0.0,
    compactness: float = 0.0,
    smooth: float = 1.0,
) -> Separation:
    """Split the particle phase by voting slice-wise 2-D predictions into 3-D.

    The three planes give a foreground (2 of 3 votes) and a boundary map
    (:func:`boundary_from_planes`); the particles are then separated as by
    :func:`separate_boundary` over the foreground (with healing: the foreground plus the
    healed phase).

    Parameters
    ----------
    phases : numpy.ndarray or Volume
        As :func:`separate_particles`.
    planes : sequence of 3 arrays, optional
        Slice-wise predictions along z (XY), y (XZ) and x (YZ), stacked back into volumes
        of the shape of ``phases``. Without them, the particle mask itself is used as the
        foreground of all three.
    phase, class_map, spacing, heal_cracks_um, h, min_volume_um3, compactness, smooth
        As :func:`separate_particles`.

    Returns
    -------
    Separation
    """
    mask, sp, h_um = _inputs(phases, phase=phase, class_map=class_map, spacing=spacing,
                             heal_cracks_um=heal_cracks_um, h=h, min_volume_um3=min_volume_um3)
    fg, bnd = boundary_from_planes(planes if planes is not None else [mask] * 3)
    if fg.shape != mask.shape:
        raise ShapeError(f"planes: shape {fg.shape} differs from phases {mask.shape}")
    region = (fg | _healed(mask, heal_cracks_um, sp)) if heal_cracks_um > 0 else fg
    run = _boundary_run(mask, region, bnd, spacing=sp, h_um=h_um, smooth=smooth,
                        compactness=compactness, min_volume_um3=min_volume_um3)
    return _result(run, mask, method="triplanar", heal_cracks_um=heal_cracks_um, h_um=h_um,
                   spacing=sp)


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
    decisions: Decisions | None = None,
) -> Separation:
    """Split the particle phase into particles with the method named ``method``.

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
        :func:`separate_distance`, :func:`separate_boundary` or
        :func:`separate_triplanar` (see the module docstring).
    boundary : numpy.ndarray, optional
        Boundary probability map in [0, 1] (same shape), required by ``boundary``.
    planes : sequence of 3 arrays, optional
        Slice-wise predictions for ``triplanar`` (see :func:`separate_triplanar`).
    min_volume_um3 : float
        Particles with a smaller volume (µm³, all pieces together) are removed.
    compactness : float
        Compact-watershed parameter (0: classic watershed).
    smooth : float
        Gaussian smoothing (voxels) of the distance map before seeding; 0 disables.
    resplit, heal_alternative, decisions : bool, float, Decisions
        ``distance`` only: see :func:`separate_distance`.

    Returns
    -------
    Separation
        ``labels`` (uint32, 0 background, sequential) with the particle confidence
        (``scores``) and the counts.

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
    >>> separate_particles(two, phase=1).n_particles
    2
    """
    if method not in METHODS:
        raise InputError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    common = {"phase": phase, "class_map": class_map, "spacing": spacing,
              "heal_cracks_um": heal_cracks_um, "h": h, "min_volume_um3": min_volume_um3,
              "compactness": compactness, "smooth": smooth}
    if method == "distance":
        return separate_distance(phases, resplit=resplit, heal_alternative=heal_alternative,
                                 decisions=decisions, **common)
    if method == "boundary":
        return separate_boundary(phases, boundary, **common)
    return separate_triplanar(phases, planes, **common)
