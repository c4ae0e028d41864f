"""Build a particle scene: validated parameters, packing, calendering, periodic images, flaws."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from electrode_ct.errors import InputError
from electrode_ct.synth.flaws import KINDS, Flaws, draw_flaws
from electrode_ct.synth.imaging import PRESETS
from electrode_ct.synth.packing import (
    Particles,
    ellipsoid_shapes,
    pack_spheres,
    periodic_images,
    radii_for_fraction,
)
from electrode_ct.synth.render import Grid, WaveField, wave_field
from electrode_ct.volume import as_spacing


@dataclass
class Params:
    """All phantom parameters (units in the names; see :func:`electrode_ct.synth.electrode`)."""

    shape: tuple[int, int, int] = (64, 64, 64)
    voxel_size: tuple[float, float, float] = (0.5, 0.5, 0.5)
    active_fraction: float = 0.5
    cbd_fraction: float = 0.1
    radius_mean_um: float = 4.0
    radius_sd_um: float = 1.0
    aspect_sd: float = 0.1
    roughness: float = 0.04
    calender: float = 0.0
    collector: str | None = None
    collector_um: float = 2.0
    cracked_fraction: float = 0.3
    crack_width_um: float = 0.5
    crack_kinds: tuple[str, ...] = KINDS
    modality: str = "micro"
    snr: float | None = None
    noise: str | None = None
    supersample: int = 2
    bits: int = 16
    seed: int = 0
    imaging: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Parameters as a JSON-friendly dict."""
        return asdict(self)


def validate(p: Params) -> Params:
    """Check parameters; return a normalised copy.

    Raises
    ------
    InputError
        One clear message per problem (fractions that cannot be met, non-positive sizes,
        shape too small for the particle size, unknown modality, ...).
    """
    try:
        shape = tuple(int(s) for s in p.shape)
    except (TypeError, ValueError):
        raise InputError(f"shape: expected 3 whole numbers (Z Y X), got {p.shape!r}") from None
    if len(shape) != 3 or min(shape) < 8:
        raise InputError(f"shape: expected 3 sizes (Z Y X) of at least 8 voxels, got {shape}")
    spacing = as_spacing(p.voxel_size, name="voxel_size")
    if p.modality not in PRESETS:
        raise InputError(f"modality: unknown {p.modality!r}; expected one of "
                         f"{', '.join(sorted(PRESETS))}")
    if not p.radius_mean_um > 0:
        raise InputError(f"radius_mean_um: expected a positive radius in µm, got "
                         f"{p.radius_mean_um}")
    if not p.radius_sd_um >= 0:
        raise InputError(f"radius_sd_um: expected a standard deviation >= 0 µm, got "
                         f"{p.radius_sd_um}")
    if p.radius_mean_um < 1.5 * max(spacing):
        raise InputError(f"radius_mean_um: {p.radius_mean_um} µm is below 1.5 voxels "
                         f"({max(spacing)} µm voxels); use a smaller voxel size")
    extent = min(n * h for n, h in zip(shape, spacing, strict=True))
    if p.collector:
        extent = min(extent, shape[0] * spacing[0] - p.collector_um)
    if extent < 4 * p.radius_mean_um:
        raise InputError(f"shape: {shape} voxels of {spacing} µm is too small for particles "
                         f"of radius {p.radius_mean_um} µm; the smallest side must span at "
                         f"least 4 radii ({4 * p.radius_mean_um:g} µm)")
    if not 0 < p.active_fraction < 1:
        raise InputError(f"active_fraction: expected a value in (0, 1), got {p.active_fraction}")
    if not 0 <= p.cbd_fraction < 1:
        raise InputError(f"cbd_fraction: expected a value in [0, 1), got {p.cbd_fraction}")
    if p.active_fraction + p.cbd_fraction > 0.95:
        raise InputError(f"active_fraction + cbd_fraction = "
                         f"{p.active_fraction + p.cbd_fraction:g} cannot be met; expected "
                         f"<= 0.95 (pores need room)")
    if not 0 <= p.calender < 0.5:
        raise InputError(f"calender: expected a compression in [0, 0.5), got {p.calender}")
    if p.active_fraction * (1 - p.calender) > 0.65:
        raise InputError(f"active_fraction: {p.active_fraction} exceeds random close packing "
                         f"(0.65) without calendering; set calender >= "
                         f"{1 - 0.65 / p.active_fraction:.2f}")
    if p.collector not in (None, "z0", "z1"):
        raise InputError(f"collector: expected None, 'z0' or 'z1', got {p.collector!r}")
    if p.collector and not p.collector_um > 0:
        raise InputError(f"collector_um: expected a positive thickness, got {p.collector_um}")
    if not 0 <= p.cracked_fraction <= 1:
        raise InputError(f"cracked_fraction: expected a value in [0, 1], got "
                         f"{p.cracked_fraction}")
    if p.cracked_fraction > 0 and not p.crack_width_um > 0:
        raise InputError(f"crack_width_um: expected a positive width in µm, got "
                         f"{p.crack_width_um}")
    bad = [k for k in p.crack_kinds if k not in KINDS]
    if bad or not p.crack_kinds:
        raise InputError(f"crack_kinds: expected some of {', '.join(KINDS)}, got "
                         f"{list(p.crack_kinds)}")
    if p.supersample not in (1, 2, 3, 4):
        raise InputError(f"supersample: expected 1, 2, 3 or 4, got {p.supersample}")
    if p.bits not in (8, 16):
        raise InputError(f"bits: expected 8 or 16, got {p.bits}")
    if p.snr is not None and not p.snr > 0:
        raise InputError(f"snr: expected a positive number, got {p.snr}")
    if p.aspect_sd < 0 or p.roughness < 0:
        raise InputError(f"aspect_sd/roughness: expected values >= 0, got {p.aspect_sd}, "
                         f"{p.roughness}")
    out = Params(**{**p.as_dict(), "shape": shape, "voxel_size": spacing,
                    "crack_kinds": tuple(p.crack_kinds), "seed": int(p.seed)})
    return out


@dataclass
class Scene:
    """Packed particles (periodic images included), their flaws and the grid."""

    params: Params
    grid: Grid
    particles: Particles
    flaws: Flaws
    roughness: WaveField | None
    shading: WaveField | None
    electrode_slices: tuple[int, int]
    inside_view: np.ndarray
    packing: dict[str, Any]


def build_scene(p: Params, *, pad_um: float = 0.0) -> Scene:
    """Pack particles for the parameters ``p`` (validated) and draw their flaws.

    The packing box is the electrode region (the volume minus the collector). Axes are
    periodic except z when there is a collector (walls), so fractions are uniform up to the
    borders; copies of particles across periodic borders (``pad_um`` beyond them) are
    separate particles of the scene.
    """
    rng = np.random.default_rng(p.seed)
    grid = Grid(p.shape, p.voxel_size)
    h = np.asarray(p.voxel_size)
    nz = p.shape[0]
    nc = int(round(p.collector_um / h[0])) if p.collector else 0
    z_lo, z_hi = (nc, nz) if p.collector == "z0" else (0, nz - nc)
    box = np.array([(z_hi - z_lo) * h[0], p.shape[1] * h[1], p.shape[2] * h[2]])
    origin = -h / 2 + np.array([z_lo * h[0], 0.0, 0.0])
    periodic = (p.collector is None, True, True)
    c = p.calender
    pack_box = box / np.array([1 - c, 1.0, 1.0])
    radii = radii_for_fraction(rng, pack_box, p.active_fraction * (1 - c),
                               mean_um=p.radius_mean_um, sd_um=p.radius_sd_um,
                               min_um=float(h.max()))
    centers, worst = pack_spheres(rng, radii, pack_box, periodic=periodic)
    shape_m, extent = ellipsoid_shapes(rng, radii, aspect_sd=p.aspect_sd)
    if c > 0:
        centers[:, 0] *= 1 - c
        shape_m = shape_m @ np.diag([1 / (1 - c / 2), 1.0, 1.0])
    src, pos = periodic_images(centers, extent, box, periodic, pad_um)
    parts = Particles(pos + origin, shape_m[src], radii[src], extent[src], src)
    inside = np.all((pos >= 0) & (pos < box), axis=1)
    flaws = draw_flaws(rng, parts.radius_um, width_um=p.crack_width_um, kinds=p.crack_kinds)
    rough = wave_field(rng, amplitude=p.roughness * p.radius_mean_um,
                       wavelength_um=1.2 * p.radius_mean_um)
    shade_amp = p.imaging.get("shading", PRESETS[p.modality].shading)
    shading = wave_field(rng, amplitude=shade_amp or 0.0,
                         wavelength_um=PRESETS[p.modality].shading_um)
    return Scene(p, grid, parts, flaws, rough, shading, (z_lo, z_hi), inside,
                 {"particles_packed": len(radii), "worst_overlap_of_radius": worst,
                  "packed_fraction": float((4 / 3 * np.pi * radii**3).sum() / np.prod(box))})
