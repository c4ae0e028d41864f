"""X-ray CT forward model: phase levels, shading, phase-contrast fringes, PSF, cupping,
rings, noise and quantisation, applied z-slab by z-slab (with a halo) to bound memory.

Grey levels are normalised to [0, 1] (the full 8- or 16-bit range). ``snr`` is
``(level_active - level_pore) / sigma_noise`` where ``sigma_noise`` is the standard
deviation of the added noise after its spatial correlation (reconstruction noise is not
white). Presets were calibrated on real scans (see ``docs/synth.md`` and
``benchmarks/synth_realism.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from electrode_ct.blocks import Block, map_blocks
from electrode_ct.errors import InputError
from electrode_ct.synth.render import Grid, WaveField


@dataclass(frozen=True)
class Preset:
    """Imaging parameters of a modality (levels normalised to [0, 1]).

    Attributes
    ----------
    pore, cbd, active, collector : float
        Mean grey level of each phase.
    psf_sigma_vox : float
        Gaussian point-spread σ, voxels.
    snr : float
        Default contrast-to-noise ratio (active vs pore).
    noise_corr_vox : float
        σ (voxels) of the Gaussian that correlates the noise (0 = white).
    noise : str
        ``gaussian`` or ``poisson``.
    fringe : float
        Phase-contrast edge enhancement strength (0 = none).
    cupping : float
        Beam-hardening cupping: relative darkening at the rotation axis.
    rings : float
        Ring-artefact amplitude, as a fraction of the active-pore contrast.
    shading : float
        σ of a smooth additive intensity variation, in units of the active-pore contrast.
    shading_um : float
        Wavelength of the shading, µm.
    particle_sd : float
        σ of a per-particle active level variation, in units of the active-pore contrast
        (grain orientation/density differences between particles).
    """

    pore: float
    cbd: float
    active: float
    collector: float
    psf_sigma_vox: float
    snr: float
    noise_corr_vox: float
    noise: str = "gaussian"
    fringe: float = 0.0
    cupping: float = 0.0
    rings: float = 0.0
    shading: float = 0.0
    shading_um: float = 6.0
    particle_sd: float = 0.0

    @property
    def contrast(self) -> float:
        """Active minus pore level."""
        return self.active - self.pore

    def as_dict(self) -> dict[str, Any]:
        """Parameters as a plain dict."""
        return asdict(self)


PRESETS: dict[str, Preset] = {
    # NREL NMC-1-cal lab micro-CT (0.398 µm), Otsu split: active 0.543, pore+CBD 0.389 of
    # full scale; phase interiors σ ≈ 0.24 of the contrast, pixel-difference noise ≈ 0.11
    # (correlated noise); CBD close to pore; mild cupping.
    "micro": Preset(pore=0.385, cbd=0.415, active=0.545, collector=0.50, psf_sigma_vox=1.4,
                    snr=6.0, noise_corr_vox=1.0, fringe=0.0, cupping=0.03, rings=0.0,
                    shading=0.0),
    # SegmentPy NMC532 nano-CT, expert labels: CBD at 0.25 of the pore-active contrast;
    # phase interiors σ ≈ 0.4 of the contrast but pixel noise only ≈ 0.03: smooth
    # intensity variation dominates (shading σ 0.40 matches the pore interiors); particle
    # means spread by 0.32 of the contrast (shading gives 0.30, particle_sd 0.2 the
    # rest); broad edges and bright halos (Zernike phase contrast). Levels sit mid-range
    # so the ±4.5σ tails do not clip (docs/synth.md, "Presets and their calibration").
    "nano": Preset(pore=0.36, cbd=0.415, active=0.58, collector=0.525, psf_sigma_vox=1.2,
                   snr=15.0, noise_corr_vox=1.5, fringe=0.25, cupping=0.0, rings=0.0,
                   shading=0.40, shading_um=3.0, particle_sd=0.2),
}
"""Imaging presets by modality name."""


def get_preset(modality: str, **overrides: Any) -> Preset:
    """The preset of ``modality`` with ``overrides`` (None values ignored).

    Raises
    ------
    InputError
        Unknown modality or bad override.
    """
    if modality not in PRESETS:
        raise InputError(f"modality: unknown {modality!r}; expected one of "
                         f"{', '.join(sorted(PRESETS))}")
    ov = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(ov) - set(Preset.__dataclass_fields__))
    if unknown:
        raise InputError(f"imaging option(s) {', '.join(unknown)} unknown; expected some of "
                         f"{', '.join(Preset.__dataclass_fields__)}")
    p = replace(PRESETS[modality], **ov)
    if p.noise not in ("gaussian", "poisson"):
        raise InputError(f"noise: expected 'gaussian' or 'poisson', got {p.noise!r}")
    if not p.snr > 0:
        raise InputError(f"snr: expected a positive number, got {p.snr}")
    for name in ("psf_sigma_vox", "noise_corr_vox", "fringe", "cupping", "rings", "shading",
                 "particle_sd"):
        if getattr(p, name) < 0:
            raise InputError(f"{name}: expected a value >= 0, got {getattr(p, name)}")
    return p


def _kernel_gain(sigma: float) -> float:
    """Factor restoring unit variance to white noise after a 3-D Gaussian filter."""
    if sigma <= 0:
        return 1.0
    impulse = np.zeros(8 * int(np.ceil(sigma)) + 9)
    impulse[len(impulse) // 2] = 1
    k = ndi.gaussian_filter1d(impulse, sigma)
    return float(1 / np.sqrt((k * k).sum()) ** 3)


def _radial(shape: tuple[int, int]) -> np.ndarray:
    ny, nx = shape
    yy = (np.arange(ny) - (ny - 1) / 2)[:, None]
    xx = (np.arange(nx) - (nx - 1) / 2)[None, :]
    return np.sqrt(yy * yy + xx * xx)


NOISE_SLAB = 16
"""Slices per noise slab: slab ``k`` of white noise comes from its own seeded generator."""


def _white_noise(seed: int, z0: int, z1: int, plane: tuple[int, int],
                 cache: dict[int, np.ndarray]) -> np.ndarray:
    """Standard normal float32 noise for slices ``[z0, z1)``, drawn per :data:`NOISE_SLAB`.

    Slab ``k`` always comes from ``default_rng([seed, 7919, k])``, so the field does not
    depend on how the volume is processed; ``cache`` keeps the slabs of the last call.
    """
    parts = []
    keep = {}
    for k in range(z0 // NOISE_SLAB, (z1 - 1) // NOISE_SLAB + 1):
        if k not in cache:
            rng = np.random.default_rng([seed, 7919, k])
            cache[k] = rng.standard_normal((NOISE_SLAB, *plane), dtype=np.float32)
        keep[k] = cache[k]
        a, b = max(z0, k * NOISE_SLAB), min(z1, (k + 1) * NOISE_SLAB)
        parts.append(cache[k][a - k * NOISE_SLAB:b - k * NOISE_SLAB])
    cache.clear()
    cache.update(keep)
    return np.concatenate(parts) if len(parts) > 1 else parts[0].copy()


def _radius(sigma: float) -> int:
    """Reach (voxels) of scipy's Gaussian filters of ``sigma`` (truncated at 4 σ)."""
    return int(4.0 * sigma + 0.5) if sigma > 0 else 0


def imaging_halo(preset: Preset) -> int:
    """Slices of context a z-slab needs for :func:`forward` to equal the whole-volume
    image: the fringe's Laplacian of Gaussian followed by the PSF (their reaches add up)
    or the noise correlation, whichever reaches farther."""
    fringe = _radius(max(preset.psf_sigma_vox, 0.7)) if preset.fringe > 0 else 0
    return max(fringe + _radius(preset.psf_sigma_vox), _radius(preset.noise_corr_vox))


@dataclass
class _Imager:
    """Block function (:mod:`electrode_ct.blocks`) of :func:`forward`: one z-slab."""

    preset: Preset
    seed: int
    top: float
    scale: np.float32
    coords: tuple[np.ndarray, np.ndarray, np.ndarray]
    shading: WaveField | None
    profile: np.ndarray | None
    ring: np.ndarray | None
    cache: dict[int, np.ndarray] = field(default_factory=dict)

    def _noise(self, z0: int, z1: int, slab: np.ndarray) -> np.ndarray:
        p = self.preset
        noise = _white_noise(self.seed, z0, z1, slab.shape[1:], self.cache)
        if p.noise == "poisson":
            photons = (p.active + p.pore) / 2 * p.snr**2 / p.contrast**2
            noise *= np.sqrt(np.clip(slab, 0, None) / np.float32(photons))
            noise *= np.float32(_kernel_gain(p.noise_corr_vox))
        else:
            noise *= np.float32(p.contrast / p.snr * _kernel_gain(p.noise_corr_vox))
        if p.noise_corr_vox > 0:
            ndi.gaussian_filter(noise, p.noise_corr_vox, output=noise, mode="reflect")
        return noise

    def __call__(self, region: np.ndarray, block: Block) -> np.ndarray:
        p = self.preset
        z0, z1 = block.read[0].start, block.read[0].stop
        slab = region.astype(np.float32)
        slab *= self.scale
        noise = self._noise(z0, z1, slab)
        if self.shading is not None:
            cz, cy, cx = self.coords
            slab += np.float32(p.contrast) * self.shading.evaluate(cz[z0:z1], cy, cx)
        if p.fringe > 0:
            s = max(p.psf_sigma_vox, 0.7)
            slab -= np.float32(p.fringe * s * s) * ndi.gaussian_laplace(slab, s, mode="nearest")
        if p.psf_sigma_vox > 0:
            ndi.gaussian_filter(slab, p.psf_sigma_vox, output=slab, mode="nearest")
        slab = block.crop(slab)
        if self.profile is not None:
            slab *= self.profile[None]
        if self.ring is not None:
            slab += self.ring[None]
        slab += block.crop(noise)
        slab *= np.float32(self.top)
        np.clip(slab, 0, self.top, out=slab)
        np.rint(slab, out=slab)
        return slab


def forward(ideal: np.ndarray, *, grid: Grid, preset: Preset, bits: int = 16,
            seed: int = 0, shading: WaveField | None = None, block: int | None = None,
            out: np.ndarray | None = None) -> np.ndarray:
    """Image an ideal grey volume (normalised levels) with the CT forward model.

    Steps per z-slab (with the halo of :func:`imaging_halo`, so results do not depend on
    the slab size): additive smooth shading, phase-contrast fringe (``-fringe * σ² ∇²`` of
    the Gaussian-smoothed image, bright rim on the dense side), Gaussian PSF, cupping
    (``1 - cupping * (1 - (r/R)²)`` around the z axis), rings (random amplitude per
    integer radius, constant along z), noise at ``preset.snr`` correlated by a Gaussian of
    ``noise_corr_vox`` across slab borders, clipping and rounding to 8/16 bits.

    White noise is drawn per fixed :data:`NOISE_SLAB`-slice slab from its own seeded
    generator and correlated over the whole volume (slab borders invisible). ``poisson``
    noise uses the Gaussian limit of photon counting: the white noise is scaled per voxel
    by ``sqrt(level / photons)`` with ``photons`` set so the mid level has ``snr``.

    Parameters
    ----------
    ideal : ndarray of float32 or uint16, shape (Z, Y, X)
        Partial-volume grey levels in [0, 1] (uint16: level × 65535).
    grid : Grid
        The grid (spacing in µm, for the shading field).
    preset : Preset
        Imaging parameters.
    bits : {8, 16}
        Output depth.
    seed : int
        Noise seed (same seed, same array).
    shading : WaveField or None
        Intensity variation field in contrast units (None = none).
    block : int, optional
        Slab thickness in voxels (default: twice the render slab); does not change the
        result.
    out : ndarray of uint8 or uint16, optional
        Output array; may be ``ideal`` itself (uint16, 16 bits) to image in place.

    Returns
    -------
    ndarray of uint8 or uint16
    """
    from electrode_ct.synth.render import slab_voxels

    if bits not in (8, 16):
        raise InputError(f"bits: expected 8 or 16, got {bits}")
    nz, ny, nx = ideal.shape
    dtype = np.uint8 if bits == 8 else np.uint16
    if out is None:
        out = np.empty(ideal.shape, dtype)
    elif out.dtype != dtype or out.shape != ideal.shape:
        raise InputError(f"out: expected a {np.dtype(dtype).name} array of shape "
                         f"{ideal.shape}, got {out.dtype} {out.shape}")
    rad = _radial((ny, nx))
    rmax = max(float(rad.max()), 1.0)
    profile = None
    if preset.cupping > 0:
        profile = (1 - preset.cupping * (1 - (rad / rmax) ** 2)).astype(np.float32)
    ring = None
    if preset.rings > 0:
        rr = np.random.default_rng([seed, 104729])
        amp = rr.normal(0, 1, int(rmax) + 2) * (rr.random(int(rmax) + 2) < 0.15)
        ring = (preset.rings * preset.contrast * amp[np.round(rad).astype(int)]).astype(
            np.float32)
    run = _Imager(preset=preset, seed=seed, top=float(np.iinfo(dtype).max),
                  scale=np.float32(1 / 65535) if ideal.dtype == np.uint16 else np.float32(1),
                  coords=(grid.coords(0), grid.coords(1), grid.coords(2)), shading=shading,
                  profile=profile, ring=ring)
    # default: twice the render slab (the halo costs 2 × halo / block extra filtering)
    slab = 2 * slab_voxels(ideal.shape) if block is None else max(1, int(block))
    return map_blocks(run, ideal, block_shape=(slab, ny, nx),
                      halo=(imaging_halo(preset), 0, 0), out=out)
