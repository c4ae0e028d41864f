"""Radial layers and per-particle grey columns vs a brute-force per-particle scipy reference."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from electrode_ct.errors import InputError, ShapeError
from electrode_ct.measure.intensity import grey_table, measure_grey, peak_sigma
from electrode_ct.measure.radial import layer_sums, radial_table


def _packing(shape, n, seed):
    """Overlapping random balls (later ones overwrite): irregular, touching, border-cut."""
    rng = np.random.default_rng(seed)
    grids = np.ogrid[tuple(slice(0, s) for s in shape)]
    lab = np.zeros(shape, np.uint32)
    for i in range(1, n + 1):
        c = rng.uniform(0, shape)
        r = rng.uniform(2.5, 8)
        d2 = sum((g - cc) ** 2 for g, cc in zip(grids, c, strict=True))
        lab[d2 < r * r] = 3 * i + 100  # non-sequential ids
    grey = rng.integers(0, 256, shape).astype(np.uint8)
    return lab, grey


def _reference(lab, grey, spacing):
    """Per particle: scipy EDT on its crop padded by one voxel inside the volume."""
    unit = min(spacing)
    out = {}
    for lbl in np.unique(lab[lab > 0]):
        (sl,) = ndi.find_objects((lab == lbl).astype(np.int32))
        sl = tuple(slice(max(0, s.start - 1), min(n, s.stop + 1))
                   for s, n in zip(sl, lab.shape, strict=True))
        m = lab[sl] == lbl
        d = ndi.distance_transform_edt(m, sampling=spacing)
        layer = np.floor(d[m] / unit + 0.5).astype(np.int64)
        g = grey[sl][m].astype(np.float64)
        out[int(lbl)] = (layer, g)
    return out


@pytest.mark.parametrize(
    "shape,spacing,slab",
    [
        ((36, 40, 38), (1.0, 1.0, 1.0), None),
        ((36, 40, 38), (2.0, 0.7, 0.7), None),
        ((30, 34, 32), (0.5, 1.3, 1.0), 2000),  # slabbed transform with adaptive halo
        ((70, 64), (1.0, 0.6), None),  # 2-D, anisotropic
        ((70, 64), (1.0, 1.0), 700),  # 2-D slabbed
    ],
)
def test_layers_match_per_particle_scipy(shape, spacing, slab):
    n = 14 if len(shape) == 3 else 10
    lab, grey = _packing(shape, n, seed=len(shape) + int(10 * spacing[0]))
    kw = {} if slab is None else {"slab_voxels": slab, "halo": 2}
    sums = layer_sums(lab, grey, spacing=spacing, **kw)
    ref = _reference(lab, grey, spacing)
    assert sorted(ref) == sums.ids.tolist()
    radial = radial_table(sums)
    for k, lbl in enumerate(sums.ids):
        layer, g = ref[int(lbl)]
        width = sums.count.shape[1]
        assert layer.max() < width
        np.testing.assert_array_equal(np.bincount(layer, minlength=width), sums.count[k])
        rows = radial[radial["label"] == lbl]
        expect = [g[layer == v].mean() for v in rows["layer"]]
        np.testing.assert_allclose(rows["grey_mean"].to_numpy(), expect, rtol=1e-12)
        np.testing.assert_allclose(rows["grey_std"].to_numpy(),
                                   [g[layer == v].std() for v in rows["layer"]], atol=1e-7)
    if slab is not None:
        assert sums.edt_halo_voxels, "the slabbed path was not exercised"


def test_border_is_not_a_surface_and_flagged():
    lab = np.zeros((20, 20, 20), np.uint32)
    lab[:10] = 1  # a slab cut by the z = 0 face
    lab[14:18, 5:15, 5:15] = 2
    sums = layer_sums(lab, np.ones_like(lab, dtype=np.uint8), spacing=1.0)
    assert sums.border.tolist() == [True, False]
    # distance to the nearest non-particle voxel: the z = 10 plane only, not the faces
    assert sums.max_layer[0] == 10
    assert sums.count[0, 1:11].tolist() == [400] * 10


def test_layer_one_is_surface_for_any_spacing():
    lab = np.zeros((1, 30, 30), np.uint32)
    lab[0, 5:25, 5:25] = 1
    for sp in [(1.0, 1.0), (0.25, 0.25), (3.0, 1.5)]:
        r = radial_table(layer_sums(lab, lab.astype(np.uint8), spacing=sp))
        assert r["layer"].min() == 1
        assert r["distance_um"].min() == pytest.approx(min(sp))


def test_grey_columns_match_numpy():
    lab, grey = _packing((32, 32, 32), 10, seed=3)
    table, _ = measure_grey(lab, grey, spacing=1.0, exclude_layers=2, background_sigma=4.0)
    ref = _reference(lab, grey, (1.0, 1.0, 1.0))
    for row in table.itertuples():
        layer, g = ref[int(row.label)]
        assert row.grey_n == g.size
        assert row.grey_mean == pytest.approx(g.mean())
        assert row.grey_std == pytest.approx(g.std())
        assert row.grey_min == g.min() and row.grey_max == g.max()
        p = np.percentile(g, [5, 25, 50, 75, 95])
        got = [row.grey_p05, row.grey_p25, row.grey_median, row.grey_p75, row.grey_p95]
        np.testing.assert_allclose(got, p)
        core = g[layer > 2]
        assert row.roi_n == core.size
        if core.size:
            assert row.roi_mean == pytest.approx(core.mean())
            assert row.sem == pytest.approx(4.0 / np.sqrt(core.size))
        else:
            assert np.isnan(row.roi_mean) and np.isnan(row.sem)


def test_float_grey_quantiles_within_one_bin():
    lab, grey = _packing((24, 24, 24), 6, seed=5)
    g = grey.astype(np.float32) * 0.37 + 0.1
    table = grey_table(layer_sums(lab, g))
    width = (g.max() - g.min()) / 1024
    for row in table.itertuples():
        vals = g[lab == row.label]
        assert row.grey_min == pytest.approx(vals.min())
        assert abs(row.grey_median - np.median(vals)) <= width


def test_normalisations():
    lab = np.zeros((40, 40), np.uint32)
    lab[5:35, 5:35] = 7
    d = ndi.distance_transform_edt(lab > 0)
    grey = np.where(lab > 0, 100 + 3 * np.minimum(np.rint(d), 6), 10).astype(np.uint8)
    sums = layer_sums(lab, grey)
    r = radial_table(sums, normalise="radial_max")
    assert r["grey_norm"].iloc[0] == 0.0 and r["grey_norm"].max() == 1.0
    assert r["relative_radius"].iloc[-1] == 1.0
    s = radial_table(sums, normalise="surface")
    np.testing.assert_allclose(s["grey_norm"], r["grey_mean"] / r["grey_mean"].iloc[0])
    with pytest.raises(InputError):
        radial_table(sums, normalise="max")


def test_background_sigma_from_histogram_peak():
    rng = np.random.default_rng(0)
    vals = np.concatenate([rng.normal(60, 5, 200_000), rng.normal(110, 5, 40_000)])
    hist = np.bincount(np.clip(np.rint(vals), 0, 255).astype(int), minlength=256)
    peak, sigma = peak_sigma(hist)
    assert peak == pytest.approx(60, abs=0.3)
    assert sigma == pytest.approx(5, rel=0.05)
    lab = np.zeros((10, 10, 10), np.uint32)
    lab[3:7, 3:7, 3:7] = 1
    noisy = np.clip(rng.normal(60, 5, lab.shape), 0, 255).astype(np.uint8)
    t = grey_table(layer_sums(lab, noisy))
    assert t.attrs["background_sigma"] == pytest.approx(5, rel=0.25)


def test_bad_input():
    lab = np.zeros((5, 6, 7), np.uint32)
    with pytest.raises(ShapeError, match="differs"):
        layer_sums(lab, np.zeros((5, 6, 8), np.uint8))
    with pytest.raises(InputError, match="integer"):
        layer_sums(lab.astype(np.float32), np.zeros((5, 6, 7), np.uint8))
    with pytest.raises(InputError, match="spacing"):
        layer_sums(lab, np.zeros((5, 6, 7), np.uint8), spacing=(1, 2))
    empty = grey_table(layer_sums(lab, np.zeros((5, 6, 7), np.uint8)))
    assert len(empty) == 0 and "roi_mean" in empty.columns


def test_spacing_forms_and_errors_are_those_of_as_spacing():
    from electrode_ct.volume import as_spacing

    flat, grey = np.zeros((6, 7), np.uint32), np.zeros((6, 7), np.uint8)
    for sp, want in [((0.5, 0.25), (0.5, 0.25)), ((9.0, 0.5, 0.25), (0.5, 0.25)),
                     (0.3, (0.3, 0.3)), (None, (1.0, 1.0))]:
        assert layer_sums(flat, grey, spacing=sp).spacing == want
    lab, g3 = np.zeros((5, 6, 7), np.uint32), np.zeros((5, 6, 7), np.uint8)
    assert layer_sums(lab, g3, spacing=[2]).spacing == as_spacing(2)
    for bad in [(1.0, -1.0, 1.0), (1.0, float("nan"), 1.0), (1, 2)]:
        with pytest.raises(InputError) as ref:
            as_spacing(bad, name="spacing")
        with pytest.raises(InputError) as got:
            layer_sums(lab, g3, spacing=bad)
        assert str(got.value) == str(ref.value)


def test_large_ids_give_the_same_tables():
    lab, grey = _packing((24, 26, 28), 8, seed=9)
    big = np.where(lab > 0, lab.astype(np.uint32) + np.uint32(3_000_000_000), 0).astype(np.uint32)
    a, b = layer_sums(lab, grey), layer_sums(big, grey)
    np.testing.assert_array_equal(a.ids + 3_000_000_000, b.ids)
    np.testing.assert_array_equal(a.count, b.count)
    np.testing.assert_allclose(a.total, b.total)


def _grey_of(dtype: str, lab: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.where(lab > 0, 150.0, 60.0) + rng.normal(0.0, 12.0, lab.shape)
    if dtype == "uint8":
        return np.clip(np.rint(base), 0, 255).astype(np.uint8)
    if dtype == "uint16":
        return np.clip(np.rint(base * 257), 0, 65535).astype(np.uint16)
    return (base * 0.37 - 20.0).astype(dtype)  # negative values too


@pytest.mark.parametrize("dtype,binned", [("uint8", False), ("uint16", False),
                                          ("uint16", True), ("float32", True),
                                          ("float64", True)])
def test_chunked_threaded_sums_equal_a_per_particle_loop(dtype, binned, monkeypatch):
    """Small chunks (row bands, empty chunks), 2 threads, slabs == a plain per-label loop."""
    from electrode_ct.measure import radial

    lab, _ = _packing((30, 34, 32), 14, seed=21)
    lab[:3] = 0  # the first chunks hold background only
    grey = _grey_of(dtype, lab, seed=22)
    if binned and dtype.startswith("uint"):
        monkeypatch.setattr(radial, "_EXACT_BINS", 1000)  # 16-bit levels binned
    monkeypatch.setattr(radial, "_CHUNK", 997)
    sums = layer_sums(lab, grey, spacing=(0.5, 1.3, 1.0), slab_voxels=9000, halo=2,
                      parallel=2)
    assert sums.hist_exact is not binned and sums.edt_halo_voxels
    ref = _reference(lab, grey, (0.5, 1.3, 1.0))
    assert sums.ids.tolist() == sorted(ref)
    width = sums.count.shape[1]
    as_bin = (lambda v: v - sums.hist_low) if not binned else (
        lambda v: np.clip(((v - sums.hist_low) / sums.hist_width).astype(np.int64), 0,
                          sums.hist.shape[1] - 1))
    for k, lbl in enumerate(sums.ids):
        layer, g = ref[int(lbl)]
        np.testing.assert_array_equal(sums.count[k], np.bincount(layer, minlength=width))
        for name, w in (("total", g), ("total_sq", g * g)):
            want = np.bincount(layer, weights=w, minlength=width)
            np.testing.assert_allclose(getattr(sums, name)[k], want, rtol=1e-12, err_msg=name)
        hist = np.bincount(as_bin(g).astype(np.int64), minlength=sums.hist.shape[1])
        np.testing.assert_array_equal(sums.hist[k], hist)
        assert (sums.grey_min[k], sums.grey_max[k]) == (g.min(), g.max())
    bg = grey[lab == 0].astype(np.float64)
    fine = ((bg - sums.hist_low) / sums.background_width).astype(np.int64)
    np.testing.assert_array_equal(
        sums.background_fine, np.bincount(np.clip(fine, 0, sums.background_fine.size - 1),
                                           minlength=sums.background_fine.size))
    one = layer_sums(lab, grey, spacing=(0.5, 1.3, 1.0), slab_voxels=9000, halo=2, parallel=1)
    for name in ("count", "total", "total_sq", "hist", "background_fine"):
        np.testing.assert_array_equal(getattr(one, name), getattr(sums, name), err_msg=name)
