"""TIFF reading: real files, ImageJ hyperstacks, OME-TIFF, BigTIFF, folders/globs, lazy reads
and damaged files."""

from pathlib import Path

import numpy as np
import pytest
import tifffile

from _io_helpers import assert_lazy, io_meter
from conftest import DATA, SEGMENTPY, SEGMENTPY_C
from electrode_ct.errors import FormatError, ShapeError
from electrode_ct.io import read, write
from electrode_ct.io import tiff as tiffmod
from electrode_ct.volume import Volume

OME_LABELS = DATA / "nrel_nmc1cal_labels_ome.tiff"


def test_real_ome_scribbles_read_with_expert_counts():
    vol = read(OME_LABELS)
    assert vol.metadata["format"] == "tiff" and vol.shape == (75, 75, 75)
    counts = np.bincount(vol.numpy().ravel(), minlength=3)
    assert counts[1] == 657 and counts[2] == 848  # documented ilastik scribble counts
    from electrode_ct.data import path

    np.testing.assert_array_equal(vol.numpy(), tifffile.imread(path("nmc1cal_labels.tif")))
    lazy = read(OME_LABELS, lazy=True)
    assert lazy.is_lazy
    np.testing.assert_array_equal(lazy.numpy(), vol.numpy())


def test_real_embedded_samples():
    from electrode_ct.data import path

    grey = read(path("nmc1cal.tif"))
    assert grey.shape == (75, 75, 75) and grey.dtype == np.uint16
    assert int(grey.numpy().min()) == 12471 and int(grey.numpy().max()) == 48892
    phases = read(path("nmc1cal_phases_matbox.tif"), lazy=True)
    assert phases.shape == (251, 301, 301) and phases.is_lazy
    assert set(np.unique(phases.data[100].compute())) == {0, 1, 2}


def test_real_slices_as_glob_of_one_subvolume(tmp_path):
    for n in SEGMENTPY_C[::-1]:  # links created in reverse order: sorting must fix it
        (tmp_path / f"slice_{n}.tif").symlink_to(SEGMENTPY / f"{n}.tif")
    vol = read(str(tmp_path / "slice_*.tif"), lazy=True)
    assert vol.shape == (len(SEGMENTPY_C), 500, 500) and vol.dtype == np.float32
    for i, n in enumerate(SEGMENTPY_C):
        want = tifffile.imread(SEGMENTPY / f"{n}.tif")
        np.testing.assert_array_equal(vol.data[i].compute(), want)


@pytest.mark.parametrize("lazy", [False, True])
def test_real_slices_of_two_subvolumes_differ_in_shape(lazy):
    # natural order: 1, 100, 200, 300, 394 (sub-volume C, 500 x 500), ...
    with pytest.raises(ShapeError, match=r"394_label\.tif: slice of shape \(500, 500\).*"
                                         r"first slice 1_label\.tif \(\(499, 601\)"):
        read(str(SEGMENTPY / "*_label.tif"), lazy=lazy)


def test_natural_sort_of_slices(tmp_path):
    for i in (1, 2, 10, 11, 100):
        tifffile.imwrite(tmp_path / f"img_{i}.tif", np.full((3, 4), i, np.uint8))
    vol = read(tmp_path)
    assert vol.numpy()[:, 0, 0].tolist() == [1, 2, 10, 11, 100]
    assert [f.name for f in tiffmod.slice_files(tmp_path)][:3] == ["img_1.tif", "img_2.tif",
                                                                    "img_10.tif"]


def test_folder_spacing_from_resolution_tags(tmp_path):
    for i in range(3):
        tifffile.imwrite(tmp_path / f"s{i}.tif", np.zeros((4, 5), np.uint16),
                         resolution=(1 / 0.002, 1 / 0.002), resolutionunit="CENTIMETER")
    assert read(tmp_path).spacing == pytest.approx((20.0, 20.0, 20.0))


def test_imagej_hyperstack_singletons_dropped_and_spacing_units(tmp_path):
    data = np.random.default_rng(0).integers(0, 255, (1, 6, 1, 10, 12)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "h.tif", data, imagej=True, resolution=(1 / 0.25, 1 / 0.5),
                     metadata={"axes": "TZCYX", "spacing": 1.5, "unit": "um"})
    vol = read(tmp_path / "h.tif")
    np.testing.assert_array_equal(vol.numpy(), data[0, :, 0])
    assert vol.spacing == pytest.approx((1.5, 0.5, 0.25))
    tifffile.imwrite(tmp_path / "nm.tif", data[0, :, 0], imagej=True, resolution=(1 / 200, 1 / 200),
                     metadata={"axes": "ZYX", "spacing": 400, "unit": "nm"})
    assert read(tmp_path / "nm.tif").spacing == pytest.approx((0.4, 0.2, 0.2))


def test_4d_hyperstack_is_refused(tmp_path):
    tifffile.imwrite(tmp_path / "c.tif", np.zeros((4, 2, 8, 8), np.uint8), imagej=True,
                     metadata={"axes": "ZCYX"})
    with pytest.raises(ShapeError, match=r"c\.tif.*expected a 2-D image or 3-D volume.*4-D"):
        read(tmp_path / "c.tif")


def test_ome_tiff_physical_sizes(tmp_path):
    data = np.arange(4 * 5 * 6, dtype=np.uint16).reshape(4, 5, 6)
    tifffile.imwrite(tmp_path / "a.ome.tif", data, metadata={
        "axes": "ZYX", "PhysicalSizeZ": 800, "PhysicalSizeZUnit": "nm",
        "PhysicalSizeY": 0.4, "PhysicalSizeX": 0.2})
    vol = read(tmp_path / "a.ome.tif")
    assert vol.spacing == pytest.approx((0.8, 0.4, 0.2))
    np.testing.assert_array_equal(vol.numpy(), data)


def test_bigtiff_read_and_written_past_threshold(tmp_path, monkeypatch):
    data = np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5)
    tifffile.imwrite(tmp_path / "b.tif", data, bigtiff=True, photometric="minisblack")
    np.testing.assert_array_equal(read(tmp_path / "b.tif").numpy(), data)
    monkeypatch.setattr(tiffmod, "_FOUR_GB", 0)  # pretend the volume is past 4 GB
    write(Volume(data, spacing=(2, 1, 1)), tmp_path / "big.tif")
    with tifffile.TiffFile(tmp_path / "big.tif") as tf:
        assert tf.is_bigtiff
    back = read(tmp_path / "big.tif")
    np.testing.assert_array_equal(back.numpy(), data)
    assert back.spacing == (2.0, 1.0, 1.0)


def test_writer_keeps_spacing_visible_to_imagej(tmp_path):
    write(Volume(np.zeros((2, 3, 4), np.uint16), spacing=(3.0, 0.5, 0.5)), tmp_path / "v.tif")
    with tifffile.TiffFile(tmp_path / "v.tif") as tf:
        assert tf.is_imagej and tf.imagej_metadata["spacing"] == 3.0
        assert tf.imagej_metadata["unit"] == "micron"


def _stack(tmp_path: Path, n: int = 64, compression=None, shaped=True) -> tuple[Path, np.ndarray]:
    data = np.random.default_rng(0).integers(0, 4000, (n, 128, 160)).astype(np.uint16)
    path = tmp_path / "stack.tif"
    if shaped:
        tifffile.imwrite(path, data, compression=compression)
    else:  # generic multi-page file: no shape metadata, every IFD must be followed
        with tifffile.TiffWriter(path) as tw:
            for page in data:
                tw.write(page, compression=compression, metadata=None)
    return path, data


def test_lazy_single_file_reads_no_pixels(tmp_path):
    path, data = _stack(tmp_path)
    with io_meter() as m:
        vol = read(path, lazy=True)
    assert vol.is_lazy and vol.shape == data.shape
    assert_lazy(m, data.nbytes)
    np.testing.assert_array_equal(vol.data[10:20].compute(), data[10:20])


def test_lazy_folder_reads_no_pixels(tmp_path):
    data = np.random.default_rng(0).integers(0, 4000, (80, 96, 128)).astype(np.uint16)
    for i, s in enumerate(data):
        tifffile.imwrite(tmp_path / f"z{i:03d}.tif", s)
    with io_meter() as m:
        vol = read(tmp_path, lazy=True)
    assert vol.is_lazy
    assert_lazy(m, data.nbytes)
    np.testing.assert_array_equal(vol.numpy(), data)


def test_quick_header_matches_tifffile(tmp_path):
    cases = {
        "u16": (np.zeros((7, 9), np.uint16), {}),
        "f32_zlib_be": (np.ones((7, 9), ">f4"), {"compression": "zlib", "byteorder": ">"}),
        "i8_tiles_big": (np.ones((40, 48), np.int8), {"tile": (16, 16), "bigtiff": True}),
        "rgb": (np.zeros((5, 6, 3), np.uint8), {"photometric": "rgb"}),
    }
    for name, (arr, kw) in cases.items():
        p = tmp_path / f"{name}.tif"
        tifffile.imwrite(p, arr, **kw)
        shape, dtype, end, size = tiffmod.quick_header(p)
        assert size == p.stat().st_size
        with tifffile.TiffFile(p) as tf:
            page = tf.pages.first
            assert shape == page.shape and dtype == page.dtype.newbyteorder("="), name
            assert end == max(o + c for o, c in zip(page.dataoffsets, page.databytecounts,
                                                    strict=True))


@pytest.mark.parametrize("shaped", [True, False])
@pytest.mark.parametrize("compression", [None, "zlib"])
@pytest.mark.parametrize("lazy", [False, True])
def test_truncated_stack_is_a_format_error(tmp_path, compression, lazy, shaped):
    path, data = _stack(tmp_path, n=16, compression=compression, shaped=shaped)
    np.testing.assert_array_equal(read(path, lazy=lazy).numpy(), data)  # intact file reads
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) * 2 // 3])
    with pytest.raises(FormatError, match=r"stack\.tif.*truncated"):
        read(path, lazy=lazy)


@pytest.mark.parametrize("compression", [None, "zlib"])
@pytest.mark.parametrize("lazy", [False, True])
def test_truncated_slice_in_folder_is_named(tmp_path, lazy, compression):
    noise = np.random.default_rng(0).integers(0, 9999, (5, 64, 64)).astype(np.uint16)
    for i in range(5):
        tifffile.imwrite(tmp_path / f"s{i}.tif", noise[i], compression=compression)
    blob = (tmp_path / "s3.tif").read_bytes()
    (tmp_path / "s3.tif").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(FormatError, match=r"s3\.tif.*truncated"):
        read(tmp_path, lazy=lazy)


def test_not_a_tiff(tmp_path):
    (tmp_path / "x.tif").write_text("hello")
    with pytest.raises(FormatError, match=r"x\.tif"):
        read(tmp_path / "x.tif")


@pytest.mark.parametrize("keep", [4, 6, 8, 12])
@pytest.mark.parametrize("lazy", [False, True])
def test_file_cut_inside_the_header_is_a_format_error(tmp_path, keep, lazy):
    path, _ = _stack(tmp_path, n=5, compression=None, shaped=True)
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(FormatError, match=r"stack\.tif.*(truncated|not a readable)"):
        read(path, lazy=lazy)
