"""Fine-scale (high-pass) image of a scan: where thin cracks stand out from smooth shading.

A crack a voxel wide keeps, after the point-spread function, part of its contrast at the
highest spatial frequencies the scan resolves; smooth intensity variations (shading,
cupping, beam hardening, particle-to-particle grey offsets) and the correlated part of
the noise live at low frequencies. An isotropic Butterworth high-pass

    H(k) = 1 / (1 + (k_c / |k|) ** n)    (k in rad/voxel, |k| <= pi * sqrt(3))

with ``k_c`` = 2.3 rad/voxel (a wavelength of 2.7 voxels) and order ``n`` = 8 removes
everything coarser than about 4 voxels while passing the crack's sharp part. It is
applied with FFTs on overlapping tiles (a core block plus a halo on each side, volume
edges mirrored), so memory stays bounded whatever the volume size; the filter's impulse
response holds all but ~0.1 % of its energy within 4 voxels, well inside the halo.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from electrode_ct.blocks import Block, map_blocks
from electrode_ct.errors import InputError

CUTOFF = 2.3
"""Default cut-off of the high-pass, rad/voxel."""

ORDER = 8
"""Default Butterworth order."""


def transfer(shape: tuple[int, ...], *, cutoff: float = CUTOFF, order: int = ORDER) -> np.ndarray:
    """Butterworth high-pass transfer on the ``rfftn`` grid of an array of ``shape``.

    Parameters
    ----------
    shape : tuple of int
        Array shape (voxels).
    cutoff : float
        Cut-off wavenumber in rad/voxel (0 < cutoff < pi * sqrt(3)).
    order : int
        Butterworth order (>= 1).

    Returns
    -------
    numpy.ndarray
        float32 transfer values, shape of ``rfftn`` output.
    """
    axes = [np.fft.fftfreq(n) for n in shape[:-1]] + [np.fft.rfftfreq(shape[-1])]
    k2 = np.zeros([len(a) for a in axes], np.float64)
    for i, a in enumerate(axes):
        sh = [1] * len(axes)
        sh[i] = len(a)
        k2 = k2 + ((2 * np.pi * a) ** 2).reshape(sh)
    with np.errstate(divide="ignore"):
        ratio = np.where(k2 > 0, (cutoff * cutoff / np.maximum(k2, 1e-30)) ** (order / 2), np.inf)
    return (1.0 / (1.0 + ratio)).astype(np.float32)


def highpass(grey: np.ndarray, *, cutoff: float = CUTOFF, order: int = ORDER,
             block: int = 64, halo: int = 8) -> np.ndarray:
    """High-pass filtered copy of a volume (same grey units; float32; mean about 0).

    Parameters
    ----------
    grey : numpy.ndarray
        Grey volume (z, y, x).
    cutoff : float
        Cut-off wavenumber, rad/voxel (default 2.3: a wavelength of 2.7 voxels).
    order : int
        Butterworth order (default 8).
    block : int
        Core tile side in voxels.
    halo : int
        Halo in voxels on each side of a tile (mirrored at the volume edges).

    Returns
    -------
    numpy.ndarray
        float32, shape of ``grey``.

    Raises
    ------
    InputError
        A non-3-D volume or a bad cut-off, order, block or halo.
    """
    g = np.asarray(grey)
    if g.ndim != 3:
        raise InputError(f"grey: expected a 3-D volume, got shape {g.shape}")
    if not 0 < cutoff < np.pi * np.sqrt(3):
        raise InputError(f"cutoff: expected 0 < cutoff < {np.pi * np.sqrt(3):.2f} rad/voxel, "
                         f"got {cutoff}")
    if order < 1 or block < 1 or halo < 0:
        raise InputError(f"order/block/halo: expected >= 1, >= 1, >= 0; got {order}, {block}, "
                         f"{halo}")
    run = _tile_function(cutoff=cutoff, order=order, halo=halo)
    return map_blocks(run, g, block_shape=(block,) * 3, halo=halo,
                      out=np.empty(g.shape, np.float32))


def _tile_function(*, cutoff: float, order: int, halo: int
                   ) -> Callable[[np.ndarray, Block], np.ndarray]:
    """Block function (:mod:`electrode_ct.blocks`): the high-pass of a tile's interior.

    The tile (block plus halo) is mirrored where the volume's faces clipped its halo, so
    every FFT sees ``halo`` voxels of context on each side; transfers are cached by shape.
    """
    from scipy import fft

    cache: dict[tuple[int, ...], np.ndarray] = {}

    def run(region: np.ndarray, block: Block) -> np.ndarray:
        tile = region.astype(np.float32)
        pad = [(min(halo - lo, s - 1), min(halo - hi, s - 1))
               for (lo, hi), s in zip(block.margins, tile.shape, strict=True)]
        if any(lo or hi for lo, hi in pad):
            tile = np.pad(tile, pad, mode="reflect")
        shape = tile.shape
        if shape not in cache:
            cache[shape] = transfer(shape, cutoff=cutoff, order=order)
        filt = fft.irfftn(fft.rfftn(tile) * cache[shape], s=shape)
        return filt[tuple(slice(lo + i.start, lo + i.stop)
                          for (lo, _), i in zip(pad, block.interior, strict=True))]

    return run


def fine_scale_levels(fine: np.ndarray, healed: np.ndarray) -> tuple[float, float]:
    """Median and robust standard deviation (1.4826 MAD) of a high-pass image over the
    particle interiors (healed mask eroded by one voxel; every 2nd voxel per axis).

    Parameters
    ----------
    fine : numpy.ndarray
        :func:`highpass` output (grey units).
    healed : numpy.ndarray
        Healed particle labels, same shape.

    Returns
    -------
    (float, float)
        Median and robust standard deviation, grey units (1.0 when there are no
        particle voxels).
    """
    from scipy import ndimage as ndi

    inner = ndi.binary_erosion(healed > 0)[::2, ::2, ::2]
    vals = fine[::2, ::2, ::2][inner]
    if vals.size < 16:
        vals = fine[healed > 0]
    if vals.size == 0:
        return 0.0, 1.0
    med = float(np.median(vals))
    return med, max(1.4826 * float(np.median(np.abs(vals - med))), 1e-12)


def fine_scale(grey: np.ndarray, healed: np.ndarray) -> np.ndarray:
    """The high-pass image in units of its robust spread over the particle interiors
    (``(highpass(grey) - median) / sd``, :func:`fine_scale_levels`), float32: a scan-
    independent input for the CNN (thin cracks are a few units below 0).

    Parameters
    ----------
    grey : numpy.ndarray
        Grey volume (z, y, x).
    healed : numpy.ndarray
        Healed particle labels, same shape.
    """
    fine = highpass(grey)
    med, sd = fine_scale_levels(fine, healed)
    fine -= np.float32(med)
    fine /= np.float32(sd)
    return fine
