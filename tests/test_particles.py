"""Particle separation: touching spheres split, cracked spheres kept whole, cleanup rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from electrode_ct.errors import InputError, ShapeError
from electrode_ct.metrics.instances import match_instances
from electrode_ct.particles import (
    border_labels,
    fill_holes,
    heal_cracks,
    mahalanobis_outliers,
    particle_confidence,
    relabel_sequential,
    remove_border,
    remove_islands,
    remove_small,
    separate_particles,
    truncated_labels,
)
from electrode_ct.synth import electrode
from electrode_ct.volume import Volume


def spheres(shape, centres, r):
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    out = np.zeros(shape, np.uint8)
    for i, (cz, cy, cx) in enumerate(centres, start=1):
        out[(z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= r * r] = i
    return out


def test_touching_spheres_separated():
    truth = spheres((24, 24, 44), [(12, 12, 11), (12, 12, 29)], 9)  # overlap of 1 voxel
    phases = (truth > 0).astype(np.uint8) * 2
    lab = separate_particles(phases, phase=2).labels
    assert lab.dtype == np.uint32 and lab.max() == 2
    m = match_instances(lab, truth)
    assert m["ap"] > 0.9 and m["splits"] == 0 and m["merges"] == 0


def test_cracked_sphere_kept_whole_only_with_healing():
    truth = spheres((32, 32, 32), [(16, 16, 16)], 12).astype(np.uint32)
    z = np.arange(32)[:, None, None]
    truth[np.broadcast_to((z == 15) | (z == 16), truth.shape)] = 0  # 2-voxel crack through it
    vol = Volume(truth.astype(np.uint8), spacing=0.5, metadata={"class_map": {"active": 1}})
    broken = separate_particles(vol, phase="active").labels
    assert broken.max() == 2  # the problem: the crack looks like pore
    healed = separate_particles(vol, phase="active", heal_cracks_um=1.0).labels  # 2 voxels
    assert healed.max() == 1
    assert np.array_equal(healed > 0, truth > 0)  # labels cut back to the original mask


def cracked_electrode(shape=(64, 64, 64), seed=3):
    """Synthetic electrode: 30 % of the particles cut by planar cracks 1.1-1.9 voxels wide."""
    ph = electrode(shape, voxel_size=0.5, radius_mean_um=5.0, radius_sd_um=1.0,
                   active_fraction=0.45, cbd_fraction=0.05, crack_kinds=("radial",),
                   crack_width_um=0.75, cracked_fraction=0.3, seed=seed)
    active = ph.phases.numpy() == ph.phases.class_map["active"]
    truth = np.where(active, ph.particles.numpy(), 0)  # one id per particle on its solid
    return ph, truth


def test_healing_keeps_cracked_particles_whole_in_packing():
    ph, truth = cracked_electrode()
    assert ph.truth.cracked.sum() == round(0.3 * len(ph.truth))
    lab = separate_particles(ph.phases, phase="active", heal_cracks_um=1.0).labels
    m = match_instances(lab, truth)
    assert abs(m["n_pred"] - m["n_ref"]) <= 2
    assert m["ap50"] >= 0.9 and m["splits"] <= 1 and m["merges"] <= 2
    plain = match_instances(separate_particles(ph.phases, phase="active").labels, truth)
    assert plain["splits"] >= 5 and plain["ap50"] < m["ap50"] - 0.3


def test_heal_cracks_closes_only_narrow_gaps():
    mask = np.zeros((5, 5, 30), bool)
    mask[:, :, :10] = True
    mask[:, :, 12:20] = True  # 2-voxel gap
    mask[:, :, 24:] = True  # 4-voxel gap
    healed = heal_cracks(mask, width_um=2.0)
    assert healed[:, :, 10:12].all() and not healed[:, :, 20:24].any()
    assert (healed >= mask).all()


def test_boundary_and_triplanar_methods():
    truth = spheres((24, 24, 44), [(12, 12, 11), (12, 12, 29)], 9)
    mask = truth > 0
    bnd = np.zeros(mask.shape, np.float32)
    bnd[:, :, 19:21] = 1.0  # a learned boundary between the two
    lab = separate_particles(mask.astype(np.uint8), phase=1, method="boundary",
                             boundary=bnd).labels
    assert lab.max() == 2 and match_instances(lab, truth)["ap50"] == 1.0
    # tri-planar: slice-wise 2-D instance labels along the three axes (here: the truth)
    tri = separate_particles(mask.astype(np.uint8), phase=1, method="triplanar",
                             planes=[truth, truth, truth]).labels
    assert tri.max() == 2 and match_instances(tri, truth)["ap50"] == 1.0
    with pytest.raises(InputError, match="boundary"):
        separate_particles(mask.astype(np.uint8), phase=1, method="boundary")
    with pytest.raises(ShapeError):
        separate_particles(mask.astype(np.uint8), phase=1, method="boundary", boundary=bnd[1:])


def test_bad_input_and_min_volume():
    phases = np.zeros((10, 10, 10), np.uint8)
    phases[2:5, 2:5, 2:5] = 2
    with pytest.raises(InputError, match="no voxels"):
        separate_particles(phases, phase=1)
    with pytest.raises(InputError, match="phase"):
        separate_particles(phases)
    with pytest.raises(InputError, match="method"):
        separate_particles(phases, phase=2, method="magic")
    sep = separate_particles(phases, phase=2, min_volume_um3=100)
    assert sep.labels.max() == 0 and sep.n_particles == 0 and sep.n_removed_small == 1


def test_cleanup_functions():
    lab = np.zeros((12, 12, 12), np.uint32)
    lab[1:6, 1:6, 1:6] = 4
    lab[3, 3, 3] = 0  # enclosed hole
    lab[0:4, 8:12, 8:12] = 9  # on the border (z=0, y/x=end): section 16 of max 16
    lab[8:11, 0:1, 5:7] = 2  # thin sliver on y=0
    lab[7, 7, 7] = 4  # an island of label 4
    filled = fill_holes(lab)
    assert filled[3, 3, 3] == 4 and filled[0, 0, 0] == 0
    assert np.array_equal(border_labels(lab), [2, 9])
    assert 4 not in truncated_labels(lab) and 9 in truncated_labels(lab)
    assert remove_islands(lab)[7, 7, 7] == 0 and remove_islands(lab)[2, 2, 2] == 4
    out, n = remove_small(lab, min_volume_um3=7, spacing=1)
    assert n == 1 and 2 not in out
    assert set(np.unique(remove_border(lab))) == {0, 4}
    seq = relabel_sequential(lab)
    assert seq.dtype == np.uint32 and set(np.unique(seq)) == {0, 1, 2, 3}


def test_mahalanobis_flags_slice_artefact():
    rng = np.random.default_rng(0)
    n = 200
    table = pd.DataFrame({
        "sphericity": rng.normal(0.9, 0.02, n), "elongation": rng.normal(1.1, 0.03, n),
        "flatness": rng.normal(1.1, 0.03, n), "volume_um3": rng.lognormal(5, 0.2, n),
    })
    table.loc[7, ["sphericity", "flatness"]] = [0.4, 6.0]  # a flat slice-like artefact
    flags = mahalanobis_outliers(table)
    assert flags[7] and flags.sum() <= 3


def test_confidence_ranks_merges_and_truncated_particles_last():
    from scipy import ndimage as ndi

    # five intact spheres; a merge of three larger spheres given one id; a half sphere
    shape = (40, 40, 170)
    intact = [(20, 20, 10 + 19 * i) for i in range(5)]
    labels = spheres(shape, intact, 8).astype(np.uint32)
    triple = [(20, 20, 104), (20, 20, 120), (20, 20, 136)]
    labels[spheres(shape, triple, 9) > 0] = 6
    half = spheres(shape, [(20, 20, 160)], 8) > 0
    half[:, :, 160:] = False
    labels[half] = 7
    dist = ndi.distance_transform_edt(labels > 0).astype(np.float32)  # 1 µm voxels
    conf, peak = particle_confidence(labels, dist, spacing=1.0)
    assert conf.shape == peak.shape == (8,) and conf[0] == 0
    np.testing.assert_allclose(peak[1:], ndi.maximum(dist, labels, np.arange(1, 8)))
    np.testing.assert_allclose(conf[1:6], peak[1:6])  # typical shapes keep their peak
    assert conf[6] < 0.75 * peak[6] and conf[7] < 0.75 * peak[7]
    assert peak[6] > peak[1]  # the merge has the largest peak ...
    assert set(np.argsort(conf[1:])[:2] + 1) == {6, 7}  # ... but is ranked last
    # that ranking is what AP@0.5 rewards: the merge is a false positive
    ref = spheres(shape, intact, 8)
    ref = np.where(spheres(shape, triple, 9) > 0, spheres(shape, triple, 9) + 5, ref)
    ref[spheres(shape, [(20, 20, 160)], 8) > 0] = 9
    ranked = match_instances(labels, ref, scores=conf)
    by_peak = match_instances(labels, ref, scores=peak)
    assert ranked["tp"] == by_peak["tp"] and ranked["fp"] >= 1
    assert ranked["ap50"] > by_peak["ap50"] + 0.05


def test_confidence_with_solidity_ranks_a_well_filled_merge_last():
    from scipy import ndimage as ndi

    from electrode_ct.particles import particle_solidity

    # five intact spheres (r 8) and a merge of a large (r 10) and a small (r 5) sphere:
    # its volume nearly fits its larger inscribed ball, only its neck gives it away
    shape = (30, 30, 150)
    labels = spheres(shape, [(15, 15, 10 + 19 * i) for i in range(5)], 8).astype(np.uint32)
    labels[spheres(shape, [(15, 15, 113)], 10) > 0] = 6
    labels[spheres(shape, [(15, 15, 127)], 5) > 0] = 6
    dist = ndi.distance_transform_edt(labels > 0).astype(np.float32)
    sol = particle_solidity(labels, spacing=1.0)
    assert sol[6] < 0.95 * np.median(sol[1:6])
    plain, peak = particle_confidence(labels, dist, spacing=1.0)
    conf, peak2 = particle_confidence(labels, dist, spacing=1.0, solidity=sol)
    np.testing.assert_array_equal(peak, peak2)
    assert np.argmax(plain) == 6  # the fill ratio alone ranks the merge first ...
    assert np.argmin(conf[1:]) + 1 == 6  # ... the solidity ranks it last
    np.testing.assert_allclose(conf[1:6], plain[1:6])  # typical particles unchanged
    off, _ = particle_confidence(labels, dist, spacing=1.0, solidity=sol, convexity_power=0)
    np.testing.assert_array_equal(off, plain)


def test_separate_returns_confidence_and_peak():
    truth = spheres((24, 24, 44), [(12, 12, 11), (12, 12, 29)], 9)
    info = separate_particles(truth > 0, spacing=0.5)
    lab = info.labels
    assert lab.max() == 2
    assert info.scores.shape == info.peak_um.shape == info.solidity.shape == (3,)
    assert np.all(info.scores[1:] <= info.peak_um[1:] + 1e-12)
    assert np.all((info.solidity[1:] > 0.7) & (info.solidity[1:] <= 1))
    # two identical spheres: same peak (about the radius, 4.5 µm, less the smoothing)
    assert 3.0 < info.peak_um[1] <= 4.6
    np.testing.assert_allclose(info.peak_um[1], info.peak_um[2], rtol=0.02)


def resplit_scene():
    """Five intact balls, a ball cracked through (2 voxels), and a small ball touching a
    large one: the 2 µm healing closing bridges the small ball to its neighbour."""
    shape = (28, 60, 100)
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    truth = np.zeros(shape, np.uint32)
    balls = [((14, 14, 14), 9), ((14, 14, 38), 8), ((14, 14, 62), 9), ((14, 44, 14), 8),
             ((14, 44, 40), 9), ((14, 44, 66), 9), ((14, 14, 86), 9), ((14, 27, 86), 4)]
    for i, ((cz, cy, cx), r) in enumerate(balls, start=1):
        truth[((z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= r * r) & (truth == 0)] = i
    whole = truth.copy()
    crack = np.zeros(shape, bool)
    crack[:, 30:, 66:68] = True
    truth[crack & (truth == 6)] = 0  # ball 6 cut right through by a 2-voxel crack
    return truth, whole


def test_resplit_separates_heal_bridged_ball_and_keeps_cracked_ball_whole():
    truth, _ = resplit_scene()
    kw = dict(spacing=0.5, heal_cracks_um=2.0, h=0.2, smooth=0.5)
    info0 = separate_particles(truth > 0, resplit=False, **kw)
    merged = info0.labels
    assert merged.max() == 7 and info0.n_resplit == 0  # the small ball joined ball 7
    assert len(np.unique(merged[truth == 7])) == 1
    assert np.array_equal(np.unique(merged[truth == 8]), np.unique(merged[truth == 7]))
    info = separate_particles(truth > 0, **kw)
    lab = info.labels
    assert info.n_resplit == 1 and lab.max() == 8
    m = match_instances(lab, truth)
    assert m["ap50"] == 1.0 and m["merges"] == 0 and m["splits"] == 0
    assert len(np.unique(lab[truth == 6])) == 1  # the cracked ball keeps one id


def test_resplit_never_cuts_a_cracked_ball_even_when_every_particle_is_examined():
    from scipy import ndimage as ndi

    from electrode_ct.particles.resplit import resplit_merged
    from electrode_ct.particles.seeding import distance_map
    from electrode_ct.particles.shape import particle_solidity

    truth, whole = resplit_scene()
    sp = (0.5, 0.5, 0.5)
    healed = heal_cracks(truth > 0, width_um=2.0, spacing=sp)
    score = ndi.gaussian_filter(distance_map(healed, sp), 0.5)
    labels = np.where(healed, whole, 0)  # the right partition of the healed mask
    out, n_split = resplit_merged(labels, truth > 0, score, spacing=sp, h=0.2, smooth=0.5,
                                  solidity_flag=10.0)  # look at every particle
    assert n_split == 0 and np.array_equal(out, labels)
    # the heal-bridged pair is less convex than the balls
    bridged = np.where(labels == 8, 7, labels)
    sol = particle_solidity(bridged, spacing=sp)
    assert sol[7] < 0.95 * np.median(sol[1:7]) < sol[1:7].min()
    split, n = resplit_merged(bridged, truth > 0, score, spacing=sp, h=0.2, smooth=0.5)
    assert n == 1 and match_instances(np.where(truth > 0, split, 0), truth)["ap50"] == 1.0


def test_particle_solidity_exact_on_voxel_shapes():
    from electrode_ct.particles import particle_solidity

    lab = np.zeros((4, 8, 12), np.uint8)
    lab[1:3, 1:4, 1:4] = 1  # a box: convex
    lab[1, 5, 1:3] = 2  # an L of three voxels: hull of the corners has area 4 - 1/2
    lab[1, 6, 1] = 2
    sol = particle_solidity(lab, spacing=(2.0, 1.0, 1.0))
    assert sol[1] == pytest.approx(1.0) and sol[2] == pytest.approx(3 / 3.5)


def test_wider_healing_hypothesis_bridges_a_wide_crack_and_keeps_the_small_ball():
    truth, _ = resplit_scene()
    truth[:, :, 12:17][truth[:, :, 12:17] == 1] = 0  # ball 1: a 5-voxel (2.5 µm) crack
    kw = dict(spacing=0.5, heal_cracks_um=2.0, h=0.2, smooth=0.5)
    info1 = separate_particles(truth > 0, heal_alternative=1.0, **kw)
    one = info1.labels
    assert len(np.unique(one[truth == 1])) == 2 and info1.n_rehealed == 0  # too wide
    info = separate_particles(truth > 0, **kw)  # also healed with 1.25 x 2 µm
    lab = info.labels
    assert info.n_rehealed == 1 and lab.max() == 8
    m = match_instances(lab, truth, scores=info.scores)
    assert m["ap50"] == 1.0 and m["splits"] == 0 and m["merges"] == 0
    assert info.scores.shape == info.solidity.shape == (9,)
    assert np.array_equal(lab > 0, truth > 0)


def test_choose_hypotheses_takes_the_cheaper_component_only():
    from electrode_ct.particles.hypotheses import choose_hypotheses, conflict_components

    first = np.array([[1, 1, 2, 2, 3, 3, 4, 4]])
    second = np.array([[1, 1, 1, 1, 2, 2, 2, 3]])
    c1, c2 = conflict_components(first, second)
    assert c1[1] == c1[2] == c2[1] and c1[3] == c1[4] == c2[2] == c2[3]
    mask = first > 0
    # component {1, 2} | {1}: second cheaper -> taken; {3, 4} | {2, 3}: first cheaper
    pen1 = np.array([0, 5.0, 5.0, 1.0, 1.0])
    pen2 = np.array([0, 2.0, 4.0, 4.0])
    out, n = choose_hypotheses(first, second, pen1, pen2, mask)
    assert n == 1
    assert out.tolist() == [[5, 5, 5, 5, 3, 3, 4, 4]]


def test_dispatcher_equals_the_named_methods_and_scores_on_demand():
    from electrode_ct.particles import (
        Separation,
        separate_boundary,
        separate_distance,
        separate_triplanar,
    )

    truth, _ = resplit_scene()
    kw = dict(spacing=0.5, heal_cracks_um=2.0, h=0.2, smooth=0.5)
    bnd = np.zeros(truth.shape, np.float32)
    bnd[:, 29:31] = 1.0
    planes = [truth, truth, truth]
    pairs = [(separate_particles(truth > 0, **kw), separate_distance(truth > 0, **kw)),
             (separate_particles(truth > 0, method="boundary", boundary=bnd, **kw),
              separate_boundary(truth > 0, bnd, **kw)),
             (separate_particles(truth > 0, method="triplanar", planes=planes, **kw),
              separate_triplanar(truth > 0, planes, **kw))]
    for via, direct in pairs:
        assert isinstance(via, Separation) and via.labels.dtype == np.uint32
        assert np.array_equal(via.labels, direct.labels)
        assert via.summary() == direct.summary()
        np.testing.assert_array_equal(via.scores, direct.scores)
        assert via.scores.shape == (via.n_particles + 1,)
    summary = pairs[0][0].summary()
    assert summary["method"] == "distance" and summary["n_particles"] == 8
    assert summary["n_phase_voxels"] == int((truth > 0).sum())
    assert set(summary) == {"n_particles", "n_removed_small", "n_markers", "n_resplit",
                            "n_rehealed", "n_phase_voxels", "method", "heal_cracks_um", "h_um"}
    with pytest.raises(ShapeError, match="planes"):
        separate_triplanar(truth > 0, [truth[1:]] * 3, spacing=0.5)
