"""Zeiss Xradia ``.txm`` (reconstructed volume), ``.txrm`` (projection series) and ``.xrm``
(single image) files.

All are OLE2 compound files read with :mod:`olefile`. Geometry comes from the streams
``ImageInfo/ImageWidth``, ``ImageInfo/ImageHeight``, ``ImageInfo/NoOfImages`` (or
``ImagesTaken``), ``ImageInfo/DataType`` (5 = uint16, 10 = float32) and
``ImageInfo/PixelSize`` (float32, µm, isotropic). Image *i* (1-based) is the stream
``ImageData{ceil(i / 100)}/Image{i}``, one 2-D image of height × width little-endian samples.
Lazy reads decode nothing until computed (one task per image, reads serialised with a lock).
"""

from __future__ import annotations

import struct
import threading
from pathlib import Path
from typing import Any

import numpy as np

from electrode_ct.errors import FormatError
from electrode_ct.io._meta import check_allocation, file_spacing
from electrode_ct.io.registry import Format, register
from electrode_ct.volume import Volume

TXM_DTYPES = {5: np.dtype("<u2"), 10: np.dtype("<f4")}
IMAGES_PER_STORAGE = 100


def image_stream(index: int) -> str:
    """OLE stream name of image ``index`` (1-based), e.g. ``ImageData2/Image101``."""
    return f"ImageData{(index - 1) // IMAGES_PER_STORAGE + 1}/Image{index}"


def _scalar(ole: Any, name: str, fmt: str, path: str, *, required: bool = True) -> Any:
    if not ole.exists(name):
        if required:
            raise FormatError(f"{path}: Zeiss file lacks the stream {name!r}")
        return None
    data = ole.openstream(name).read()
    size = struct.calcsize(fmt)
    if len(data) < size:
        raise FormatError(f"{path}: stream {name!r} is {len(data)} bytes, expected {size}")
    return struct.unpack(fmt, data[:size])[0]


class _TxmSource:
    """An open OLE file plus a lock so dask threads read image streams one at a time."""

    def __init__(self, path: str, shape2d: tuple[int, int], dtype: np.dtype) -> None:
        import olefile

        self.path = path
        self.ole = olefile.OleFileIO(path)
        self.shape2d = shape2d
        self.dtype = dtype
        self.lock = threading.Lock()

    def image(self, index: int) -> np.ndarray:
        """Image ``index`` (1-based) as a native-order 2-D array."""
        name = image_stream(index)
        with self.lock:
            if not self.ole.exists(name):
                raise FormatError(f"{self.path}: image stream {name!r} is missing")
            blob = self.ole.openstream(name).read()
        n = self.shape2d[0] * self.shape2d[1] * self.dtype.itemsize
        if len(blob) < n:
            raise FormatError(
                f"{self.path}: stream {name!r} holds {len(blob)} bytes, expected {n} "
                f"({self.shape2d[0]}x{self.shape2d[1]} {self.dtype.name}); truncated file?"
            )
        return np.frombuffer(blob[:n], self.dtype).reshape(self.shape2d).astype(
            self.dtype.newbyteorder("="))


def read_txm(path: str, *, lazy: bool = False, **_: Any) -> Volume:
    """Read a Zeiss ``.txm``/``.txrm`` file.

    Parameters
    ----------
    path : str
        The OLE2 file.
    lazy : bool
        Return a dask-backed volume (image streams read when computed).

    Returns
    -------
    Volume
        (n_images, height, width); isotropic spacing = ``PixelSize`` (µm);
        ``metadata["txm_data_type"]`` holds the Zeiss type code.

    Raises
    ------
    FormatError
        Not an OLE2 file, missing geometry streams, unknown data type, missing or short
        image streams.
    """
    import olefile

    if not olefile.isOleFile(path):
        raise FormatError(f"{path}: not a Zeiss TXM/TXRM file (no OLE2 signature)")
    ole = olefile.OleFileIO(path)
    try:
        width = _scalar(ole, "ImageInfo/ImageWidth", "<I", path)
        height = _scalar(ole, "ImageInfo/ImageHeight", "<I", path)
        count = _scalar(ole, "ImageInfo/NoOfImages", "<I", path, required=False)
        if not count:
            count = _scalar(ole, "ImageInfo/ImagesTaken", "<I", path)
        code = _scalar(ole, "ImageInfo/DataType", "<I", path)
        pixel = _scalar(ole, "ImageInfo/PixelSize", "<f", path, required=False)
        missing = [image_stream(i) for i in (1, count) if not ole.exists(image_stream(i))]
    finally:
        ole.close()
    if code not in TXM_DTYPES:
        raise FormatError(
            f"{path}: unsupported ImageInfo/DataType {code} (expected 5 = uint16 or 10 = float32)"
        )
    if min(width, height, count) < 1:
        raise FormatError(f"{path}: invalid geometry {count} x {height} x {width}")
    if missing:
        raise FormatError(f"{path}: image stream {missing[0]!r} is missing; truncated file?")
    dtype = TXM_DTYPES[code]
    check_allocation((count, height, width), dtype, stored_bytes=Path(path).stat().st_size,
                     where=path, compressed=False, in_memory=not lazy)
    src = _TxmSource(path, (int(height), int(width)), dtype)
    if lazy:
        import dask
        import dask.array as da

        native = dtype.newbyteorder("=")
        read = dask.delayed(src.image, pure=True)
        data: Any = da.stack(
            [da.from_delayed(read(i), shape=src.shape2d, dtype=native)
             for i in range(1, count + 1)]
        )
    else:
        try:
            data = np.stack([src.image(i) for i in range(1, count + 1)])
        finally:
            src.ole.close()
    found = (pixel,) * 3 if pixel and np.isfinite(pixel) and pixel > 0 else None
    meta = {"txm_data_type": int(code), "txm_kind": Path(path).suffix.lower().lstrip(".")}
    return Volume(data, spacing=file_spacing(found, meta), metadata=meta)


def _sniff(path: Path) -> bool:
    if not path.is_file():
        return False
    with open(path, "rb") as fh:
        return fh.read(8) == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


TXM = register(Format("txm", (".txm", ".txrm", ".xrm"), reader=read_txm, sniff=_sniff))
