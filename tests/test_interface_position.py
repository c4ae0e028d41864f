"""Interface-position histogram / FWHM and the ensemble spread on phantoms with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from electrode_ct.errors import InputError
from electrode_ct.metrics.interface_position import (
    fwhm,
    interface_positions,
    position_histogram,
)
from electrode_ct.segment.cnn.ensemble_spread import labelled_spread, spread, volume_spread


def _shifted_plane(shifts: np.ndarray, *, nz: int = 1, ny: int = 40, y0: int = 20
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Reference: phase 1 for y < y0, 2 above; labels: the interface of column x moved by
    ``shifts[x]`` voxels (positive: phase 1 grows)."""
    y = np.arange(ny)[None, :, None]
    ref = np.where(y < y0, 1, 2).astype(np.uint8) * np.ones((nz, 1, shifts.size), np.uint8)
    lab = np.where(y < y0 + shifts[None, None, :], 1, 2).astype(np.uint8)
    return np.broadcast_to(lab, ref.shape).copy(), ref


def _columns(shifts: np.ndarray, ny: int = 30, y0: int = 15) -> tuple[np.ndarray, np.ndarray]:
    """One column per z-slice (measured with ``two_d``): column z's interface moved by
    ``shifts[z]``."""
    y = np.arange(ny)[None, :, None]
    ref = np.broadcast_to(np.where(y < y0, 1, 2), (shifts.size, ny, 1)).astype(np.uint8)
    lab = np.where(y < y0 + shifts[:, None, None], 1, 2).astype(np.uint8)
    return lab, ref


def test_planar_shifts_are_exact_in_um_with_anisotropic_spacing():
    shifts = np.array([-3, -1, 0, 0, 2, 5])
    lab, ref = _columns(shifts)
    pos = interface_positions(lab, ref, (1, 2), spacing=(2.0, 0.5, 0.3), two_d=True)
    np.testing.assert_allclose(np.sort(pos), np.sort(shifts * 0.5))
    # 3-D, shifted along x instead of y: voxel size 0.3 µm along the face normal
    lab3, ref3 = (np.moveaxis(a, 1, 2).copy() for a in _shifted_plane(np.full(4, 2)))
    pos3 = interface_positions(lab3, ref3, (1, 2), spacing=(2.0, 0.5, 0.3))
    np.testing.assert_allclose(pos3, 0.6)


def test_triangle_distribution_fwhm_is_exactly_two_voxels():
    # shifts -2..2 with counts 1, 2, 4, 2, 1: peak 4, half 2 reached exactly at ±1
    shifts = np.repeat(np.array([-2, -1, 0, 1, 2]), [1, 2, 4, 2, 1])
    lab, ref = _columns(shifts)
    h = position_histogram(interface_positions(lab, ref, (1, 2), two_d=True), bin_um=1.0,
                           range_um=4.0)
    assert h["counts"] == [0, 0, 1, 2, 4, 2, 1, 0, 0]
    assert h["fwhm_um"] == pytest.approx(2.0)
    assert h["mean_um"] == pytest.approx(0.0)


def test_fwhm_of_a_sampled_gaussian_matches_2_355_sigma():
    rng = np.random.default_rng(3)
    sigma = 3.0
    centres = np.arange(-15.0, 16.0)
    counts = np.bincount(np.clip(np.rint(rng.normal(0, sigma, 200_000)) + 15, 0, 30).astype(int),
                         minlength=31)
    assert fwhm(centres, counts) == pytest.approx(2 * np.sqrt(2 * np.log(2)) * sigma, rel=0.03)


def test_identical_segmentation_sits_at_zero_one_bin_wide():
    lab, ref = _shifted_plane(np.zeros(8, int), nz=3)
    h = position_histogram(interface_positions(lab, ref, (1, 2)), bin_um=0.5, range_um=5.0)
    assert h["mean_um"] == 0.0 and h["std_um"] == 0.0 and h["fwhm_um"] == pytest.approx(0.5)
    assert h["n_faces"] == 24 and h["n_outside"] == 0


def test_histogram_bad_bins_one_error():
    with pytest.raises(InputError, match="bin width > 0"):
        position_histogram(np.zeros(3), bin_um=0.0, range_um=1.0)


def test_spread_is_exactly_zero_for_identical_members():
    vals = [{"a": 0.1 + 0.2, "b": 1 / 3}] * 7
    s = spread(vals)
    assert s["_std"] == {"a": 0.0, "b": 0.0}
    assert s["_ci95"]["a"] == [s[""]["a"], s[""]["a"]]


def test_volume_and_test_spread_zero_for_identical_and_known_for_different_members():
    lab, ref = _shifted_plane(np.zeros(10, int), nz=2)
    cmap = {"pore": 1, "active": 2}
    same = volume_spread([lab, lab.copy(), lab.copy()], cmap, reference=ref)
    assert same["volume_fraction"] == {"pore": 0.5, "active": 0.5}
    assert all(v == 0.0 for key in ("volume_fraction_std", "surface_area_um2_std",
                                    "interface_voxel_percent_std") for v in same[key].values())
    assert same["interface_position"]["pore-active"]["fwhm_um"] == pytest.approx(0.5)
    # members with the interface at y0 - 1, y0, y0 + 1: fractions 0.475, 0.5, 0.525
    members = [_shifted_plane(np.full(10, s), nz=2)[0] for s in (-1, 0, 1)]
    diff = volume_spread(members, cmap, reference=ref)
    assert diff["volume_fraction"]["pore"] == pytest.approx(0.5)
    assert diff["volume_fraction_std"]["pore"] == pytest.approx(0.025)
    assert diff["interface_position"]["pore-active"]["std_um"] == pytest.approx(
        np.std(np.repeat([-1.0, 0.0, 1.0], 20), ddof=1))  # 20 faces per member
    scored = labelled_spread([[m] for m in members], [ref], cmap)
    # IoU of pore: 19/20, 1, 20/21 -> exact mean and sample std
    want = np.array([19 / 20, 1.0, 20 / 21])
    assert scored["iou"]["pore"] == pytest.approx(want.mean())
    assert scored["iou_std"]["pore"] == pytest.approx(want.std(ddof=1))
    assert labelled_spread([[lab]] * 3, [ref], cmap)["mean_iou_std"] == 0.0


def test_one_member_has_no_spread():
    lab, ref = _shifted_plane(np.zeros(4, int))
    with pytest.raises(InputError, match="at least 2 members"):
        volume_spread([lab], {"a": 1, "b": 2}, reference=ref)


def test_pair_percentages_match_interface_percentage_and_keep_absent_phases():
    from electrode_ct.metrics.quality import interface_percentage
    from electrode_ct.segment.cnn.ensemble_spread import pair_percentages

    rng = np.random.default_rng(1)
    lab = rng.integers(1, 4, (4, 9, 9)).astype(np.uint8)
    cmap = {"pore": 1, "cbd": 2, "active": 3}
    assert pair_percentages(lab, cmap) == interface_percentage(lab, class_map=cmap)
    two = np.where(lab == 3, 2, lab).astype(np.uint8)
    got = pair_percentages(two, cmap)
    assert got["pore-active"] == 0.0 and got["cbd-active"] == 0.0
    per_slice = sum(interface_percentage(s[None], class_map=cmap)["any"] for s in lab) / 4
    assert pair_percentages(lab, cmap, two_d=True)["any"] == pytest.approx(per_slice)


def test_interface_positions_cli_pools_segmentations(run_cli, tmp_path):
    import json

    import tifffile

    ref = _columns(np.zeros(10, int))[1]
    tifffile.imwrite(tmp_path / "ref.tif", ref)
    for name, shift in (("a", -1), ("b", 1)):
        tifffile.imwrite(tmp_path / f"{name}.tif", _columns(np.full(10, shift))[0])
    code, out, err = run_cli("segment", "interface-positions", tmp_path / "ref.tif",
                             tmp_path / "a.tif", tmp_path / "b.tif", "--2d", "--voxel-size",
                             "0.5", "--bin-um", "0.5", "--plot", tmp_path / "ip.png", "--json")
    assert code == 0, err
    h = json.loads(out)["interface_position"]["1-2"]
    assert h["n_faces"] == 20 and h["mean_um"] == 0.0
    assert h["std_um"] == pytest.approx(np.std(np.repeat([-0.5, 0.5], 10), ddof=1))
    # two bins of 10 at ±0.5 µm with an empty one between: each peak is one bin wide, and
    # the FWHM is measured around the first highest bin
    assert h["fwhm_um"] == pytest.approx(0.5)
    assert (tmp_path / "ip.png").read_bytes()[:4] == b"\x89PNG"
    tifffile.imwrite(tmp_path / "small.tif", ref[:, :20])
    for args, want in (([tmp_path / "small.tif"], "does not match the reference"),
                       ([tmp_path / "a.tif", "--bin-um", "0"], "expected a bin width > 0")):
        code, _, err = run_cli("segment", "interface-positions", tmp_path / "ref.tif", *args,
                               "--plot", tmp_path / "bad.png")
        assert code == 2 and want in err and err.count("\n") == 1, err
        assert not (tmp_path / "bad.png").exists()


def test_spread_leaves_out_nan_members_like_t_interval():
    s = spread([{"a": float("nan")}, {"a": 0.5}, {"a": 0.7}])
    assert s[""]["a"] == pytest.approx(0.6)
    assert s["_std"]["a"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert spread([{"a": float("nan")}, {"a": float("nan")}])["_std"]["a"] is None
