"""Zarr / OME-Zarr: metadata written, multiscale reading, errors, laziness, streaming writes."""

import json
import tracemalloc

import dask.array as da
import numpy as np
import pytest
import zarr

from electrode_ct.errors import FormatError, InputError, ShapeError
from electrode_ct.io import read, write
from electrode_ct.volume import Volume

VOL = np.arange(6 * 8 * 10, dtype=np.uint16).reshape(6, 8, 10)


def test_written_metadata_is_ome_zarr_v04(tmp_path):
    vol = Volume(VOL, spacing=(2.0, 0.5, 0.25), origin=(1.0, 0.0, 0.0),
                 metadata={"class_map": {"pore": 0, "active": 2}})
    write(vol, tmp_path / "img.ome.zarr", chunks=(2, 4, 4))
    attrs = json.loads((tmp_path / "img.ome.zarr" / ".zattrs").read_text())
    ms = attrs["multiscales"][0]
    assert ms["version"] == "0.4"
    assert [(a["name"], a["type"], a["unit"]) for a in ms["axes"]] == [
        ("z", "space", "micrometer"), ("y", "space", "micrometer"), ("x", "space", "micrometer")]
    transforms = ms["datasets"][0]["coordinateTransformations"]
    assert transforms[0] == {"type": "scale", "scale": [2.0, 0.5, 0.25]}
    assert transforms[1] == {"type": "translation", "translation": [1.0, 0.0, 0.0]}
    assert attrs["image-label"]["properties"] == [
        {"label-value": 0, "class": "pore"}, {"label-value": 2, "class": "active"}]
    meta = json.loads((tmp_path / "img.ome.zarr" / "0" / ".zarray").read_text())
    assert meta["chunks"] == [2, 4, 4] and meta["compressor"]["cname"] == "zstd"
    assert len(list((tmp_path / "img.ome.zarr" / "0").glob("[0-9]*"))) == 3 * 2 * 3


def test_reads_foreign_5d_multiscale_with_units_and_levels(tmp_path):
    g = zarr.open_group(str(tmp_path / "f.zarr"), mode="w", zarr_format=2)
    g.create_array("s0", data=VOL[None, None])
    g.create_array("s1", data=VOL[None, None, ::2, ::2, ::2])
    axes = [{"name": "t", "type": "time"}, {"name": "c", "type": "channel"}] + [
        {"name": n, "type": "space", "unit": "nanometer"} for n in "zyx"]
    g.attrs["multiscales"] = [{
        "version": "0.4", "axes": axes,
        "datasets": [
            {"path": "s0", "coordinateTransformations": [
                {"type": "scale", "scale": [1, 1, 400, 200, 200]}]},
            {"path": "s1", "coordinateTransformations": [
                {"type": "scale", "scale": [1, 1, 800, 400, 400]}]}],
        "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 2, 1, 1]}],
    }]
    vol = read(tmp_path / "f.zarr")
    np.testing.assert_array_equal(vol.numpy(), VOL)
    assert vol.spacing == pytest.approx((0.8, 0.2, 0.2))
    low = read(tmp_path / "f.zarr", level=1, lazy=True)
    np.testing.assert_array_equal(low.numpy(), VOL[::2, ::2, ::2])
    assert low.spacing == pytest.approx((1.6, 0.4, 0.4))
    with pytest.raises(InputError, match="resolution level 5 not found; the image has 2"):
        read(tmp_path / "f.zarr", level=5)


def test_several_channels_refused(tmp_path):
    g = zarr.open_group(str(tmp_path / "c.zarr"), mode="w", zarr_format=2)
    g.create_array("0", data=np.zeros((2, 3, 4, 5), np.uint8))
    g.attrs["multiscales"] = [{"version": "0.4", "axes": [
        {"name": "c", "type": "channel"}, *[{"name": n, "type": "space"} for n in "zyx"]],
        "datasets": [{"path": "0"}]}]
    with pytest.raises(ShapeError, match=r"c\.zarr.*2 along axis 'c'"):
        read(tmp_path / "c.zarr")


def test_zarr_v3_ome_v05_roundtrip(tmp_path):
    vol = Volume(VOL, spacing=(3.0, 1.0, 1.0), metadata={"class_map": {"a": 1}})
    write(vol, tmp_path / "v3.zarr", zarr_format=3)
    attrs = json.loads((tmp_path / "v3.zarr" / "zarr.json").read_text())["attributes"]
    assert attrs["ome"]["version"] == "0.5"
    back = read(tmp_path / "v3.zarr")
    np.testing.assert_array_equal(back.numpy(), VOL)
    assert back.spacing == (3.0, 1.0, 1.0) and back.class_map == {"a": 1}


def test_plain_array_and_groups(tmp_path):
    zarr.open_array(str(tmp_path / "plain.zarr"), mode="w", shape=VOL.shape, dtype=VOL.dtype,
                    zarr_format=2)[...] = VOL
    vol = read(tmp_path / "plain.zarr")
    np.testing.assert_array_equal(vol.numpy(), VOL)
    assert vol.spacing == (1.0, 1.0, 1.0)
    g = zarr.open_group(str(tmp_path / "g.zarr"), mode="w", zarr_format=2)
    g.create_array("a", data=VOL)
    g.create_array("b", data=VOL + 1)
    with pytest.raises(InputError, match=r"g\.zarr.*name the array.*members: a, b"):
        read(tmp_path / "g.zarr")
    np.testing.assert_array_equal(read(f"{tmp_path / 'g.zarr'}::b").numpy(), VOL + 1)
    with pytest.raises(InputError, match="no array or group 'c'"):
        read(f"{tmp_path / 'g.zarr'}::c")


def test_not_a_zarr_store(tmp_path):
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(FormatError, match=r"empty\.zarr"):
        read(tmp_path / "empty.zarr")



@pytest.mark.parametrize("name", ["s.zarr", "s.h5"])
def test_lazy_volume_is_written_block_by_block(tmp_path, name):
    shape = (256, 256, 256)  # 32 MB of uint16 generated block by block
    lazy = da.ones(shape, dtype=np.uint16, chunks=(8, 256, 256)) * da.arange(
        shape[0], dtype=np.uint16, chunks=8)[:, None, None]
    # a first small write imports the writer's modules: their one-time allocations are
    # not the write's memory (the test alone measured them, in the suite it did not)
    write(Volume(lazy[:16, :32, :32]), tmp_path / f"warm-{name}", chunks=(16, 16, 16))
    tracemalloc.start()
    write(Volume(lazy), tmp_path / name, chunks=(16, 128, 128))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    nbytes = int(np.prod(shape)) * 2
    assert peak < nbytes / 3, peak
    back = read(tmp_path / name, lazy=True)
    assert back.data[77, 3, 5].compute() == 77 and back.data[255, -1, -1].compute() == 255


@pytest.mark.parametrize("lead", [(), (1, 1)])
def test_lazy_compute_in_slabs_equals_blockwise(tmp_path, monkeypatch, lead):
    """A lazy Zarr volume loads through the slab reader (several slabs, a partial last one,
    and for a 5-D t, c, z, y, x array the slabs along z) with the values dask's per-chunk
    path gives and the array written."""
    from electrode_ct.io import _zarr_guard
    from electrode_ct.volume import _DIRECT_READERS

    rng = np.random.default_rng(3)
    data = rng.integers(0, 60000, size=(*lead, 37, 30, 20), dtype=np.uint16)
    arr = zarr.open_array(str(tmp_path / "v.zarr"), mode="w", shape=data.shape,
                          chunks=(*lead, 8, 16, 16), dtype="u2", zarr_format=2)
    arr[...] = data
    monkeypatch.setattr(_zarr_guard, "_DIRECT_SLAB_BYTES", 2 * 8 * 30 * 20 * 2)  # 2 chunk rows
    vol = read(tmp_path / "v.zarr", lazy=True)
    assert vol.data.name in _DIRECT_READERS
    want = data.reshape(data.shape[-3:])
    assert np.array_equal(vol.numpy(), want)
    assert np.array_equal(np.asarray(vol.data.compute()), want)
