"""Morphology table and size distribution against analytic spheres and skimage regionprops."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from skimage.measure import regionprops

from electrode_ct.errors import InputError
from electrode_ct.measure import morphology_table, size_distribution
from electrode_ct.measure.morphology import BASIC_COLUMNS, SHAPE_COLUMNS, particle_surface_areas
from electrode_ct.measure.psd import plot_size_distribution, weighted_quantiles


def ball(radius: float, pad: int = 3, offset: float = 0.3) -> np.ndarray:
    n = int(2 * radius) + 2 * pad + 1
    z, y, x = np.mgrid[:n, :n, :n] - (n - 1) / 2 + offset
    return ((z**2 + y**2 + x**2) <= radius**2).astype(np.uint32)


@pytest.mark.parametrize(("radius", "method"), [(15, "configurations"), (20, "configurations"),
                                                (15, "marching_cubes")])
def test_sphere_volume_area_sphericity(radius, method):
    spacing = 0.5
    tab = morphology_table(ball(radius), spacing=spacing, surface_method=method)
    r_um = radius * spacing
    row = tab.iloc[0]
    assert abs(row.volume_um3 / (4 / 3 * np.pi * r_um**3) - 1) < 0.01
    assert abs(row.surface_area_um2 / (4 * np.pi * r_um**2) - 1) < 0.03
    assert abs(row.sphericity - 1) < 0.03
    assert abs(row.equivalent_diameter_um / (2 * r_um) - 1) < 0.01
    assert abs(row.axis_major_um / (2 * r_um) - 1) < 0.02
    assert 1 <= row.elongation < 1.02 and 1 <= row.flatness < 1.02


def test_anisotropic_ellipsoid_axes_and_area():
    # an ellipsoid of semi-axes 12, 8, 6 µm sampled with spacing (1, 0.5, 0.5)
    z, y, x = np.mgrid[:30, :40, :40].astype(float)
    z, y, x = (z - 14.6) * 1.0, (y - 19.6) * 0.5, (x - 19.3) * 0.5
    lab = ((z / 12) ** 2 + (y / 8) ** 2 + (x / 6) ** 2 <= 1).astype(np.uint16)
    row = morphology_table(lab, spacing=(1, 0.5, 0.5)).iloc[0]
    assert abs(row.volume_um3 / (4 / 3 * np.pi * 12 * 8 * 6) - 1) < 0.01
    assert np.allclose([row.axis_major_um, row.axis_intermediate_um, row.axis_minor_um],
                       [24, 16, 12], rtol=0.03)
    p = 1.6075  # Knud Thomsen's ellipsoid surface formula (error < 1.1 %)
    a, b, c = 12, 8, 6
    area = 4 * np.pi * (((a * b) ** p + (a * c) ** p + (b * c) ** p) / 3) ** (1 / p)
    assert abs(row.surface_area_um2 / area - 1) < 0.03
    assert row.elongation == pytest.approx(1.5, rel=0.03)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 1.0, 1.0)])
def test_configurations_match_marching_cubes_on_touching_blobs(spacing):
    # smooth, touching, border-cut particles: the one-pass estimate follows the
    # per-particle marching cubes (which counts contact faces for both particles too)
    rng = np.random.default_rng(4)
    z, y, x = np.ogrid[:42, :44, :46]
    lab = np.zeros((42, 44, 46), np.uint32)
    centres = [(cz, cy, cx) for cz in (10, 31) for cy in (11, 33) for cx in (11, 33)]
    for i, c in enumerate(centres, start=1):  # neighbours overlap by ~1-3 voxels
        c = np.asarray(c) + rng.uniform(-1.5, 1.5, 3)
        r = rng.uniform(10.5, 12.5)
        lab[(z - c[0]) ** 2 + (y - c[1]) ** 2 + ((x - c[2]) * 1.1) ** 2 <= r * r] = i
    conf = particle_surface_areas(lab, spacing=spacing)
    mc = particle_surface_areas(lab, spacing=spacing, method="marching_cubes")
    present = np.flatnonzero(mc)
    assert np.array_equal(present, np.flatnonzero(conf))
    assert len(present) == 8 and (lab[[0, -1]] > 0).any()  # some cut by the border
    assert np.allclose(conf[present], mc[present], rtol=0.03)


def test_configuration_weights_unbiased_over_orientations():
    from electrode_ct.measure.morphology import (
        _fibonacci_normals,
        _plane_frequencies,
        configuration_weights,
    )

    for sp in [(1.0, 1.0, 1.0), (1.0, 0.5, 0.5)]:
        w = configuration_weights(sp)
        assert w[0] == 0 and w[255] == 0
        est = _plane_frequencies(_fibonacci_normals(777), np.array(sp)) @ w
        assert abs(est.mean() - 1) < 0.005 and est.std() < 0.03
        # a plane seen from either side (particle/background, or two touching particles)
        assert np.allclose(w, w[255 - np.arange(256)], atol=1e-9)


def test_faces_method_staircase_bias():
    lab = ball(15)
    faces = particle_surface_areas(lab, method="face")[1]
    # exposed faces of a digital sphere overestimate its area by ~1.5x
    assert 1.4 < faces / (4 * np.pi * 15**2) < 1.6
    cube = np.zeros((8, 8, 8), np.uint8)
    cube[2:5, 2:6, 2:7] = 1
    assert particle_surface_areas(cube, method="face", spacing=(2, 1, 1))[1] == 2 * (
        4 * 5 + 3 * 2 * 5 + 3 * 2 * 4)


def test_face_counting_is_spelled_as_in_the_phase_metrics():
    from electrode_ct.metrics.surface import METHODS, phase_surface_area

    cube = np.zeros((8, 8, 8), np.uint8)
    cube[2:5, 2:6, 2:7] = 1
    assert "face" in METHODS
    faces = particle_surface_areas(cube, method="face")[1]
    assert faces == phase_surface_area(cube == 1, method="face")
    with pytest.raises(InputError, match="surface method.*'face'"):
        particle_surface_areas(cube, method="faces")


def test_matches_regionprops_and_neighbours_and_border():
    rng = np.random.default_rng(1)
    lab = np.zeros((30, 32, 34), np.uint32)
    lab[2:10, 3:12, 4:9] = 5
    lab[2:10, 12:20, 4:9] = 9  # touches 5 along y
    lab[15:25, 20:32, 10:20] = 3  # touches the y border
    lab[20:28, 5:10, 25:30] = 70000
    lab[lab == 3] *= (rng.random((lab == 3).sum()) > 0.1).astype(np.uint32)
    tab = morphology_table(lab, spacing=(2.0, 1.0, 0.5))
    assert list(tab.columns) == list(BASIC_COLUMNS) + list(SHAPE_COLUMNS)
    assert tab["label"].dtype == np.uint32
    props = {p.label: p for p in regionprops(lab.astype(np.int64))}
    assert sorted(tab.label) == sorted(props)
    for row in tab.itertuples():
        p = props[row.label]
        assert row.n_voxels == p.area
        assert np.allclose([row.centroid_z, row.centroid_y, row.centroid_x], p.centroid)
        assert np.allclose([row.centroid_z_um, row.centroid_y_um, row.centroid_x_um],
                           np.array(p.centroid) * [2.0, 1.0, 0.5])
        assert (row.bbox_z0, row.bbox_y0, row.bbox_x0, row.bbox_z1, row.bbox_y1,
                row.bbox_x1) == tuple(p.bbox)
        assert row.volume_um3 == pytest.approx(p.area * 1.0)
    by = tab.set_index("label")
    assert by.loc[5, "n_neighbours"] == 1 and by.loc[9, "n_neighbours"] == 1
    assert by.loc[3, "n_neighbours"] == 0
    assert bool(by.loc[3, "touches_border"]) and not bool(by.loc[5, "touches_border"])


def test_compacted_ids_2d_and_row_order(monkeypatch):
    import electrode_ct.measure.morphology as morph

    lab = np.zeros((12, 14, 16), np.uint32)
    lab[1:5, 2:9, 3:7] = 4_000_000_000
    lab[6:11, 3:13, 2:15] = 17
    lab[0:3, 10:14, 9:16] = 3
    dense = morph.morphology_table(lab, spacing=(1, 2, 3))
    assert dense.label.tolist() == [3, 17, 4_000_000_000]  # sorted ids
    monkeypatch.setattr(morph, "DENSE_IDS", 4)  # force the id-compaction path
    assert morph.morphology_table(lab, spacing=(1, 2, 3)).equals(dense)
    # a 2-D image: only its four edges are a border
    img = np.zeros((10, 10), np.uint8)
    img[3:6, 3:6] = 1
    img[0:2, 4:6] = 2
    tab = morphology_table(img, properties="basic")
    assert tab.touches_border.tolist() == [False, True]
    assert tab.n_neighbours.tolist() == [0, 0]


def test_basic_skips_shape_and_empty_and_errors():
    lab = np.zeros((6, 6, 6), np.int32)
    lab[1:3, 1:3, 1:3] = 2
    basic = morphology_table(lab, properties="basic")
    assert list(basic.columns) == list(BASIC_COLUMNS)
    empty = morphology_table(np.zeros((4, 4, 4), np.uint8))
    assert len(empty) == 0 and "sphericity" in empty.columns
    with pytest.raises(InputError, match="integer dtype"):
        morphology_table(lab.astype(np.float32))
    with pytest.raises(InputError, match="properties"):
        morphology_table(lab, properties="some")


def test_size_distribution_weighted_quantiles():
    d = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    table = pd.DataFrame({"equivalent_diameter_um": d,
                          "touches_border": [False, False, False, False, True]})
    dist = size_distribution(table, min_diameter_um=1.5)
    assert dist["n_particles"] == 4 and dist["n_excluded"] == 1
    assert dist["number"]["mean_um"] == pytest.approx(np.mean(d[1:]))
    assert dist["number"]["d50_um"] == pytest.approx(np.median(d[1:]))
    # the volume-weighted d50 is pulled to the large particle
    assert dist["volume"]["d50_um"] > 9.0 and dist["d50_um"] == dist["volume"]["d50_um"]
    assert sum(dist["histogram"]["number_fraction"]) == pytest.approx(1.0)
    assert size_distribution(table, exclude_border=True)["n_particles"] == 4
    assert np.isnan(size_distribution(table, min_diameter_um=50)["d50_um"])
    # equal weights: the midpoint rule reproduces the sample median
    assert weighted_quantiles(np.arange(11.0), np.ones(11), 0.5)[0] == pytest.approx(5.0)
    with pytest.raises(InputError):
        size_distribution(pd.DataFrame({"x": [1]}))


def test_plot_size_distribution(tmp_path):
    table = pd.DataFrame({"equivalent_diameter_um": np.linspace(2, 12, 50)})
    fig = plot_size_distribution(size_distribution(table), path=tmp_path / "psd.png")
    assert (tmp_path / "psd.png").stat().st_size > 1000
    assert fig.axes[0].get_xlabel().startswith("equivalent diameter")


def test_configuration_weights_do_not_depend_on_the_blas_thread_count():
    from threadpoolctl import threadpool_limits

    from electrode_ct.measure.morphology import configuration_weights

    runs = []
    for threads in (1, 2):
        configuration_weights.cache_clear()
        with threadpool_limits(limits=threads, user_api="blas"):
            runs.append(configuration_weights((0.5, 0.4, 0.3)).copy())
    np.testing.assert_array_equal(runs[0], runs[1])  # bit for bit on any machine
