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
