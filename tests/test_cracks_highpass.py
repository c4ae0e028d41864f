"""Tests of the fine-scale (high-pass) image and the fine_dark_fraction descriptor."""

from __future__ import annotations

import numpy as np
import pytest

from electrode_ct.cracks.highpass import highpass, transfer
from electrode_ct.errors import InputError


def _plane_wave(shape, wavelength, direction=(0.3, 0.5, 0.81)):
    d = np.asarray(direction, float)
    d /= np.linalg.norm(d)
    z, y, x = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    return np.cos(2 * np.pi * (d[0] * z + d[1] * y + d[2] * x) / wavelength).astype(np.float32)


def test_highpass_removes_shading_keeps_thin_plane():
    shape = (48, 40, 44)
    shading = _plane_wave(shape, 6.0)  # wavelength 6 voxels: the nano-CT shading scale
    plane = np.zeros(shape, np.float32)
    plane[:, :, 22] = -1.0  # a one-voxel dark sheet
    core = (slice(10, -10),) * 3
    out_s = highpass(shading, block=16, halo=8)
    assert np.abs(out_s[core]).max() < 0.02  # shading amplitude 1 -> < 2 %
    out_p = highpass(plane, block=16, halo=8)
    # across the sheet the filter keeps the band 2.3..pi rad/voxel (a quarter of the 1-D
    # spectrum): a dip of ~0.26 at the sheet, a rebound beside it, nothing a few voxels away
    assert out_p[20, 20, 22] < -0.2
    assert out_p[20, 20, 21] > 0.1 and out_p[20, 20, 23] > 0.1
    assert np.abs(out_p[20, 20, :16]).max() < 0.02


def test_highpass_tiles_match_one_fft():
    rng = np.random.default_rng(0)
    g = rng.normal(size=(40, 36, 30)).astype(np.float32)
    whole = np.fft.irfftn(np.fft.rfftn(g) * transfer(g.shape), s=g.shape, axes=(0, 1, 2))
    tiled = highpass(g, block=12, halo=8)
    core = (slice(9, -9),) * 3  # away from the mirrored volume edges
    assert np.abs(tiled - whole)[core].max() < 0.03 * whole.std()
    # tile size does not matter
    assert np.allclose(tiled, highpass(g, block=64, halo=8), atol=0.03 * whole.std())


def test_highpass_bad_input():
    with pytest.raises(InputError, match="cutoff"):
        highpass(np.zeros((4, 4, 4)), cutoff=10.0)
    with pytest.raises(InputError, match="3-D"):
        highpass(np.zeros((4, 4)))


def test_fine_dark_fraction_sees_thin_crack_under_shading():
    # two equal spheres under strong shading (wavelength 6 voxels, amplitude 0.4 of the
    # contrast), blurred (PSF sigma 1 voxel) with correlated noise (2 % of the contrast);
    # one has a one-voxel crack: only it has many fine-scale dark voxels
    from scipy import ndimage as ndi

    from electrode_ct.cracks.descriptors import particle_descriptors

    n, r = 32, 11
    c = n // 2
    z, y, x = np.mgrid[:n, :n, :n]
    sphere = (z - c) ** 2 + (y - c) ** 2 + (x - c) ** 2 <= r * r
    crack = sphere & (y == c)
    grey = np.concatenate([np.where(sphere & ~crack, 1.0, 0.0),
                           np.where(sphere, 1.0, 0.0)], axis=2).astype(np.float32)
    labels = np.concatenate([sphere, 2 * sphere], axis=2).astype(np.uint32)
    grey += 0.4 * _plane_wave(grey.shape, 6.0)
    grey = ndi.gaussian_filter(grey, 1.0)
    noise = ndi.gaussian_filter(np.random.default_rng(1).normal(0, 1, grey.shape), 1.0)
    grey += (0.02 * noise / noise.std()).astype(np.float32)
    d, _ = particle_descriptors(grey, labels, np.array([1, 2]), spacing=0.5)
    cracked, intact = d.iloc[0], d.iloc[1]
    assert cracked["fine_dark_fraction"] > 0.08
    assert cracked["fine_dark_fraction"] > 3 * intact["fine_dark_fraction"]


def test_network_input_two_images_and_mask():
    from electrode_ct.cracks.cnn_model import network_input
    from electrode_ct.cracks.sampling import OUTSIDE

    rng = np.random.default_rng(0)
    sl = rng.normal(0.3, 0.2, (3, 4, 2, 8, 8)).astype(np.float32)
    sl[..., :2, :] = OUTSIDE  # two rows outside the particle in both images
    x = network_input(sl)
    assert x.shape == (12, 3, 8, 8)
    mask = x[:, 2]
    assert mask[:, :2].sum() == 0 and mask[:, 2:].min() == 1
    # each image channel has zero mean inside the mask and 0 outside
    for ch in (0, 1):
        assert np.allclose(x[:, ch, 2:].mean(axis=(1, 2)), 0, atol=1e-5)
        assert np.all(x[:, ch, :2] == 0)


def test_choose_image_follows_fine_scale_information():
    import pandas as pd

    from electrode_ct.cracks.train import FINE_MIN_AUC, choose_image

    rng = np.random.default_rng(3)
    y = np.repeat([0, 1], 50)
    informative = pd.DataFrame({"fine_dark_fraction": 0.05 + 0.05 * y + rng.normal(0, 0.02,
                                                                                   100)})
    noise = pd.DataFrame({"fine_dark_fraction": rng.normal(0.05, 0.02, 100)})
    assert FINE_MIN_AUC > 0.5
    assert choose_image("auto", informative, y) == "both"
    assert choose_image("auto", noise.iloc[np.argsort(noise["fine_dark_fraction"])]
                        .set_axis(range(100)), np.tile([0, 1], 50)) == "grey"
    assert choose_image("fine", noise, y) == "fine"
