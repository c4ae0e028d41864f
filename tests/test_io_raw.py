"""Raw volumes: NRRD and MetaImage headers (checked against SimpleITK, an independent
implementation) and plain .raw with an explicit layout."""

import numpy as np
import pytest
import SimpleITK as sitk

from _io_helpers import assert_lazy, io_meter
from electrode_ct.errors import FormatError, InputError
from electrode_ct.io import read

VOL = np.random.default_rng(0).integers(0, 60000, (5, 7, 9)).astype(np.uint16)


def _sitk_write(path, data, spacing_mm_xyz, compress=False):
    img = sitk.GetImageFromArray(data)
    img.SetSpacing(spacing_mm_xyz)
    sitk.WriteImage(img, str(path), useCompression=compress)


@pytest.mark.parametrize("ext", [".nhdr", ".nrrd", ".mhd", ".mha"])
@pytest.mark.parametrize("compress", [False, True])
def test_headers_written_by_simpleitk(tmp_path, ext, compress):
    for dtype in (np.uint16, np.float32, np.int8):
        data = VOL.astype(dtype)
        path = tmp_path / f"v_{np.dtype(dtype).name}{ext}"
        _sitk_write(path, data, (0.00025, 0.0005, 0.002), compress)  # x, y, z in mm
        vol = read(path, lazy=not compress)
        assert vol.is_lazy == (not compress)
        assert vol.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(vol.numpy(), data)
        assert vol.spacing == pytest.approx((2.0, 0.5, 0.25))


def test_nhdr_big_endian_units_and_byte_skip(tmp_path):
    (tmp_path / "d.bin").write_bytes(b"HEADER!!" + VOL.astype(">u2").tobytes())
    (tmp_path / "v.nhdr").write_text(
        "NRRD0004\n# comment\ntype: unsigned short\ndimension: 3\nsizes: 9 7 5\n"
        "endian: big\nencoding: raw\nspacings: 250 250 1000\nspace units: \"nm\" \"nm\" \"nm\"\n"
        "byte skip: 8\nkey:=value\ndata file: d.bin\n")
    vol = read(tmp_path / "v.nhdr", lazy=True)
    assert vol.dtype == np.uint16 and vol.dtype.isnative
    np.testing.assert_array_equal(vol.numpy(), VOL)
    assert vol.spacing == pytest.approx((1.0, 0.25, 0.25))


def test_header_size_mismatch(tmp_path):
    _sitk_write(tmp_path / "v.mhd", VOL, (1, 1, 1))
    raw = tmp_path / "v.raw"
    raw.write_bytes(raw.read_bytes()[:-10])
    with pytest.raises(FormatError, match=r"v\.raw \(header v\.mhd\): file size 620 bytes does "
                                          r"not match the header: expected 630 bytes"):
        read(tmp_path / "v.mhd")
    raw.unlink()
    with pytest.raises(InputError, match=r"v\.raw.*data file not found"):
        read(tmp_path / "v.mhd")


def test_malformed_headers(tmp_path):
    (tmp_path / "a.nhdr").write_text("NOT NRRD\n")
    with pytest.raises(FormatError, match=r"a\.nhdr: not an NRRD header"):
        read(tmp_path / "a.nhdr")
    (tmp_path / "b.nhdr").write_text("NRRD0004\ntype: float\ndimension: 3\n")
    with pytest.raises(FormatError, match=r"b\.nhdr.*required field 'sizes'"):
        read(tmp_path / "b.nhdr")
    (tmp_path / "c.mhd").write_text("NDims = 3\nDimSize = 2 2 2\nElementType = MET_FOO\n"
                                    "ElementDataFile = c.raw\n")
    with pytest.raises(FormatError, match="unsupported MetaImage element type 'MET_FOO'"):
        read(tmp_path / "c.mhd")


def test_plain_raw_explicit_layout(tmp_path):
    VOL.astype(">u2").tofile(tmp_path / "v.raw")
    vol = read(tmp_path / "v.raw", shape=(5, 7, 9), dtype="uint16", byte_order="big")
    np.testing.assert_array_equal(vol.numpy(), VOL)
    with pytest.raises(FormatError, match=r"v\.raw: file size 630 bytes does not match.*"
                                          r"expected 640 bytes of data \(5x8x8 uint16\)"):
        read(tmp_path / "v.raw", shape=(5, 8, 8), dtype="uint16")
    with pytest.raises(InputError, match=r"v\.raw: a raw file needs its layout; give --shape"):
        read(tmp_path / "v.raw")
    with pytest.raises(InputError, match="byte order: expected little or big"):
        read(tmp_path / "v.raw", shape=(5, 7, 9), dtype="uint16", byte_order="middle")


def test_raw_with_sibling_header_needs_no_layout(tmp_path):
    _sitk_write(tmp_path / "v.mhd", VOL, (0.001, 0.001, 0.001))
    vol = read(tmp_path / "v.raw")
    np.testing.assert_array_equal(vol.numpy(), VOL)
    assert vol.spacing == pytest.approx((1.0, 1.0, 1.0))


def test_lazy_raw_reads_nothing(tmp_path):
    data = np.random.default_rng(1).random((64, 128, 128)).astype(np.float32)
    data.tofile(tmp_path / "f.raw")
    with io_meter() as m:
        vol = read(tmp_path / "f.raw", shape=data.shape, dtype="float32", lazy=True)
    assert vol.is_lazy
    assert_lazy(m, data.nbytes)
    np.testing.assert_array_equal(vol.data[20:30].compute(), data[20:30])
