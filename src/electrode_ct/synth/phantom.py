"""Electrode phantoms with exact ground truth: :func:`electrode` and :class:`Phantom`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from electrode_ct.synth.cbd import at_most, count_threshold, phase_block
from electrode_ct.synth.flaws import KINDS, Flaws, expected_flaw_voxels_um3
from electrode_ct.synth.imaging import Preset, forward, get_preset
from electrode_ct.synth.render import coverage_blocks, nearest_two
from electrode_ct.synth.scene import Params, Scene, build_scene, validate
from electrode_ct.volume import DEFAULT_PHASES, Volume

TRUTH_COLUMNS = ["label", "centroid_z", "centroid_y", "centroid_x", "volume_um3",
                 "equivalent_diameter_um", "cracked", "crack_volume_fraction", "state"]
"""Columns of the per-particle truth table (centroids in voxel index units)."""

CRACK_CLASSES = {"background": 0, "crack": 1}


@dataclass
class Phantom:
    """A synthetic scan and its truth.

    Attributes
    ----------
    grey : Volume
        uint8/uint16 grey volume.
    phases : Volume
        uint8 phase labels (0 pore, 1 cbd, 2 active; 3 collector when present); crack
        voxels are pore. Class map attached.
    particles : Volume
        uint32 particle labels (0 background), cracks inside a particle keep its label.
    cracks : Volume
        uint8 crack/flaw mask (1 where a flaw fills at least half the voxel).
    truth : pandas.DataFrame
        One row per particle, columns :data:`TRUTH_COLUMNS`.
    info : dict
        Parameters, seed, achieved fractions, counts, thresholds, transform, timings.
    """

    grey: Volume
    phases: Volume
    particles: Volume
    cracks: Volume
    truth: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)

    def save(self, out_dir: str | Path) -> Path:
        """Write ``grey.tif``, ``phases.tif``, ``particles.tif``, ``cracks.tif``,
        ``truth.parquet`` and ``phantom.json`` into ``out_dir`` (each atomically)."""
        from electrode_ct.io import write, write_json, write_table
        from electrode_ct.provenance import record

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write(self.grey, out / "grey.tif")
        write(self.phases, out / "phases.tif")
        write(self.particles, out / "particles.tif")
        write(self.cracks, out / "cracks.tif")
        prov = record(command="synth", parameters=self.info.get("parameters"),
                      seed=self.info.get("seed"), timings_s=self.info.get("timings_s"))
        write_table(self.truth, out / "truth.parquet", metadata=prov)
        write_json({**self.info, "provenance": prov}, out / "phantom.json")
        return out


def _visible(labels: np.ndarray, d1: np.ndarray, delta: float, n: int) -> np.ndarray:
    counts = np.zeros(n + 1, np.int64)
    for z in range(0, labels.shape[0], 16):
        lab = labels[z:z + 16]
        counts += np.bincount(lab[at_most(d1[z:z + 16], delta)], minlength=n + 1)
    return counts[1:]


def _particle_levels(scene: Scene, preset: Preset, n: int) -> np.ndarray:
    """Active-minus-pore level of every scene particle (index + 1; 0 = none), float32.

    Each particle's level is the preset's active level plus ``particle_sd`` × contrast ×
    N(0, 1), drawn once per scene particle (the same in every operando state).
    """
    rng = np.random.default_rng([scene.params.seed, 5150])
    z = rng.standard_normal(len(scene.particles))[:n]
    out = np.empty(n + 1, np.float32)
    out[0] = preset.contrast
    out[1:] = preset.contrast * (1 + preset.particle_sd * z)
    return out


def choose_cracked(scene: Scene, counts: np.ndarray, fraction: float) -> np.ndarray:
    """Indices of the particles to crack: ``round(fraction * visible)``, centres in view first."""
    rng = np.random.default_rng([scene.params.seed, 31337])
    visible = np.flatnonzero(counts > 0)
    n_crack = int(round(fraction * len(visible)))
    pref = visible[scene.inside_view[visible]]
    rest = visible[~scene.inside_view[visible]]
    order = np.concatenate([rng.permutation(pref), rng.permutation(rest)])
    return np.sort(order[:n_crack])


@dataclass
class _Fields:
    """Distance fields of one state and the electrode region they are counted over."""

    labels: np.ndarray
    d1: np.ndarray
    d12: np.ndarray
    z_lo: int
    z_hi: int
    n_region: int

    @property
    def region(self) -> np.ndarray:
        """True on the slices of the electrode (False on the current collector)."""
        r = np.zeros(self.labels.shape[0], bool)
        r[self.z_lo:self.z_hi] = True
        return r


def _fields(scene: Scene, parts: Any) -> _Fields:
    p, grid = scene.params, scene.grid
    margin = max(0.5 * p.radius_mean_um, 2.5 * max(p.voxel_size))
    labels, d1, d12 = nearest_two(parts, grid, field=scene.roughness, margin_um=margin)
    z_lo, z_hi = scene.electrode_slices
    return _Fields(labels, d1, d12, z_lo, z_hi, (z_hi - z_lo) * grid.shape[1] * grid.shape[2])


def _first_thresholds(scene: Scene, parts: Any, f: _Fields, flaws: Flaws | None
                      ) -> tuple[dict[str, Any], Flaws]:
    """Surface offset hitting the active fraction once the flaws' pore is taken out
    (and the cracked particles, when not given, among the visible ones)."""
    p, n = scene.params, len(parts)
    vox_um3 = float(np.prod(p.voxel_size))
    d1e, le = f.d1[f.z_lo:f.z_hi], f.labels[f.z_lo:f.z_hi]
    target = p.active_fraction * f.n_region
    counts = _visible(le, d1e, count_threshold(d1e, target), n)
    chosen = None
    if flaws is None:
        chosen = choose_cracked(scene, counts, p.cracked_fraction)
        flaws = scene.flaws.with_active(chosen)
    # pre-compensate the active voxels that flaws will turn into pore
    full = 4 / 3 * np.pi * parts.radius_um**3
    seen = np.clip(counts * vox_um3 / full, 0, 1)
    extra = float((expected_flaw_voxels_um3(flaws, parts.radius_um,
                                            float(np.mean(p.voxel_size))) * seen).sum()
                  / vox_um3)
    delta = count_threshold(d1e, target + extra)
    if chosen is not None:  # the visible set may have changed by a particle or two
        counts = _visible(le, d1e, delta, n)
        flaws = scene.flaws.with_active(choose_cracked(scene, counts, p.cracked_fraction))
    return {"delta_um": delta, "neck_um": None}, flaws


def _flaw_coverage(scene: Scene, parts: Any, delta: float, flaws: Flaws
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flaw coverage (uint16, × 65535), crack mask (coverage ≥ ½) and flaw sums per particle."""
    grid, q = scene.grid, np.float32(65535)
    buf = np.empty(grid.shape, np.uint16)
    cracks = np.empty(grid.shape, np.uint8)
    flaw_sum = np.zeros(len(parts))
    for z0, z1, _, flaw in coverage_blocks(parts, grid, field=scene.roughness, delta_um=delta,
                                           flaws=flaws, factor=scene.params.supersample,
                                           flaw_sums=flaw_sum, solid=False):
        cracks[z0:z1] = flaw >= 0.5
        flaw *= q
        np.rint(flaw, out=flaw)
        buf[z0:z1] = flaw
    return buf, cracks, flaw_sum


def _final_thresholds(p: Params, f: _Fields, cracks: np.ndarray) -> dict[str, Any]:
    """Exact targets now that the flaw voxels (pore) are known; the surface moves by a
    few hundredths of a voxel at most, far below the PSF."""
    d1e, d12e = f.d1[f.z_lo:f.z_hi], f.d12[f.z_lo:f.z_hi]
    delta = count_threshold(d1e, p.active_fraction * f.n_region, exclude=cracks[f.z_lo:f.z_hi])
    neck = count_threshold(d12e, p.cbd_fraction * f.n_region, above=(d1e, delta))
    return {"delta_um": delta, "neck_um": neck}


def _phases(f: _Fields, cracks: np.ndarray, delta: float, neck: float) -> np.ndarray:
    """Phase volume; clears labels outside the particles and cracks in the collector
    (both in place)."""
    nz = f.labels.shape[0]
    region = f.region
    phases = np.empty(f.labels.shape, np.uint8)
    for z0 in range(0, nz, 16):
        z1 = min(nz, z0 + 16)
        ph = phase_block(f.d1[z0:z1], f.d12[z0:z1], delta, neck)
        crack = cracks[z0:z1].view(bool)
        ph[crack & (ph == 2)] = 0
        lab = f.labels[z0:z1]
        coll = ~region[z0:z1]
        if coll.any():
            ph[coll] = 3
            cracks[z0:z1][coll] = 0
        phases[z0:z1] = ph
        out = ~at_most(f.d1[z0:z1], delta)
        out[coll] = True
        lab[out] = 0
    return phases


def _ideal_grey(scene: Scene, parts: Any, preset: Preset, delta: float, phases: np.ndarray,
                labels: np.ndarray, buf: np.ndarray) -> None:
    """Noise-free grey levels (× 65535) written into ``buf``, which holds the flaw
    coverage on entry."""
    q = np.float32(65535)
    cbd_gain = np.float32((preset.cbd - preset.pore) / (preset.active - preset.pore))
    # active-pore contrast per particle (index + 1; label 0: the preset's), see
    # Preset.particle_sd; voxels outside the particles' surfaces take the preset's
    level = _particle_levels(scene, preset, len(parts))
    for z0, z1, solid, _ in coverage_blocks(parts, scene.grid, field=scene.roughness,
                                            delta_um=delta, flaws=None,
                                            factor=scene.params.supersample):
        solid -= buf[z0:z1] * np.float32(1 / 65535)
        np.maximum(solid, 0, out=solid)  # flaws came from the pre-fit surface offset
        ph = phases[z0:z1]
        # CBD fills what solid leaves of its voxels: (1 - solid) * (cbd - pore)
        np.add(solid, cbd_gain * (1 - solid), out=solid, where=ph == 1)
        solid *= level[labels[z0:z1]]
        solid += np.float32(preset.pore)
        solid[ph == 3] = preset.collector
        solid *= q
        np.rint(solid, out=solid)
        buf[z0:z1] = solid


def _lap(timings: dict[str, float], name: str, t0: float) -> None:
    timings[name] = time.perf_counter() - t0 - sum(timings.values())


def render_state(scene: Scene, *, parts=None, flaws: Flaws | None = None,
                 thresholds: dict[str, Any] | None = None, ids: np.ndarray | None = None,
                 state: int = 0, noise_seed: int | None = None) -> tuple[Phantom, dict]:
    """Render one state of a scene into a :class:`Phantom`.

    Parameters
    ----------
    scene : Scene
        Packed scene.
    parts : Particles, optional
        Particles of this state (default: the scene's, untransformed).
    flaws : Flaws, optional
        Flaws of this state (default: chosen here, ``cracked_fraction`` of the visible
        particles, fully open).
    thresholds : dict, optional
        ``delta_um``/``neck_um`` from an earlier state (default: chosen here to hit the
        target fractions).
    ids : ndarray of int64, optional
        Particle id per scene particle (0 = not yet assigned; updated in place with new
        ids); default: sequential ids in scene order.
    state : int
        State index written to the truth table.
    noise_seed : int, optional
        Noise seed (default: the scene seed).

    Returns
    -------
    Phantom, dict
        The phantom and the thresholds/flaws used (to reuse in later states).
    """
    p = scene.params
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    parts = scene.particles if parts is None else parts
    f = _fields(scene, parts)
    _lap(timings, "distance", t0)
    if thresholds is None:
        thresholds, flaws = _first_thresholds(scene, parts, f, flaws)
    assert flaws is not None
    _lap(timings, "thresholds", t0)
    preset = get_preset(p.modality, snr=p.snr, noise=p.noise, **p.imaging)
    # one uint16 buffer holds the flaw coverage (× 65535), then the ideal grey levels,
    # then (16 bits) the grey output itself, so neither costs extra memory
    buf, cracks, flaw_sum = _flaw_coverage(scene, parts, thresholds["delta_um"], flaws)
    _lap(timings, "flaws", t0)
    if thresholds["neck_um"] is None:
        thresholds = _final_thresholds(p, f, cracks)
    delta, neck = thresholds["delta_um"], thresholds["neck_um"]
    labels = f.labels
    phases = _phases(f, cracks, delta, neck)
    f.d1 = f.d12 = None  # type: ignore[assignment]  # free the distance fields
    _lap(timings, "phases", t0)
    _ideal_grey(scene, parts, preset, delta, phases, labels, buf)
    _lap(timings, "coverage", t0)
    grey = forward(buf, grid=scene.grid, preset=preset, bits=p.bits,
                   seed=p.seed if noise_seed is None else noise_seed, shading=scene.shading,
                   out=buf if p.bits == 16 else None)
    del buf
    _lap(timings, "imaging", t0)
    truth, labels = _truth(labels, flaw_sum / p.supersample**3, flaws, ids, state, p.voxel_size)
    _lap(timings, "truth", t0)
    info = _info(scene, preset, phases, cracks, truth, f, delta, neck)
    info["state"] = state
    info["timings_s"] = timings
    phantom = _phantom(p, grey, phases, labels, cracks, truth, info, state)
    return phantom, {"thresholds": thresholds, "flaws": flaws}


def _info(scene: Scene, preset: Preset, phases: np.ndarray, cracks: np.ndarray,
          truth: pd.DataFrame, f: _Fields, delta: float, neck: float) -> dict[str, Any]:
    """The phantom's description: targets, measured fractions, thresholds, imaging."""
    p, nz = scene.params, phases.shape[0]
    pe = phases[f.z_lo:f.z_hi]
    fractions = {name: float(np.count_nonzero(pe == v)) / f.n_region
                 for name, v in DEFAULT_PHASES.items()}
    fractions["crack"] = float(np.count_nonzero(cracks)) / f.n_region
    z_lo, z_hi = f.z_lo, f.z_hi
    return {
        "state": None,
        "seed": p.seed,
        "parameters": p.as_dict(),
        "targets": {"active": p.active_fraction, "cbd": p.cbd_fraction},
        "fractions": fractions,
        "particles": len(truth),
        "cracked": int(truth["cracked"].sum()),
        "thresholds_um": {"surface_offset": delta, "cbd_neck": neck},
        "imaging": preset.as_dict(),
        "packing": scene.packing,
        "collector_slices": [0, z_lo] if z_lo > 0 else ([z_hi, nz] if z_hi < nz else None),
        "flaw_kinds": list(KINDS),
        "timings_s": None,
    }


def _phantom(p: Params, grey: np.ndarray, phases: np.ndarray, labels: np.ndarray,
             cracks: np.ndarray, truth: pd.DataFrame, info: dict[str, Any],
             state: int) -> Phantom:
    spacing = p.voxel_size
    meta = {"source": "electrode_ct.synth", "state": state}
    class_map = dict(DEFAULT_PHASES)
    if p.collector:
        class_map["collector"] = 3
    return Phantom(
        grey=Volume(grey, spacing=spacing, metadata={**meta, "modality": p.modality}),
        phases=Volume(phases, spacing=spacing, metadata=dict(meta)).with_class_map(class_map),
        particles=Volume(labels, spacing=spacing, metadata=dict(meta)),
        cracks=Volume(cracks, spacing=spacing, metadata=dict(meta)).with_class_map(
            CRACK_CLASSES),
        truth=truth, info=info)


def _truth(labels: np.ndarray, flaw_sum: np.ndarray, flaws: Flaws, ids: np.ndarray | None,
           state: int, spacing: tuple[float, float, float]) -> tuple[pd.DataFrame, np.ndarray]:
    """Relabel scene indices to particle ids (in place) and build the truth table."""
    n = len(flaw_sum)
    nz, ny, nx = labels.shape
    count = np.zeros(n + 1)
    sums = np.zeros((3, n + 1))
    yy, xx = np.mgrid[:ny, :nx]
    for z in range(nz):
        lab = labels[z].ravel()
        count += np.bincount(lab, minlength=n + 1)
        sums[0] += np.bincount(lab, minlength=n + 1) * z
        sums[1] += np.bincount(lab, weights=yy.ravel(), minlength=n + 1)
        sums[2] += np.bincount(lab, weights=xx.ravel(), minlength=n + 1)
    present = np.flatnonzero(count[1:] > 0)
    if ids is None:
        ids = np.zeros(n, np.int64)
    new = present[ids[present] == 0]
    ids[new] = ids.max(initial=0) + 1 + np.arange(len(new))
    lut = np.zeros(n + 1, np.uint32)
    lut[1:] = ids
    for z in range(nz):
        labels[z] = lut[labels[z]]
    k = present + 1
    vol = count[k] * float(np.prod(spacing))
    truth = pd.DataFrame({
        "label": ids[present].astype(np.uint32),
        "centroid_z": sums[0, k] / count[k],
        "centroid_y": sums[1, k] / count[k],
        "centroid_x": sums[2, k] / count[k],
        "volume_um3": vol,
        "equivalent_diameter_um": np.cbrt(6 * vol / np.pi),
        "cracked": flaws.active[present].astype(bool),
        "crack_volume_fraction": np.minimum(flaw_sum[present] / count[k], 1.0),
        "state": np.full(len(present), state, np.int64),
    })
    truth = truth.sort_values("label", kind="stable").reset_index(drop=True)
    return truth[TRUTH_COLUMNS], labels


def electrode(shape: tuple[int, int, int] = (64, 64, 64), *, voxel_size: float | tuple = 0.5,
              active_fraction: float = 0.5, cbd_fraction: float = 0.1,
              radius_mean_um: float = 4.0, radius_sd_um: float = 1.0,
              aspect_sd: float = 0.1, roughness: float = 0.04, calender: float = 0.0,
              collector: str | None = None, collector_um: float = 2.0,
              cracked_fraction: float = 0.3, crack_width_um: float = 0.5,
              crack_kinds: tuple[str, ...] = KINDS, modality: str = "micro",
              snr: float | None = None, noise: str | None = None, supersample: int = 2,
              bits: int = 16, seed: int = 0, **imaging: Any) -> Phantom:
    """Generate an electrode phantom with exact ground truth.

    Parameters
    ----------
    shape : tuple of 3 int
        Output shape (z, y, x) in voxels.
    voxel_size : float or 3 floats
        Voxel size in µm (isotropic or z, y, x).
    active_fraction, cbd_fraction : float
        Target volume fractions of active material and carbon-binder domain (of the
        electrode region; achieved to within a voxel before flaws, see ``info``).
    radius_mean_um, radius_sd_um : float
        Mean and standard deviation of the particle radius itself (log-normal), µm.
    aspect_sd : float
        Spread of the ellipsoid aspect ratio (0 = spheres).
    roughness : float
        Surface roughness amplitude as a fraction of ``radius_mean_um``.
    calender : float
        Calendering compression along z (0 = none); needed above 0.65 active fraction.
    collector : {None, 'z0', 'z1'}
        Current-collector plane at the first or last slices (phase 3).
    collector_um : float
        Collector thickness, µm.
    cracked_fraction : float
        Fraction of the visible particles carrying a flaw.
    crack_width_um : float
        Mean full crack width, µm (sub-voxel allowed).
    crack_kinds : tuple of str
        Flaw kinds drawn: ``network``, ``radial``, ``void``.
    modality : {'micro', 'nano'}
        Imaging preset.
    snr : float, optional
        Contrast-to-noise ratio (active - pore) / σ_noise; default from the preset.
    noise : {'gaussian', 'poisson'}, optional
        Noise model; default from the preset.
    supersample : int
        Sub-samples per axis for partial volume (2 default; 4 for finer cracks).
    bits : {8, 16}
        Grey output depth.
    seed : int
        Seed of every random draw (same seed, same arrays).
    **imaging
        Overrides of :class:`~electrode_ct.synth.imaging.Preset` fields (``psf_sigma_vox``,
        ``fringe``, ``cupping``, ``rings``, ``shading``, levels ...).

    Returns
    -------
    Phantom

    Raises
    ------
    InputError
        Unmeetable fractions (active + cbd > 0.95), non-positive sizes, a shape too small
        for the particle size, an unknown modality.

    Examples
    --------
    >>> from electrode_ct.synth import electrode
    >>> ph = electrode((48, 48, 48), voxel_size=0.5, radius_mean_um=3, seed=1)
    >>> ph.grey.shape, sorted(ph.phases.class_map)
    ((48, 48, 48), ['active', 'cbd', 'pore'])
    """
    params = validate(Params(
        shape=shape, voxel_size=voxel_size, active_fraction=active_fraction,
        cbd_fraction=cbd_fraction, radius_mean_um=radius_mean_um, radius_sd_um=radius_sd_um,
        aspect_sd=aspect_sd, roughness=roughness, calender=calender, collector=collector,
        collector_um=collector_um, cracked_fraction=cracked_fraction,
        crack_width_um=crack_width_um, crack_kinds=tuple(crack_kinds), modality=modality,
        snr=snr, noise=noise, supersample=supersample, bits=bits, seed=seed,
        imaging=dict(imaging)))
    get_preset(params.modality, snr=params.snr, noise=params.noise, **params.imaging)
    t0 = time.perf_counter()
    scene = build_scene(params)
    t_pack = time.perf_counter() - t0
    phantom, _ = render_state(scene)
    phantom.info["timings_s"] = {"packing": t_pack, **phantom.info["timings_s"]}
    return phantom
