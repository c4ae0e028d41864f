"""Tests of electrode_ct.synth: exact truth, fractions, partial volume, determinism, errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from electrode_ct.errors import InputError
from electrode_ct.synth import TRUTH_COLUMNS, electrode
from electrode_ct.synth.flaws import draw_flaws
from electrode_ct.synth.packing import lognormal_radii, pack_spheres, radii_for_fraction

SMALL = dict(voxel_size=0.5, radius_mean_um=3.0, radius_sd_um=0.75)


@pytest.mark.parametrize(("active", "cbd", "modality"), [(0.6, 0.1, "micro"),
                                                         (0.35, 0.15, "nano")])
def test_fractions_hit_targets(active, cbd, modality):
    ph = electrode((48, 48, 48), active_fraction=active, cbd_fraction=cbd, modality=modality,
                   seed=3, **SMALL)
    phases = ph.phases.numpy()
    assert abs((phases == 2).mean() - active) <= 0.015
    assert abs((phases == 1).mean() - cbd) <= 0.015
    assert ph.info["fractions"]["active"] == pytest.approx((phases == 2).mean())
    assert ph.phases.class_map == {"pore": 0, "cbd": 1, "active": 2}


def test_cbd_sits_at_necks():
    ph = electrode((48, 48, 48), seed=2, **SMALL)
    phases = ph.phases.numpy()
    # CBD touches the active phase (bridges/films), it is not scattered in open pores
    near = ndi.binary_dilation(phases == 2, iterations=2)
    assert near[phases == 1].mean() > 0.9


def test_truth_table_matches_labels():
    ph = electrode((48, 48, 48), seed=1, cracked_fraction=0.4, **SMALL)
    lab = ph.particles.numpy()
    assert lab.dtype == np.uint32
    ids = np.unique(lab[lab > 0])
    assert list(ph.truth.columns) == TRUTH_COLUMNS
    assert len(ph.truth) == len(ids) == ph.info["particles"]
    np.testing.assert_array_equal(ids, np.arange(1, len(ids) + 1))  # sequential
    np.testing.assert_array_equal(ph.truth["label"].to_numpy(), ids)
    assert ph.truth["cracked"].dtype == bool
    counts = np.bincount(lab.ravel())[1:]
    np.testing.assert_allclose(ph.truth["volume_um3"], counts * 0.125)
    zc = ndi.center_of_mass(lab > 0, lab, ids)
    np.testing.assert_allclose(ph.truth[["centroid_z", "centroid_y", "centroid_x"]], zc)
    # particles are active voxels (plus their own cracks)
    phases = ph.phases.numpy()
    cracks = ph.cracks.numpy().astype(bool)
    assert np.all((phases[lab > 0] == 2) | cracks[lab > 0])
    assert np.all(lab[phases == 2] > 0)


@pytest.mark.parametrize("fraction", [0.0, 0.3, 1.0])
def test_cracked_fraction_as_requested(fraction):
    ph = electrode((48, 48, 48), seed=4, cracked_fraction=fraction, **SMALL)
    n = len(ph.truth)
    assert ph.truth["cracked"].sum() == round(fraction * n)
    cen = ph.truth[["centroid_z", "centroid_y", "centroid_x"]].to_numpy()
    inner = np.all((cen > 6) & (cen < 42), axis=1)  # at least a radius from the border
    cracked = ph.truth[ph.truth["cracked"] & inner]
    # the flaw of a particle well inside the view is visible in it
    if len(cracked):
        assert (cracked["crack_volume_fraction"] > 0).mean() >= 0.9
    assert (ph.truth.loc[~ph.truth["cracked"], "crack_volume_fraction"] == 0).all()
    assert (ph.cracks.numpy() > 0).any() == (fraction > 0)


def test_subvoxel_crack_lowers_particle_grey_level():
    common = dict(seed=5, snr=30, crack_kinds=("radial",), crack_width_um=0.15, **SMALL)
    cracked = electrode((48, 48, 48), cracked_fraction=1.0, **common)
    intact = electrode((48, 48, 48), cracked_fraction=0.0, **common)
    lab = intact.particles.numpy()
    same = lab == cracked.particles.numpy()
    assert same.mean() > 0.995  # the same particles (surface offsets differ by < 0.01 voxel)
    lab = np.where(same, lab, 0)
    # the 0.3-voxel crack is below the half-voxel truth threshold almost everywhere ...
    assert cracked.cracks.numpy().mean() < 0.002
    # ... but it darkens the particle: partial volume
    ids = cracked.truth.loc[cracked.truth["crack_volume_fraction"] > 0.01, "label"].to_numpy()
    g1 = ndi.mean(cracked.grey.numpy().astype(float), lab, ids)
    g0 = ndi.mean(intact.grey.numpy().astype(float), lab, ids)
    diff = np.asarray(g1) - np.asarray(g0)
    assert len(ids) >= 10
    assert (diff < 0).mean() > 0.9
    assert diff.mean() / (diff.std(ddof=1) / np.sqrt(len(diff))) < -5  # paired t statistic


def test_deterministic_and_seed_dependent():
    a = electrode((40, 40, 40), seed=7, **SMALL)
    b = electrode((40, 40, 40), seed=7, **SMALL)
    c = electrode((40, 40, 40), seed=8, **SMALL)
    for name in ("grey", "phases", "particles", "cracks"):
        np.testing.assert_array_equal(getattr(a, name).numpy(), getattr(b, name).numpy())
    assert not np.array_equal(a.grey.numpy(), c.grey.numpy())
    assert a.truth.equals(b.truth)


def test_collector_calender_and_8bit():
    ph = electrode((48, 40, 40), seed=2, collector="z0", collector_um=2.0, calender=0.2,
                   active_fraction=0.7, bits=8, **SMALL)
    phases = ph.phases.numpy()
    assert ph.grey.dtype == np.uint8
    assert (phases[:4] == 3).all() and not (phases[4:] == 3).any()
    assert ph.phases.class_map["collector"] == 3
    assert abs((phases[4:] == 2).mean() - 0.7) <= 0.015


def test_modalities_order_levels():
    for mod in ("micro", "nano"):
        ph = electrode((40, 40, 40), seed=1, modality=mod, snr=50, **SMALL)
        g = ph.grey.numpy().astype(float)
        core = [ndi.binary_erosion(ph.phases.numpy() == v, iterations=2) for v in (0, 1, 2)]
        means = [g[m].mean() for m in core if m.any()]
        assert means == sorted(means)  # pore < cbd < active


def test_lognormal_radius_moments_and_packing_overlap():
    rng = np.random.default_rng(0)
    r = lognormal_radii(rng, 200_000, mean_um=4.0, sd_um=1.0)
    assert r.mean() == pytest.approx(4.0, rel=0.01)
    assert r.std() == pytest.approx(1.0, rel=0.02)
    box = np.array([40.0, 40.0, 40.0])
    radii = radii_for_fraction(rng, box, 0.6, mean_um=3.0, sd_um=0.8, min_um=0.5)
    assert (4 / 3 * np.pi * radii**3).sum() / box.prod() == pytest.approx(0.6)
    x, worst = pack_spheres(rng, radii, box)
    d = x[:, None] - x[None]
    d -= box * np.round(d / box)
    dist = np.sqrt((d**2).sum(-1)) + np.eye(len(x)) * 1e9
    overlap = radii[:, None] + radii[None] - dist
    assert (overlap / np.minimum(radii[:, None], radii[None])).max() <= 0.1
    assert worst <= 0.1


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(active_fraction=0.8, cbd_fraction=0.2), "0.95"),
    (dict(radius_mean_um=0.0), "radius_mean_um"),
    (dict(radius_sd_um=-1.0), "radius_sd_um"),
    (dict(voxel_size=-0.5), "voxel_size"),
    (dict(crack_width_um=0.0), "crack_width_um"),
    (dict(shape=(20, 20, 20), radius_mean_um=4.0), "too small"),
    (dict(modality="xray"), "modality"),
    (dict(active_fraction=0.7), "calender"),
    (dict(unknown_option=1.0), "unknown"),
])
def test_bad_input_raises_one_clear_error(kwargs, match):
    args = {"shape": (40, 40, 40), **SMALL, **kwargs}
    shape = args.pop("shape")
    with pytest.raises(InputError, match=match):
        electrode(shape, **args)


def _two_particles():
    """Two touching ellipsoids (one overlapping the other) on a 24³ grid of 0.5 µm."""
    from electrode_ct.synth.packing import Particles, ellipsoid_shapes
    from electrode_ct.synth.render import Grid

    rng = np.random.default_rng(0)
    radii = np.array([2.6, 2.0])
    shape_m, extent = ellipsoid_shapes(rng, radii, aspect_sd=0.3)
    centers = np.array([[5.6, 6.1, 5.2], [6.3, 6.0, 9.3]])
    return Particles(centers, shape_m, radii, extent, np.arange(2)), Grid((24, 24, 24),
                                                                          (0.5, 0.5, 0.5))


def test_band_supersampling_matches_dense_supersampling():
    from electrode_ct.synth.render import coverage_blocks, sample_offsets

    parts, grid = _two_particles()
    flaws = draw_flaws(np.random.default_rng(1), parts.radius_um, width_um=0.2,
                       kinds=("radial",)).with_active([0])
    delta = 0.1
    for f in (2, 3):
        got = list(coverage_blocks(parts, grid, field=None, delta_um=delta, flaws=flaws,
                                   factor=f, block_samples=f**3 * 24 * 24 * 5, workers=2))
        solid = np.concatenate([b[2] for b in got])
        # dense reference: every sub-sample of every voxel, max over particles
        offs = sample_offsets(grid.spacing, f)
        zyx = np.stack(np.meshgrid(*[grid.coords(a) for a in range(3)], indexing="ij"), -1)
        pts = zyx.reshape(-1, 1, 3) + offs[None]
        hs = 0.5 / f
        cov = np.zeros(pts.shape[:2])
        for i in range(2):
            u = (pts - parts.centers[i]) @ parts.shape_matrix[i].T
            d = (np.linalg.norm(u, axis=-1) - 1) * parts.radius_um[i]
            cov = np.maximum(cov, np.clip(0.5 - (d - delta) / hs, 0, 1))
        ref = cov.mean(axis=1).reshape(grid.shape)
        assert 0.05 < ref.mean() < 0.5
        np.testing.assert_allclose(solid, ref, atol=0.003)  # uint8 sub-samples


def test_slabs_and_threads_do_not_change_results():
    from electrode_ct.synth.imaging import NOISE_SLAB, forward, get_preset
    from electrode_ct.synth.render import coverage_blocks, nearest_two

    parts, grid = _two_particles()
    a = nearest_two(parts, grid, field=None, margin_um=1.5, block=5, workers=2)
    b = nearest_two(parts, grid, field=None, margin_um=1.5, workers=1)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    flaws = draw_flaws(np.random.default_rng(1), parts.radius_um,
                       width_um=0.3).with_active([0, 1])
    sums = [np.zeros(2), np.zeros(2), np.zeros(2)]
    runs = [[np.concatenate(arrays) for arrays in zip(*(blk[2:] for blk in coverage_blocks(
        parts, grid, field=None, delta_um=0.0, flaws=flaws, block_samples=8 * 24 * 24 * k,
        flaw_sums=s, workers=w)), strict=True)]
        for k, s, w in ((3, sums[0], 2), (3, sums[1], 1), (24, sums[2], 1))]
    for j in (0, 1):  # threads: bit-identical
        np.testing.assert_array_equal(runs[0][j], runs[1][j])
    np.testing.assert_array_equal(sums[0], sums[1])
    assert sums[0].min() > 0
    # other slab sizes: the same up to float rounding (BLAS blocking) and uint8 steps
    np.testing.assert_allclose(runs[0][0], runs[2][0], atol=1 / 255)
    np.testing.assert_allclose(runs[0][1], runs[2][1], atol=1e-5)
    np.testing.assert_allclose(sums[0], sums[2], rtol=1e-5)
    # imaging: same noise field whatever the slab size; no seams at noise-slab borders
    preset = get_preset("micro", psf_sigma_vox=0.0, cupping=0.0, noise_corr_vox=1.5)
    flat = np.full((4 * NOISE_SLAB, 64, 64), 0.5, np.float32)
    g1 = forward(flat, grid=grid, preset=preset, seed=3, block=9).astype(float)
    g2 = forward(flat, grid=grid, preset=preset, seed=3, block=40).astype(float)
    np.testing.assert_array_equal(g1, g2)
    n = g1 - g1.mean()

    def corr(z):
        return np.corrcoef(n[z].ravel(), n[z + 1].ravel())[0, 1]

    inside = np.mean([corr(NOISE_SLAB * k + 7) for k in range(3)])
    across = np.mean([corr(NOISE_SLAB * k - 1) for k in range(1, 4)])
    assert inside > 0.6
    assert abs(across - inside) < 0.05
