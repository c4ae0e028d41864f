"""``ect info`` / ``ect convert`` on every format, and bad input: exit code 2, one-line message
naming the file, no traceback, no partial output."""

import json

import h5py
import numpy as np
import pytest
import tifffile

VOL = np.arange(4 * 6 * 8, dtype=np.uint16).reshape(4, 6, 8)


def test_info_raw_layout_options(run_cli, tmp_path):
    VOL.astype(">u2").tofile(tmp_path / "v.raw")
    code, out, err = run_cli("info", tmp_path / "v.raw", "--shape", "4", "6", "8",
                             "--dtype", "uint16", "--byte-order", "big", "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["format"] == "raw" and d["shape"] == [4, 6, 8] and d["dtype"] == "uint16"
    assert d["min"] == 0 and d["max"] == VOL.size - 1


def test_convert_folder_to_chunked_ome_zarr_and_hdf5(run_cli, tmp_path):
    (tmp_path / "slices").mkdir()
    for i, s in enumerate(VOL):
        tifffile.imwrite(tmp_path / "slices" / f"s{i}.tif", s)  # 2-D slices
    code, _, err = run_cli("convert", tmp_path / "slices", tmp_path / "v.ome.zarr",
                           "--chunks", "2", "3", "8", "--voxel-size", "2", "0.5", "0.5")
    assert code == 0, err
    zmeta = json.loads((tmp_path / "v.ome.zarr" / "0" / ".zarray").read_text())
    assert zmeta["chunks"] == [2, 3, 8]
    code, _, err = run_cli("convert", tmp_path / "v.ome.zarr", f"{tmp_path / 'v.h5'}::/scan/v",
                           "--chunks", "1", "6", "8")
    assert code == 0, err
    with h5py.File(tmp_path / "v.h5") as f:
        assert f["scan/v"].chunks == (1, 6, 8)
        np.testing.assert_array_equal(f["scan/v"][()], VOL)
    code, out, err = run_cli("info", f"{tmp_path / 'v.h5'}::/scan/v", "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["format"] == "hdf5" and d["spacing_um"] == [2.0, 0.5, 0.5]


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    """(arguments, text the one-line message must contain) for each kind of bad input."""
    tmp_path = tmp_path_factory.mktemp("bad")
    tifffile.imwrite(tmp_path / "ok.tif", VOL, photometric="minisblack")
    blob = (tmp_path / "ok.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(blob[: len(blob) // 2])
    (tmp_path / "scan.xyz").write_text("?")
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f["entry/data"] = VOL
    VOL.tofile(tmp_path / "v.raw")
    (tmp_path / "mixed").mkdir()
    tifffile.imwrite(tmp_path / "mixed" / "a1.tif", VOL[0])
    tifffile.imwrite(tmp_path / "mixed" / "a2.tif", VOL[0, :5])
    tifffile.imwrite(tmp_path / "c4.tif", np.zeros((3, 2, 5, 5), np.uint8), imagej=True,
                     metadata={"axes": "ZCYX"})
    return {
        "missing": ([tmp_path / "nope.tif"], "nope.tif: no such file or folder"),
        "truncated": ([tmp_path / "cut.tif"], "cut.tif: truncated TIFF"),
        "unknown": ([tmp_path / "scan.xyz"], "scan.xyz: unknown file type"),
        "h5 dataset": ([f"{tmp_path / 's.h5'}::/entry/missing"],
                       "dataset '/entry/missing' not found; available datasets: /entry/data"),
        "raw size": ([tmp_path / "v.raw", "--shape", "4", "6", "9", "--dtype", "uint16"],
                     "v.raw: file size 384 bytes does not match the header"),
        "raw layout": ([tmp_path / "v.raw"], "v.raw: a raw file needs its layout"),
        "slices": ([tmp_path / "mixed"], "a2.tif: slice of shape (5, 8)"),
        "4-D": ([tmp_path / "c4.tif"], "c4.tif: expected a 2-D image or 3-D volume, got 4-D"),
    }


KINDS = ["missing", "truncated", "unknown", "h5 dataset", "raw size", "raw layout", "slices",
         "4-D"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", ["info", "convert"])
def test_bad_input_one_line_exit_2_no_output(run_cli, tmp_path, bad_inputs, kind, command):
    args, expected = bad_inputs[kind]
    outdir = tmp_path / "out"
    outdir.mkdir()
    extra = [outdir / "o.ome.zarr"] if command == "convert" else ["--json"]
    code, out, err = run_cli(command, args[0], *extra, *args[1:])
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert expected in err and "Traceback" not in err
    assert out == ""
    assert list(outdir.iterdir()) == []  # no partial or temporary output left behind


def test_info_names_where_the_voxel_size_came_from(run_cli, tmp_path):
    grey = np.arange(3 * 8 * 8, dtype=np.uint16).reshape(3, 8, 8)
    tifffile.imwrite(tmp_path / "bare.tif", grey)  # no resolution tags, no metadata
    np.save(tmp_path / "bare.npy", grey)  # no sidecar
    from electrode_ct.io import read, write
    from electrode_ct.volume import Volume

    write(Volume(grey, spacing=(0.5, 0.25, 0.25)), tmp_path / "known.tif")
    for name, expected in (("bare.tif", "assumed"), ("bare.npy", "assumed"),
                           ("known.tif", "file")):
        code, out, err = run_cli("info", str(tmp_path / name), "--json")
        assert code == 0, err
        assert json.loads(out)["spacing_source"] == expected, name
    assert read(tmp_path / "known.tif").spacing == (0.5, 0.25, 0.25)
    code, out, _ = run_cli("info", str(tmp_path / "bare.tif"), "--voxel-size", "0.7", "--json")
    info = json.loads(out)
    assert (info["spacing_source"], info["spacing_um"]) == ("user", [0.7, 0.7, 0.7])
    code, out, _ = run_cli("info", str(tmp_path / "bare.tif"))
    assert code == 0 and "ASSUMED" in out and "--voxel-size" in out
