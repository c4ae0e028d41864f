"""HDF5 / NeXus reading: dataset choice, voxel size from attributes, errors, laziness."""

import h5py
import numpy as np
import pytest

from electrode_ct.errors import FormatError, InputError, ShapeError
from electrode_ct.io import read, write
from electrode_ct.volume import Volume

VOL = np.arange(4 * 5 * 6, dtype=np.uint16).reshape(4, 5, 6)


def test_inner_path_and_nexus_default_written_by_us(tmp_path):
    write(Volume(VOL, spacing=(2, 1, 0.5)), tmp_path / "scan.h5")
    with h5py.File(tmp_path / "scan.h5") as f:  # a plain NeXus reader finds the signal
        entry = f[f.attrs["default"]]
        nxdata = entry[entry.attrs["default"]]
        assert nxdata.attrs["NX_class"] == "NXdata" and nxdata.attrs["signal"] == "data"
    for src in (tmp_path / "scan.h5", f"{tmp_path / 'scan.h5'}::/entry/data/data"):
        vol = read(src)
        np.testing.assert_array_equal(vol.numpy(), VOL)
        assert vol.spacing == (2.0, 1.0, 0.5) and vol.metadata["dataset"] == "/entry/data/data"


def test_write_to_named_inner_dataset(tmp_path):
    out = write(Volume(VOL), f"{tmp_path / 'a.h5'}::/recon/volume")
    assert out == tmp_path / "a.h5"
    np.testing.assert_array_equal(read(f"{out}::/recon/volume").numpy(), VOL)
    np.testing.assert_array_equal(read(out).numpy(), VOL)  # the single 3-D dataset


def test_single_3d_dataset_is_chosen_among_others(tmp_path):
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f["angles"] = np.linspace(0, 180, 10)
        f["dark"] = np.zeros((5, 6))
        f["exchange/recon"] = VOL
        f["exchange/recon"].attrs["element_size_um"] = [1.0, 0.7, 0.7]
    vol = read(tmp_path / "m.h5")
    np.testing.assert_array_equal(vol.numpy(), VOL)
    assert vol.spacing == (1.0, 0.7, 0.7)


def test_nxtomo_layout_signal_link_and_detector_pixel_size(tmp_path):
    with h5py.File(tmp_path / "t.nxs", "w") as f:
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        det = entry.create_group("instrument/detector")
        det["data"] = VOL
        det["x_pixel_size"] = 0.00065
        det["x_pixel_size"].attrs["units"] = "mm"
        det["y_pixel_size"] = 0.00065
        det["y_pixel_size"].attrs["units"] = "mm"
        data = entry.create_group("data")
        data.attrs["NX_class"] = "NXdata"
        data.attrs["signal"] = "data"
        data["data"] = h5py.SoftLink("/entry/instrument/detector/data")
        f["other"] = np.zeros((3, 3, 3))  # a second 3-D dataset: the NeXus signal must win
    vol = read(tmp_path / "t.nxs")
    np.testing.assert_array_equal(vol.numpy(), VOL)
    assert vol.spacing == pytest.approx((0.65, 0.65, 0.65))


def test_spacing_from_units_and_nxdata_axes(tmp_path):
    with h5py.File(tmp_path / "u.h5", "w") as f:
        f["v"] = VOL
        f["v"].attrs["voxel_size"] = [500, 250, 250]
        f["v"].attrs["units"] = "nm"
        g = f.create_group("plot")
        g.attrs["NX_class"] = "NXdata"
        g.attrs["signal"] = "img"
        g.attrs["axes"] = ["z", "y", "x"]
        g["img"] = VOL
        for name, n, step in (("z", 4, 3.0), ("y", 5, 0.002), ("x", 6, 0.001)):
            g[name] = np.arange(n) * step
            g[name].attrs["units"] = "um" if name == "z" else "mm"
    assert read(f"{tmp_path / 'u.h5'}::/v").spacing == pytest.approx((0.5, 0.25, 0.25))
    assert read(f"{tmp_path / 'u.h5'}::/plot/img").spacing == pytest.approx((3.0, 2.0, 1.0))


def test_missing_dataset_lists_available(tmp_path):
    write(Volume(VOL), tmp_path / "s.h5")
    with pytest.raises(InputError, match=r"s\.h5: dataset '/nope' not found; available "
                                          r"datasets: /entry/data/data 4x5x6 uint16"):
        read(f"{tmp_path / 's.h5'}::/nope")
    with pytest.raises(InputError, match="is a group, not a dataset"):
        read(f"{tmp_path / 's.h5'}::/entry")


def test_ambiguous_file_asks_for_a_dataset(tmp_path):
    with h5py.File(tmp_path / "two.h5", "w") as f:
        f["a"] = VOL
        f["b"] = VOL
    with pytest.raises(InputError, match=r"several 3-D datasets.*/a 4x5x6.*/b 4x5x6"):
        read(tmp_path / "two.h5")


def test_4d_dataset_refused_singleton_dropped(tmp_path):
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["four"] = np.zeros((2, 3, 4, 5), np.uint8)
        f["one"] = VOL[None]
    with pytest.raises(ShapeError, match=r"d\.h5::/four.*4-D"):
        read(f"{tmp_path / 'd.h5'}::/four")
    np.testing.assert_array_equal(read(f"{tmp_path / 'd.h5'}::/one").numpy(), VOL)
    assert read(f"{tmp_path / 'd.h5'}::/one", lazy=True).shape == VOL.shape


def test_damaged_files_are_format_errors(tmp_path):
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(FormatError, match=r"text\.h5"):
        read(tmp_path / "text.h5")
    write(Volume(np.ones((40, 64, 64), np.float32)), tmp_path / "t.h5", compression=None)
    blob = (tmp_path / "t.h5").read_bytes()
    (tmp_path / "t.h5").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(FormatError, match=r"t\.h5"):
        read(tmp_path / "t.h5").numpy()
