"""Particle separation with a learned instance model (the published tri-planar route).

The ``particles-cnn`` model (:mod:`electrode_ct.segment.cnn.instances`) predicts, slice by
slice along XY, XZ and YZ, the probabilities of background, particle interior and the
boundary between touching particles; their mean over the three plane directions gives

- the particle region: where the background probability is below 0.5 (a crack the
  network sees inside a body stays in it);
- the boundary map: the boundary probability, in [0, 1].

The particles are then the watershed of the boundary map over the region, seeded by the
cores (region minus the likely boundaries; relative h-maxima of their distance map; both
thresholds from the model's record, :func:`marker_settings`), cut back to a
phase mask when one is given, cleaned of small pieces and renumbered — the steps of
:func:`~electrode_ct.particles.separate.separate_boundary`.

:func:`boundary_map` gives the boundary map alone (``ect segment predict --boundary``,
``ect particles --method boundary``); :func:`plane_instances` turns one plane direction's
probabilities into 2-D instance labels for ``--method triplanar``.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources
from typing import Any

import numpy as np

from electrode_ct.errors import InputError, ShapeError
from electrode_ct.particles.separate import (
    Separation,
    _boundary_run,
    _result,
    particle_mask,
)
from electrode_ct.volume import as_spacing

CORE_BELOW = 0.2
"""Cores are the region where the tri-planar boundary probability is below this, for a
model without its own ``prediction["core_below"]`` (:func:`marker_settings`). The averaged
boundary probability of a thin contact stays low (it is seen by two of the three plane
directions and is 2 voxels wide): on a held-out phantom (the test phantom, seed 2) 0.2
gave AP@0.5 0.93 against 0.71 at 0.5 and 0.67 at 0.125 with a tiny model. How confident
a model's boundaries are depends on its training: the shipped model records 0.35, chosen
on phantoms of seeds 21 and 22 (docs/particles.md)."""

SEED_DEPTH = 0.4
"""Default seeds (model without ``prediction["seed_depth"]``): relative h-maxima of the
cores' distance map (:func:`~electrode_ct.particles.seeding.relative_seed_markers`): two
peaks stay two particles when the saddle between them is below exp(-0.4) ≈ 0.67 of the
lower peak. With the shipped model an absolute h of 0.2 µm split elongated particles at
every dimple of their distance ridge (harder family AP@0.5 0.05 on the tuning seeds,
0.58 with this rule)."""


def marker_settings(model: Any) -> tuple[float, float]:
    """``(core_below, seed_depth)`` of a model: its ``prediction`` record's, else
    :data:`CORE_BELOW` and :data:`SEED_DEPTH`."""
    pred = getattr(model, "prediction", {}) or {}
    return (float(pred.get("core_below", CORE_BELOW)),
            float(pred.get("seed_depth", SEED_DEPTH)))


DEFAULT_MODEL = "particles_default.ectmodel"
"""The shipped instance model (in :mod:`electrode_ct.data`), trained on phantoms by
``scripts/train_default_particles_model.py``."""


def default_model() -> Any:
    """The shipped ``particles-cnn`` model (no download; read from the package data)."""
    from electrode_ct.segment.cnn.instances import load_instance_model

    with resources.as_file(resources.files("electrode_ct.data") / DEFAULT_MODEL) as path:
        return load_instance_model(path)


def resolve_model(model: Any) -> Any:
    """An instance model from a path, a loaded model, or ``None`` (the shipped default)."""
    if model is None:
        return default_model()
    if isinstance(model, str) or hasattr(model, "__fspath__"):
        from electrode_ct.segment.cnn.instances import load_instance_model

        return load_instance_model(model)
    return model


def tri_planar(planes: list[np.ndarray]) -> np.ndarray:
    """Mean of the three plane directions' class probabilities (K, z, y, x)."""
    if len(planes) != 3:
        raise InputError(f"planes: expected 3 plane predictions (XY, XZ, YZ), got {len(planes)}")
    return (planes[0] + planes[1] + planes[2]) / np.float32(3)


def learned_maps(model: Any, grey: np.ndarray, *, device: str = "cpu",
                 threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Particle region (bool) and boundary probability (float32, [0, 1]) of a grey volume.

    Both from the tri-planar mean of ``model``'s plane predictions.
    """
    from electrode_ct.segment.cnn.instances import grey_volume

    arr = grey_volume(grey)
    prob = model.predict_proba(arr, mode="triplanar", device=device, threads=threads)
    region = prob[model.class_index("background")] < 0.5
    return region, np.clip(prob[model.class_index("boundary")], 0.0, 1.0)


def boundary_map(model: Any, grey: np.ndarray, **options: Any) -> np.ndarray:
    """The tri-planar boundary probability (float32 in [0, 1]) of a grey volume."""
    return learned_maps(resolve_model(model), grey, **options)[1]


def plane_instances(prob: np.ndarray, axis: int, *, model: Any) -> np.ndarray:
    """2-D instance labels of one plane direction's probabilities (slice by slice).

    In each slice perpendicular to ``axis`` the cores (interior most likely) are labelled
    by connectivity and grown over the particle pixels (background below 0.5), so that
    touching sections keep their own ids; ids are unique over the volume.
    """
    from scipy import ndimage as ndi
    from skimage.segmentation import expand_labels

    fg = np.moveaxis(prob[model.class_index("background")] < 0.5, axis, 0)
    core = np.moveaxis(prob[model.class_index("interior")] >= 0.5, axis, 0) & fg
    out = np.zeros(fg.shape, np.int64)
    offset = 0
    for i in range(fg.shape[0]):
        lab, n = ndi.label(core[i])
        lab = np.where(fg[i], expand_labels(lab, 3), 0)
        out[i] = np.where(lab > 0, lab + offset, 0)
        offset += n
    return np.moveaxis(out, 0, axis)


def separate_learned(
    grey: Any,
    model: Any = None,
    *,
    phases: Any = None,
    phase: str | int | None = None,
    spacing: float | Iterable[float] | None = None,
    h: float | None = None,
    min_volume_um3: float = 0.0,
    compactness: float = 0.0,
    smooth: float = 1.0,
    device: str = "cpu",
    threads: int | None = None,
) -> Separation:
    """Separate the particles of a grey volume with a learned instance model.

    Parameters
    ----------
    grey : numpy.ndarray or Volume
        Grey values (z, y, x); a Volume brings its spacing.
    model : InstanceModel or path, optional
        A ``particles-cnn`` model (default: the shipped one, :func:`default_model`).
    phases : numpy.ndarray or Volume, optional
        A phase segmentation (labels with ``phase``, a boolean mask or a probability map)
        to cut the particles back to (default: the model's own particle region).
    phase : str or int, optional
        Particle phase of ``phases`` (as :func:`~.separate.particle_mask`).
    spacing : float or 3 floats, optional
        Voxel size (z, y, x) in µm (default: the Volume's, else 1).
    h : float, optional
        Absolute seed height (µm of core distance); default: relative seeds
        (:func:`marker_settings`).
    min_volume_um3, compactness, smooth : float
        As :func:`~electrode_ct.particles.separate.separate_particles`.
    device, threads
        Network inference: ``cpu``/``cuda`` and torch CPU threads.

    Returns
    -------
    Separation
        ``method="learned"``.

    Raises
    ------
    ModelError
        A model file of another kind.
    ShapeError
        ``phases`` of another shape than ``grey``.
    """
    if spacing is None:
        spacing = getattr(grey, "spacing", None)
    sp = as_spacing(spacing, name="spacing")
    arr = np.asarray(grey.numpy() if hasattr(grey, "numpy") else grey)
    net = resolve_model(model)
    region, bnd = learned_maps(net, arr, device=device, threads=threads)
    mask = region
    if phases is not None:
        cut = particle_mask(phases, phase=phase)
        if cut.shape != arr.shape:
            raise ShapeError(f"phases: shape {cut.shape} differs from the grey volume's "
                             f"{arr.shape}")
        mask = cut & region
    return _learned_result(mask, region, bnd, spacing=sp, h=h, min_volume_um3=min_volume_um3,
                           compactness=compactness, smooth=smooth,
                           markers=marker_settings(net))


def _learned_result(mask: np.ndarray, region: np.ndarray, bnd: np.ndarray, *,
                    spacing: tuple[float, float, float], h: float | None,
                    min_volume_um3: float, compactness: float, smooth: float,
                    markers: tuple[float, float] = (CORE_BELOW, SEED_DEPTH)) -> Separation:
    """Markers (cores below ``markers[0]``; relative h-maxima of depth ``markers[1]``
    unless ``h`` µm is given), watershed of ``bnd`` over ``region``, cut back to ``mask``,
    cleaned."""
    run = _boundary_run(mask, region, bnd, spacing=spacing, h_um=float(h or 0.0),
                        smooth=smooth, compactness=compactness,
                        min_volume_um3=min_volume_um3, core_below=markers[0],
                        relative_depth=markers[1] if h is None else None)
    return _result(run, mask, method="learned", heal_cracks_um=0.0,
                   h_um=None if h is None else float(h), spacing=spacing)


def separate_with_model(grey: np.ndarray, phases: Any, *, method: str, model: Any = None,
                        phase: str | int | None = None,
                        spacing: float | Iterable[float] | None = None,
                        heal_cracks_um: float = 0.0, h: float | None = None,
                        min_volume_um3: float = 0.0, threads: int | None = None) -> Separation:
    """The pipeline's model-driven methods: ``learned``, ``boundary`` or ``triplanar``.

    One pass of the instance model along XY, XZ and YZ feeds the chosen method:
    ``learned`` (:func:`separate_learned`, cut back to the phases), ``boundary`` (the
    tri-planar boundary map into :func:`~.separate.separate_boundary`) or ``triplanar``
    (each plane direction's 2-D instances, :func:`plane_instances`, voted by
    :func:`~.separate.separate_triplanar`).

    Raises
    ------
    InputError
        Another method.
    ShapeError
        Grey and phases of different shapes.
    """
    from electrode_ct.particles.separate import separate_boundary, separate_triplanar
    from electrode_ct.segment.cnn.instances import plane_probabilities

    if method not in ("learned", "boundary", "triplanar"):
        raise InputError(f"method: expected learned, boundary or triplanar, got {method!r}")
    arr = np.asarray(grey)
    if np.shape(getattr(phases, "data", phases)) != arr.shape:
        raise ShapeError(f"phases: shape {np.shape(getattr(phases, 'data', phases))} differs "
                         f"from the grey volume's {arr.shape}")
    net = resolve_model(model)
    planes = plane_probabilities(net, arr, threads=threads)
    sp = as_spacing(spacing, name="spacing")
    common = {"phase": phase, "spacing": sp, "heal_cracks_um": heal_cracks_um, "h": h,
              "min_volume_um3": min_volume_um3}
    if method == "triplanar":
        inst = [plane_instances(planes[ax], ax, model=net) for ax in range(3)]
        return separate_triplanar(phases, inst, **common)
    prob = tri_planar(planes)
    bnd = np.clip(prob[net.class_index("boundary")], 0.0, 1.0)
    if method == "boundary":
        return separate_boundary(phases, bnd, **common)
    region = prob[net.class_index("background")] < 0.5
    mask = particle_mask(phases, phase=phase) & region
    return _learned_result(mask, region, bnd, spacing=sp, h=h, min_volume_um3=min_volume_um3,
                           compactness=0.0, smooth=1.0, markers=marker_settings(net))
