import numpy as np
import pytest

from electrode_ct.errors import InputError, ShapeError
from electrode_ct.volume import Volume, as_spacing, default_class_map, resolve_phase


def test_spacing_forms():
    assert as_spacing(0.5) == (0.5, 0.5, 0.5)
    assert as_spacing([2, 1, 1]) == (2.0, 1.0, 1.0)
    with pytest.raises(InputError, match="voxel size"):
        as_spacing([1, 2])
    with pytest.raises(InputError, match="positive"):
        as_spacing(-1)


def test_2d_is_one_slice_and_4d_refused():
    v = Volume(np.zeros((5, 6)))
    assert v.shape == (1, 5, 6) and v.is_2d
    with pytest.raises(ShapeError, match="4-D"):
        Volume(np.zeros((2, 2, 2, 2)), metadata={"source": "x.tif"})


def test_class_map_and_phase_resolution():
    v = Volume(np.zeros((2, 2, 2), np.uint8)).with_class_map(default_class_map(3))
    assert resolve_phase("active", v.class_map) == 2
    assert resolve_phase("1", v.class_map) == 1
    with pytest.raises(InputError, match="not a class name"):
        resolve_phase("nmc", v.class_map)


def test_lazy_folder_compute_direct_path_and_modified_arrays(tmp_path):
    import tifffile

    from electrode_ct.io import read
    from electrode_ct.volume import _DIRECT_READERS

    rng = np.random.default_rng(0)
    stack = rng.integers(0, 60000, (7, 9, 11), dtype=np.uint16)
    for i, sl in enumerate(stack):
        tifffile.imwrite(tmp_path / f"s_{i}.tif", sl)
    lazy = read(tmp_path, lazy=True)
    assert lazy.is_lazy and lazy.data.name in _DIRECT_READERS
    np.testing.assert_array_equal(lazy.compute().data, stack)
    # an operation on the dask array changes its name: the general path is used
    part = lazy.with_data(lazy.data[::2, 1:])
    assert part.data.name not in _DIRECT_READERS
    np.testing.assert_array_equal(part.compute().data, stack[::2, 1:])
