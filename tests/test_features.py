"""Filter-bank features against scipy/skimage references; blockwise == whole volume."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from electrode_ct.errors import ConfigError, InputError
from electrode_ct.segment import features as ft


@pytest.fixture(scope="module")
def smooth_volume() -> np.ndarray:
    rng = np.random.default_rng(3)
    return ndi.gaussian_filter(rng.random((20, 28, 32)), 2.0).astype(np.float32) * 10


def _one(img, name, sigma, mode="3d", spacing=(1.0, 1.0, 1.0)):
    cfg = ft.FeatureConfig(((name, sigma),), mode=mode, normalise="none")
    return ft.compute_features(img, cfg, spacing=spacing)


@pytest.mark.parametrize("sigma", [0.7, 1.6, 3.5])
def test_scalar_filters_match_scipy(smooth_volume, sigma):
    img = smooth_volume
    kw = {"truncate": ft.TRUNCATE, "mode": "reflect"}
    np.testing.assert_allclose(_one(img, "gaussian", sigma)[0],
                               ndi.gaussian_filter(img, sigma, **kw), atol=1e-5)
    np.testing.assert_allclose(_one(img, "log", sigma)[0],
                               ndi.gaussian_laplace(img, sigma, **kw), atol=1e-5)
    np.testing.assert_allclose(_one(img, "ggm", sigma)[0],
                               ndi.gaussian_gradient_magnitude(img, sigma, **kw), atol=1e-5)
    dog = ndi.gaussian_filter(img, sigma, **kw) - ndi.gaussian_filter(img, 0.66 * sigma, **kw)
    np.testing.assert_allclose(_one(img, "dog", sigma)[0], dog, atol=1e-5)


@pytest.mark.parametrize("mode", ["3d", "2d"])
def test_local_std_matches_scipy(smooth_volume, mode):
    img = smooth_volume.astype(np.float64)
    sig = (0.0, 1.6, 1.6) if mode == "2d" else 1.6
    kw = {"truncate": ft.TRUNCATE, "mode": "reflect"}
    mean = ndi.gaussian_filter(img, sig, **kw)
    ref = np.sqrt(np.maximum(ndi.gaussian_filter(img * img, sig, **kw) - mean * mean, 0))
    np.testing.assert_allclose(_one(smooth_volume, "std", 1.6, mode=mode)[0], ref, atol=1e-4)
    assert ref.mean() > 100 * 1e-4  # far above the tolerance: the check is not vacuous


def test_hessian_eigenvalues_match_skimage(smooth_volume, monkeypatch):
    from skimage.feature import hessian_matrix_eigvals

    img = smooth_volume.astype(np.float64)
    sigma = 2.0
    # reference Hessian from scipy Gaussian derivatives, eigenvalues by skimage
    orders = [(2, 0, 0), (1, 1, 0), (1, 0, 1), (0, 2, 0), (0, 1, 1), (0, 0, 2)]
    h = [ndi.gaussian_filter(img, sigma, order=o, truncate=ft.TRUNCATE) for o in orders]
    ref = hessian_matrix_eigvals(h)
    got = _one(smooth_volume, "hge", sigma)
    scale = np.abs(ref).max()
    np.testing.assert_allclose(got, ref, atol=1e-4 * scale)
    assert np.all(got[0] >= got[1]) and np.all(got[1] >= got[2])


def test_hessian_eigenvalues_2d_match_skimage(smooth_volume):
    from skimage.feature import hessian_matrix_eigvals

    sl = smooth_volume[5].astype(np.float64)
    h = [ndi.gaussian_filter(sl, 1.6, order=o, truncate=ft.TRUNCATE)
         for o in [(2, 0), (1, 1), (0, 2)]]
    ref = hessian_matrix_eigvals(h)
    got = _one(smooth_volume, "hge", 1.6, mode="2d")[:, 5]
    np.testing.assert_allclose(got, ref, atol=1e-4 * np.abs(ref).max())


def test_structure_tensor_eigenvalues(smooth_volume):
    img = smooth_volume.astype(np.float64)
    sigma = 1.6
    g = [ndi.gaussian_filter(img, sigma, order=o, truncate=ft.TRUNCATE)
         for o in [(1, 0, 0), (0, 1, 0), (0, 0, 1)]]
    t = np.empty(img.shape + (3, 3))
    for a in range(3):
        for b in range(3):
            t[..., a, b] = ndi.gaussian_filter(g[a] * g[b], 0.5 * sigma, truncate=ft.TRUNCATE)
    ref = np.moveaxis(np.linalg.eigvalsh(t)[..., ::-1], -1, 0)
    got = _one(smooth_volume, "ste", sigma)
    np.testing.assert_allclose(got, ref, atol=1e-4 * np.abs(ref).max())


def test_two_d_mode_filters_each_slice(smooth_volume):
    got = _one(smooth_volume, "ggm", 1.0, mode="2d")[0]
    ref = np.stack([ndi.gaussian_gradient_magnitude(s, 1.0, truncate=ft.TRUNCATE)
                    for s in smooth_volume])
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_anisotropic_spacing_scales_sigma(smooth_volume):
    # z voxels twice as large: σ_z in voxels is halved
    got = _one(smooth_volume, "gaussian", 2.0, spacing=(1.0, 0.5, 0.5))[0]
    ref = ndi.gaussian_filter(smooth_volume, (1.0, 2.0, 2.0), truncate=ft.TRUNCATE)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    # derivatives are per finest-axis voxel: a linear ramp along z of 1 per z voxel
    ramp = np.broadcast_to(np.arange(20, dtype=np.float32)[:, None, None], (20, 28, 32)).copy()
    g = _one(ramp, "ggm", 2.0, spacing=(1.0, 0.5, 0.5))[0]
    assert g[10, 14, 16] == pytest.approx(0.5, rel=1e-2)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 1.0, 0.7)])
@pytest.mark.parametrize("mode", ["3d", "2d"])
def test_blockwise_equals_whole(smooth_volume, mode, spacing):
    """Bit for bit: a block's passes are cut to its interior axis by axis (the structure
    tensor's gradients to the interior plus the outer radius), each value still computed
    from the same line as on the whole volume."""
    cfg = ft.parse_features("gaussian:0.3,log:0.7,dog:5,ggm:1,ste:3.5,hge:1.6,gaussian:10,std:2",
                            mode=mode)
    whole = ft.compute_features(smooth_volume, cfg, spacing=spacing)
    blocky = ft.compute_features(smooth_volume, cfg, spacing=spacing, block_shape=(9, 13, 15))
    assert whole.dtype == np.float32 and whole.shape == (cfg.n_features, 20, 28, 32)
    np.testing.assert_array_equal(blocky, whole)


def test_halo_covers_kernels():
    cfg = ft.FeatureConfig((("ste", 2.0), ("gaussian", 1.0)))
    assert ft.halo(cfg) == (6 + 3,) * 3
    assert ft.halo(ft.FeatureConfig((("gaussian", 2.0),), mode="2d")) == (0, 6, 6)


def test_parse_and_config_roundtrip():
    cfg = ft.parse_features("gaussian:1,hge:1.6,ggm", mode="2d")
    assert cfg.names[:3] == ["gaussian_1", "hge_1.6_0", "hge_1.6_1"]
    assert len(cfg.names) == 3 + len(ft.SCALES)
    assert ft.FeatureConfig.from_dict(cfg.to_dict()) == cfg
    assert ft.parse_features("full").n_features > 3 * ft.parse_features("default").n_features
    with pytest.raises(ConfigError, match="unknown item"):
        ft.parse_features("sobel:1")
    with pytest.raises(ConfigError, match="mode"):
        ft.FeatureConfig(mode="4d")


def test_constant_image_is_an_error():
    with pytest.raises(InputError, match="every voxel has the value 7"):
        ft.compute_features(np.full((4, 8, 8), 7.0), "default")


def test_normalisation_makes_features_affine_invariant(smooth_volume):
    cfg = ft.parse_features("minimal", normalise="percentile")
    a = ft.compute_features(smooth_volume, cfg)
    b = ft.compute_features(smooth_volume * 3.0 + 100.0, cfg)
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_offset_normalisation_removes_shifts_and_keeps_the_grey_scale(smooth_volume):
    cfg = ft.parse_features("minimal", normalise="offset")
    a = ft.compute_features(smooth_volume, cfg)
    np.testing.assert_allclose(ft.compute_features(smooth_volume + 37.5, cfg), a, atol=1e-4)
    # a gain is kept: the gaussian channels scale about their mid-range, derivatives scale
    lo, hi = np.percentile(smooth_volume, [0.5, 99.5])
    np.testing.assert_allclose(ft.intensity_range(smooth_volume, normalise="offset"),
                               ((lo + hi) / 2, (lo + hi) / 2 + 1), rtol=1e-6)
    b = ft.compute_features(smooth_volume * 2.0, cfg)
    np.testing.assert_allclose(b, 2.0 * a, atol=1e-4)


def test_auto_normalisation_shifts_within_the_gain_tolerance_and_rescales_beyond(
        smooth_volume):
    lo, hi = np.percentile(smooth_volume, [0.5, 99.5])
    w, mid = hi - lo, (lo + hi) / 2
    # without a reference (training) it is the pure shift of ``offset``
    np.testing.assert_allclose(ft.intensity_range(smooth_volume, normalise="auto"),
                               (mid, mid + 1), rtol=1e-6)
    # a range 1.3x wider (e.g. other phase fractions in one scan): grey scale kept
    np.testing.assert_allclose(
        ft.intensity_range(smooth_volume, normalise="auto", reference_width=w / 1.3),
        (mid, mid + 1), rtol=1e-6)
    # a 3x gain (another scan): mapped back onto the reference's grey scale
    cfg = ft.parse_features("minimal", normalise="auto")
    rng = ft.intensity_range(smooth_volume * 3.0 + 100.0, normalise="auto", reference_width=w)
    np.testing.assert_allclose(rng, (3 * mid + 100, 3 * mid + 103), rtol=1e-6)
    a = ft.compute_features(smooth_volume, cfg)
    b = ft.compute_features(smooth_volume * 3.0 + 100.0, cfg, value_range=rng)
    np.testing.assert_allclose(b, a, atol=1e-4)
    # and a 1.4x gain is kept (within the tolerance): derivatives scale by 1.4
    rng = ft.intensity_range(smooth_volume * 1.4, normalise="auto", reference_width=w)
    assert rng[1] - rng[0] == pytest.approx(1.0)
    assert ft.GAIN_TOLERANCE == 1.5
