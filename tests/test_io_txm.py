"""Zeiss TXM/TXRM reading from synthetic OLE2 files built with ``_olewriter`` (the writer
itself is checked against olefile, an independent implementation)."""

import struct

import numpy as np
import olefile
import pytest

from _olewriter import write_ole
from electrode_ct.errors import FormatError
from electrode_ct.io import read


def _txm_streams(data: np.ndarray, *, pixel_um: float = 0.7, dtype_code: int = 5,
                 count: int | None = None) -> dict[str, bytes]:
    n, h, w = data.shape
    streams = {
        "ImageInfo/ImageWidth": struct.pack("<I", w),
        "ImageInfo/ImageHeight": struct.pack("<I", h),
        "ImageInfo/NoOfImages": struct.pack("<I", n if count is None else count),
        "ImageInfo/DataType": struct.pack("<I", dtype_code),
        "ImageInfo/PixelSize": struct.pack("<f", pixel_um),
    }
    for i in range(1, n + 1):
        name = f"ImageData{(i - 1) // 100 + 1}/Image{i}"
        streams[name] = data[i - 1].astype(data.dtype.newbyteorder("<")).tobytes()
    return streams


def test_ole_writer_is_read_back_by_olefile(tmp_path):
    rng = np.random.default_rng(0)
    streams = {"A/small": b"abc", "A/empty": b"", "B/big": rng.bytes(9000),
               "B/cutoff": rng.bytes(4096), "top": rng.bytes(4095)}
    write_ole(tmp_path / "x.ole", streams)
    ole = olefile.OleFileIO(tmp_path / "x.ole", raise_defects=olefile.DEFECT_INCORRECT)
    assert sorted("/".join(p) for p in ole.listdir()) == sorted(streams)
    for name, blob in streams.items():
        assert ole.get_size(name) == len(blob) and ole.openstream(name).read() == blob


@pytest.mark.parametrize("lazy", [False, True])
@pytest.mark.parametrize("dtype,code", [(np.uint16, 5), (np.float32, 10)])
def test_txm_volume_over_several_storages(tmp_path, lazy, dtype, code):
    # 205 images span ImageData1..3 (100 per storage); 24x40 images of 1920 bytes sit in the
    # mini stream, so both OLE storage paths are exercised across the file
    data = (np.random.default_rng(1).random((205, 24, 40)) * 5000).astype(dtype)
    write_ole(tmp_path / "scan.txm", _txm_streams(data, pixel_um=0.65, dtype_code=code))
    vol = read(tmp_path / "scan.txm", lazy=lazy)
    assert vol.metadata["format"] == "txm" and vol.is_lazy == lazy
    assert vol.dtype == np.dtype(dtype) and vol.shape == data.shape
    np.testing.assert_array_equal(vol.numpy(), data)
    assert vol.spacing == pytest.approx((0.65, 0.65, 0.65))


def test_txrm_projections_with_big_streams(tmp_path):
    data = np.arange(3 * 64 * 80, dtype=np.uint16).reshape(3, 64, 80)  # 10 kB per image
    write_ole(tmp_path / "proj.txrm", _txm_streams(data))
    np.testing.assert_array_equal(read(tmp_path / "proj.txrm").numpy(), data)


def test_bad_txm_files(tmp_path):
    (tmp_path / "a.txm").write_bytes(b"not an ole file" * 40)
    with pytest.raises(FormatError, match=r"a\.txm: not a Zeiss TXM/TXRM file"):
        read(tmp_path / "a.txm")
    data = np.zeros((2, 4, 4), np.uint16)
    write_ole(tmp_path / "b.txm", _txm_streams(data, dtype_code=7))
    with pytest.raises(FormatError, match=r"b\.txm: unsupported ImageInfo/DataType 7"):
        read(tmp_path / "b.txm")
    write_ole(tmp_path / "c.txm", _txm_streams(data, count=3))  # header promises 3 images
    with pytest.raises(FormatError, match=r"c\.txm: image stream 'ImageData1/Image3' is missing"):
        read(tmp_path / "c.txm")
    streams = _txm_streams(data)
    del streams["ImageInfo/ImageHeight"]
    write_ole(tmp_path / "d.txm", streams)
    with pytest.raises(FormatError, match=r"d\.txm: Zeiss file lacks the stream "
                                          r"'ImageInfo/ImageHeight'"):
        read(tmp_path / "d.txm")
    streams = _txm_streams(data)
    streams["ImageData1/Image2"] = streams["ImageData1/Image2"][:10]
    write_ole(tmp_path / "e.txm", streams)
    with pytest.raises(FormatError, match=r"e\.txm: stream 'ImageData1/Image2' holds 10 bytes"):
        read(tmp_path / "e.txm")
