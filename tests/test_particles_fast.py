"""The faster primitives of particle separation give the same values as the references.

Each replaced algorithm against the straightforward one it replaces (ITK's regional maxima,
scipy's hole filling, the closing by two distance transforms, the convex hull from every row
end, the fill ratio on the whole crop, ``np.maximum.at`` into float64), and a whole healed
separation with every reference swapped back in: identical labels and scores.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy.spatial import ConvexHull, QhullError

from electrode_ct.particles import resplit, seeding, separate, separate_particles, shape
from electrode_ct.particles.seeding import (
    ball_closing,
    distance_map,
    fill_mask_holes,
    regional_maxima,
    smoothed_distance,
)
from electrode_ct.particles.shape import PieceShape, fill_ratio, region_solidity
from electrode_ct.synth import electrode


def _electrode(n=40, seed=3):
    ph = electrode((n,) * 3, seed=seed, voxel_size=0.5, radius_mean_um=4.0, radius_sd_um=1.0,
                   active_fraction=0.45, cbd_fraction=0.05, crack_kinds=("radial",),
                   cracked_fraction=0.5, crack_width_um=0.75)
    return ph.phases.numpy() == ph.phases.class_map["active"]


def itk_regional_maxima(image):
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(image, dtype=np.float32))
    return sitk.GetArrayFromImage(sitk.RegionalMaxima(img, fullyConnected=True)) > 0


def edt_closing(mask, radius, spacing):
    dilated = distance_map(~mask, spacing) <= radius
    return distance_map(dilated, spacing) > radius


def row_end_solidity(region, spacing):
    centres = shape._row_ends(region)
    try:
        vertices = centres[ConvexHull(centres).vertices]
    except (QhullError, ValueError):
        vertices = centres
    corners = (vertices[:, None, :] + shape._CORNERS[None]).reshape(-1, 3) * np.asarray(spacing)
    return float(region.sum() * np.prod(spacing) / ConvexHull(corners).volume)


def whole_crop_q(self, piece):
    dist = smoothed_distance(piece, self.sp, self.smooth)
    ball = 4.0 / 3.0 * np.pi * max(float(dist.max()), 1e-6) ** 3
    return float(piece.sum() * self.voxel / ball / self.median_fill)


def test_regional_maxima_equal_itk_on_plateaus_and_distance_maps():
    import SimpleITK as sitk

    rng = np.random.default_rng(0)
    for _ in range(60):  # small integer maps: many plateaus, flat maps, thin volumes
        image = rng.integers(0, 3, tuple(rng.integers(1, 8, 3))).astype(np.float32)
        assert np.array_equal(regional_maxima(image), itk_regional_maxima(image))
    score = smoothed_distance(_electrode(), (0.5,) * 3, 1.0)
    hmax = sitk.GetArrayFromImage(sitk.HMaxima(sitk.GetImageFromArray(score), 0.5))
    for image in (score, hmax):
        found = regional_maxima(image)
        assert found.any() and np.array_equal(found, itk_regional_maxima(image))


def test_fill_mask_holes_equals_scipy():
    rng = np.random.default_rng(1)
    masks = [rng.random(tuple(rng.integers(1, 12, 3))) < 0.6 for _ in range(40)]
    for mask in [*masks, _electrode(), np.zeros((4, 5, 6), bool), np.ones((3, 3, 3), bool)]:
        assert np.array_equal(fill_mask_holes(mask), ndi.binary_fill_holes(mask))


def test_ball_closing_equals_two_distance_transforms():
    rng = np.random.default_rng(2)
    for _ in range(60):  # anisotropic spacings, radii below and above the shift limit
        mask = rng.random(tuple(rng.integers(1, 14, 3))) < rng.uniform(0.2, 0.95)
        spacing = tuple(rng.choice([0.3, 0.398, 0.5, 0.7, 1.0], 3))
        radius = float(rng.uniform(0.2, 3.0))
        assert np.array_equal(ball_closing(mask, radius, spacing),
                              edt_closing(mask, radius, spacing))
    mask = _electrode()
    for radius in (0.75, 1.25):
        assert np.array_equal(ball_closing(mask, radius, (0.5,) * 3),
                              edt_closing(mask, radius, (0.5,) * 3))
    assert seeding._ball(1.0, (1.0, 1.0, 1.0)) is None  # a voxel at the radius: the edt path


def test_solidity_and_piece_fill_equal_the_references_bit_for_bit():
    labels = separate_particles(_electrode().astype(np.uint8), phase=1, spacing=0.5).labels
    piece_shape = PieceShape((0.5,) * 3, 1.0, 0.7)
    for i, box in enumerate(ndi.find_objects(labels), start=1):
        region = labels[box] == i
        assert region_solidity(region, (0.5,) * 3) == row_end_solidity(region, (0.5,) * 3)
        crop = np.pad(region, 6)  # a piece of a larger crop, as in the re-split
        assert piece_shape.q(crop) == whole_crop_q(piece_shape, crop)
        assert piece_shape.q(region) == whole_crop_q(piece_shape, region)  # on the faces


def test_fill_ratio_peak_equals_float64_maximum_at():
    mask = _electrode()
    labels = separate_particles(mask.astype(np.uint8), phase=1, spacing=0.5).labels
    score = smoothed_distance(mask, (0.5,) * 3, 1.0)
    peak = np.zeros(int(labels.max()) + 1)
    np.maximum.at(peak, labels[labels > 0], score[labels > 0])
    assert np.array_equal(fill_ratio(labels, score, spacing=0.5)[1], peak)


@pytest.mark.parametrize("heal", [1.0, 2.0])
def test_healed_separation_identical_with_every_reference_swapped_in(monkeypatch, heal):
    mask = _electrode(48, seed=5).astype(np.uint8)
    fast = separate_particles(mask, phase=1, spacing=0.5, heal_cracks_um=heal)
    fast_scores = fast.scores
    assert fast.n_resplit + fast.n_rehealed > 0  # the re-split and the choice both ran

    def hull_memo(region, spacing):
        return row_end_solidity(region, spacing)

    monkeypatch.setattr(seeding, "regional_maxima", itk_regional_maxima)
    monkeypatch.setattr(separate, "fill_mask_holes", ndi.binary_fill_holes)
    monkeypatch.setattr(resplit, "fill_mask_holes", ndi.binary_fill_holes)
    monkeypatch.setattr(separate, "ball_closing", edt_closing)
    monkeypatch.setattr(shape, "_solidity_memo", hull_memo)
    monkeypatch.setattr(resplit, "region_solidity", row_end_solidity)
    monkeypatch.setattr(PieceShape, "q", whole_crop_q)
    ref = separate_particles(mask, phase=1, spacing=0.5, heal_cracks_um=heal)
    assert np.array_equal(fast.labels, ref.labels)
    assert np.array_equal(fast_scores, ref.scores)
    assert fast.summary() == ref.summary()


def test_stored_watershed_reloads_the_same_arrays(tmp_path):
    from electrode_ct.blocks import block_grid
    from electrode_ct.particles.blockwise import ParticleSettings, stored_watershed
    from electrode_ct.particles.separate import distance_watershed

    mask = _electrode(32)
    block = block_grid(mask.shape, (16, 32, 32), (8, 8, 8))[0]
    settings = ParticleSettings(None, (0.5,) * 3, heal_cracks_um=1.0)
    labels, score, markers = distance_watershed(mask, 1.25, spacing=(0.5,) * 3, h_um=0.5,
                                                smooth=1.0, compactness=0.0)
    first = stored_watershed(mask, block, settings, tmp_path)(1.25)  # computed, stored
    assert len(list(tmp_path.iterdir())) == 1
    again = stored_watershed(mask, block, settings, tmp_path)(1.25)  # loaded
    for got in (first, again):
        assert np.array_equal(got[0], labels) and got[0].dtype == labels.dtype
        assert np.array_equal(got[1], score) and got[2] == int(markers.max())


def test_a_phase_without_background_is_one_particle_without_warnings():
    import warnings

    full = np.ones((12, 14, 16), bool)
    d = seeding.distance_map(full, (0.5, 1.0, 1.0))
    assert np.isfinite(d).all() and np.unique(d).size == 1
    assert d[0, 0, 0] == pytest.approx(np.linalg.norm([6.0, 14.0, 16.0]), rel=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sep = separate_particles(full, spacing=(0.5, 1.0, 1.0), heal_cracks_um=1.0)
    assert sep.n_particles == 1 and (sep.labels == 1).all()
