"""Filters against scipy/skimage references, ring removal on a synthetic ring artefact."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.filters import unsharp_mask
from skimage.restoration import denoise_nl_means

from electrode_ct import filters
from electrode_ct.errors import InputError


@pytest.fixture
def noisy():
    rng = np.random.default_rng(3)
    clean = np.zeros((24, 28, 30), np.float32)
    clean[6:18, 8:20, 5:25] = 100.0
    return clean, clean + rng.normal(0, 10, clean.shape).astype(np.float32)


def test_gaussian_matches_scipy_and_um(noisy):
    _, img = noisy
    np.testing.assert_allclose(filters.gaussian(img, sigma=1.5), ndi.gaussian_filter(img, 1.5))
    # 2 µm with (1, 0.5, 0.5) µm voxels = (2, 4, 4) voxels
    got = filters.gaussian(img, sigma=2.0, spacing=(1.0, 0.5, 0.5), in_um=True)
    np.testing.assert_allclose(got, ndi.gaussian_filter(img, (2.0, 4.0, 4.0)), rtol=1e-6)
    with pytest.raises(InputError, match="no voxel size"):
        filters.gaussian(img, sigma=2.0, in_um=True)


def test_median_matches_scipy(noisy):
    _, img = noisy
    np.testing.assert_array_equal(filters.median(img, size=3), ndi.median_filter(img, size=3))
    got = filters.median(img, size=(1.0, 1.5, 1.5), spacing=(1, 0.5, 0.5), in_um=True)
    np.testing.assert_array_equal(got, ndi.median_filter(img, size=(1, 3, 3)))


def test_unsharp_matches_skimage_inside(noisy):
    _, img = noisy
    ref = unsharp_mask(img, radius=1.5, amount=2.0, preserve_range=True)
    got = filters.unsharp(img, radius=1.5, amount=2.0)
    inner = (slice(6, -6),) * 3  # skimage pads with 'nearest', scipy with 'reflect'
    np.testing.assert_allclose(got[inner], ref[inner], rtol=1e-4, atol=1e-3)


def test_nlm_slabs_equal_whole_volume_and_denoise(noisy):
    clean, img = noisy
    whole = filters.nlm(img, sigma=10.0, patch_size=3, patch_distance=3, slab=None)
    ref = denoise_nl_means(img, h=8.0, sigma=10.0, patch_size=3, patch_distance=3,
                           fast_mode=True, preserve_range=True)
    np.testing.assert_allclose(whole, ref, rtol=1e-5, atol=1e-3)
    slabs = filters.nlm(img, sigma=10.0, patch_size=3, patch_distance=3, slab=7, workers=2)
    np.testing.assert_allclose(slabs, whole, rtol=1e-4, atol=1e-2)
    rmse = lambda a: float(np.sqrt(np.mean((a - clean) ** 2)))  # noqa: E731
    assert rmse(slabs) < 0.6 * rmse(img)


def test_ring_filter_removes_synthetic_rings():
    rng = np.random.default_rng(5)
    ny = nx = 96
    yy, xx = np.mgrid[:ny, :nx]
    clean = np.full((ny, nx), 50.0)
    for cy, cx, r in [(30, 35, 12), (60, 62, 16), (70, 25, 9)]:  # particles, off-centre
        clean[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 150.0
    rr = np.hypot(yy - (ny - 1) / 2, xx - (nx - 1) / 2)
    rings = np.zeros_like(clean)
    for r0, amp in [(10, 25.0), (23, -20.0), (37, 30.0)]:
        rings += amp * np.exp(-0.5 * ((rr - r0) / 0.7) ** 2)  # one detector pixel wide
    stack = np.stack([clean + rings + rng.normal(0, 3, clean.shape)] * 2).astype(np.float32)
    out = filters.suppress_rings(stack, width=9)
    on = np.abs(rings) > 5
    err_before = np.abs(stack[0] - clean)[on].mean()
    err_after = np.abs(out[0] - clean)[on].mean()
    assert err_after < 0.3 * err_before
    # away from the rings the image is left (almost) alone
    far = (np.abs(rings) < 0.5) & (rr < 45)
    assert np.abs(out[0] - stack[0])[far].mean() < 2.0
    assert filters.suppress_rings(stack[0], width=9).shape == (ny, nx)


def test_normalise_variants():
    rng = np.random.default_rng(0)
    img = rng.normal(100, 20, (8, 16, 16)).astype(np.float32)
    lo, hi = np.percentile(img, [1, 99])
    got = filters.normalise(img, low=1, high=99)
    np.testing.assert_allclose(got, (np.clip(img, lo, hi) - lo) / (hi - lo), atol=1e-6)
    u8 = filters.normalise(img, dtype="uint8")
    assert u8.dtype == np.uint8 and u8.min() == 0 and u8.max() == 255
    u16 = filters.normalise(img, method="minmax", dtype="uint16")
    assert u16.max() == 65535 and u16.flat[np.argmin(img)] == 0
    z = filters.normalise(img, method="zscore")
    assert abs(float(z.mean())) < 1e-5 and abs(float(z.std()) - 1) < 1e-5
    with pytest.raises(InputError, match="no spread"):
        filters.normalise(np.ones((3, 3)), method="minmax")


def test_crop_resample_bin():
    img = np.arange(4 * 6 * 8, dtype=np.float32).reshape(4, 6, 8)
    cut, off = filters.crop(img, z=(1, 3), y=(None, 4), x=(-3, None))
    np.testing.assert_array_equal(cut, img[1:3, :4, 5:])
    assert off == (1, 0, 5)
    with pytest.raises(InputError, match="--y"):
        filters.crop(img, y=(5, 20))
    # anisotropic (2, 1, 1) µm -> isotropic 1 µm doubles z; a linear ramp in z stays linear
    ramp = np.broadcast_to(np.arange(6, dtype=np.float32)[:, None, None], (6, 4, 4)).copy()
    out, sp = filters.resample(ramp, spacing=(2, 1, 1), voxel_size=1)
    assert out.shape == (12, 4, 4) and sp == (1.0, 1.0, 1.0)
    assert np.allclose(np.diff(out[2:-2, 0, 0]), 0.5, atol=1e-5)
    labels = (img % 3).astype(np.uint8)
    lab_out, lab_sp = filters.resample(labels, spacing=1, voxel_size=(1, 0.5, 0.5), labels=True)
    assert lab_out.dtype == np.uint8 and set(np.unique(lab_out)) <= {0, 1, 2}
    assert lab_out.shape == (4, 12, 16) and lab_sp == (1.0, 0.5, 0.5)
    np.testing.assert_array_equal(lab_out[:, ::2, ::2], labels)
    binned = filters.bin2(img)
    np.testing.assert_allclose(binned, img.reshape(2, 2, 3, 2, 4, 2).mean(axis=(1, 3, 5)))
    lab = np.zeros((2, 2, 2), np.uint8)
    lab[0, 0, :] = 2
    lab[1, 1, 1] = 1
    assert filters.bin2(lab, labels=True).item() == 0  # 5 zeros, 2 twos, 1 one


def test_bad_images_rejected():
    nan = np.ones((3, 4, 4), np.float32)
    nan[0, 0, 0] = np.nan
    for f in (filters.gaussian, filters.median, filters.suppress_rings, filters.normalise):
        with pytest.raises(InputError, match="NaN"):
            f(nan)
        with pytest.raises(InputError, match="empty"):
            f(np.zeros((0, 4, 4), np.float32))


def test_apply_filter_dispatches_like_direct_calls():
    import numpy as np
    import pytest

    from electrode_ct import filters
    from electrode_ct.errors import InputError

    rng = np.random.default_rng(3)
    img = rng.normal(10, 2, (8, 16, 16)).astype(np.float32)
    np.testing.assert_array_equal(filters.apply_filter(img, "gaussian", sigma=1.0),
                                  filters.gaussian(img, sigma=1.0))
    np.testing.assert_array_equal(
        filters.apply_filter(img, "gaussian", sigma=1.0, spacing=(2, 1, 1), in_um=True),
        filters.gaussian(img, sigma=1.0, spacing=(2, 1, 1), in_um=True))
    np.testing.assert_array_equal(filters.apply_filter(img, "normalise", scale="zscore"),
                                  filters.normalise(img, method="zscore"))
    with pytest.raises(InputError, match="--method"):
        filters.apply_filter(img, "blur")
