"""Round trips through every writable format: data, dtype, spacing (anisotropic), origin and
class map come back identical, from numpy and from lazy (dask) volumes."""

import dask.array as da
import numpy as np
import pytest

from _io_helpers import assert_lazy, io_meter
from electrode_ct.errors import ShapeError
from electrode_ct.io import read, write
from electrode_ct.volume import Volume

FORMATS = ["vol.tif", "vol.ome.zarr", "vol.h5", "vol.npy"]
KEEPS_ORIGIN = {"vol.tif", "vol.ome.zarr", "vol.h5"}


def _labels() -> Volume:
    rng = np.random.default_rng(1)
    data = rng.integers(0, 3, (9, 14, 17)).astype(np.uint8)
    return Volume(data, spacing=(2.5, 0.5, 0.25), origin=(10.0, -3.0, 1.5),
                  metadata={"class_map": {"pore": 0, "cbd": 1, "active": 2}})


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32", "int32", "float64"])
def test_roundtrip_numpy(tmp_path, name, dtype):
    src = _labels()
    rng = np.random.default_rng(2)
    data = (rng.random(src.shape) * 1000).astype(dtype)
    vol = src.with_data(data)
    out = write(vol, tmp_path / name)
    back = read(out)
    assert back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back.numpy(), data)
    assert back.spacing == (2.5, 0.5, 0.25)
    assert back.class_map == {"pore": 0, "cbd": 1, "active": 2}
    if name in KEEPS_ORIGIN:
        assert back.origin == (10.0, -3.0, 1.5)
    assert not back.is_2d


@pytest.mark.parametrize("name", FORMATS)
def test_roundtrip_lazy_source_and_lazy_read(tmp_path, name):
    vol = _labels()
    lazy = Volume(da.from_array(vol.data, chunks=(4, 7, 9)), spacing=vol.spacing,
                  origin=vol.origin, metadata=dict(vol.metadata))
    out = write(lazy, tmp_path / name, chunks=(3, 8, 8))
    back = read(out, lazy=True)
    assert back.is_lazy
    np.testing.assert_array_equal(back.numpy(), vol.data)
    assert back.spacing == vol.spacing and back.class_map == vol.class_map


@pytest.mark.parametrize("name", FORMATS)
def test_roundtrip_2d_image(tmp_path, name):
    img = np.arange(12 * 7, dtype=np.uint16).reshape(12, 7)
    out = write(Volume(img, spacing=(0.3, 0.3, 0.3)), tmp_path / name)
    back = read(out)
    assert back.is_2d and back.shape == (1, 12, 7)
    np.testing.assert_array_equal(back.numpy()[0], img)
    assert back.spacing[1:] == (0.3, 0.3)


@pytest.mark.parametrize("name", FORMATS)
def test_write_is_atomic_on_failure(tmp_path, name):
    class Boom(RuntimeError):
        pass

    def explode(block):
        raise Boom("disk full")

    bad = da.from_array(np.zeros((4, 8, 8), np.uint8), chunks=(2, 8, 8)).map_blocks(
        explode, dtype=np.uint8)
    with pytest.raises(Boom):
        write(Volume(bad), tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_real_sample_converts_losslessly(tmp_path):
    from electrode_ct.data import path

    src = read(path("nmc1cal.tif"), voxel_size=0.398)
    for name in FORMATS:
        back = read(write(src, tmp_path / name))
        np.testing.assert_array_equal(back.numpy(), src.numpy())
        assert back.spacing == (0.398,) * 3


@pytest.mark.parametrize("name", ["big.h5", "big.ome.zarr", "big.npy"])
def test_lazy_read_touches_no_data(tmp_path, name):
    data = np.random.default_rng(0).integers(0, 9, (64, 128, 128)).astype(np.uint16)
    write(Volume(data), tmp_path / name, compression=None)
    with io_meter() as m:
        vol = read(tmp_path / name, lazy=True)
    assert vol.is_lazy
    assert_lazy(m, data.nbytes)
    np.testing.assert_array_equal(vol.data[5:9].compute(), data[5:9])
    np.testing.assert_array_equal(vol.numpy(), data)


def test_npy_4d_refused_singleton_dropped(tmp_path):
    np.save(tmp_path / "four.npy", np.zeros((2, 3, 4, 5), np.uint8))
    with pytest.raises(ShapeError, match=r"four\.npy: expected a 2-D image or 3-D volume.*4-D"):
        read(tmp_path / "four.npy")
    np.save(tmp_path / "one.npy", np.ones((1, 3, 4, 5), np.uint8))
    assert read(tmp_path / "one.npy", lazy=True).shape == (3, 4, 5)
