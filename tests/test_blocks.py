"""The block mechanism: geometry, the serial driver, and blockwise == whole volume."""

from __future__ import annotations

from itertools import product

import numpy as np
import pytest
from scipy import ndimage as ndi

from electrode_ct.blocks import Block, block_grid, expand, map_blocks
from electrode_ct.errors import InputError

SHAPES = [(13, 17, 11), (1, 9, 14), (5, 1, 1)]
BLOCKS = [(4, 5, 3), (7, 17, 11), (1, 2, 3), (32, 32, 32)]


def _gaussian(sigma: float) -> tuple:
    radius = int(4.0 * sigma + 0.5)  # scipy's truncate = 4
    return (lambda a: ndi.gaussian_filter(a, sigma)), radius


OPERATORS = {
    "gaussian": _gaussian(1.3),
    "median": ((lambda a: ndi.median_filter(a, size=(3, 5, 3))), (1, 2, 1)),
    "erosion": ((lambda a: ndi.grey_erosion(a, size=5, mode="nearest")), 2),
    "laplace": ((lambda a: ndi.gaussian_laplace(a, 0.8, mode="mirror")), int(3.7)),
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("block_shape", BLOCKS)
@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_blockwise_equals_whole_volume(shape, block_shape, name):
    op, halo = OPERATORS[name]
    a = np.random.default_rng(sum(shape)).random(shape)
    got = map_blocks(lambda region, b: b.crop(op(region)), a, block_shape=block_shape,
                     halo=halo)
    np.testing.assert_array_equal(got, op(a))


def test_a_smaller_halo_is_not_enough():
    # the comparison above can fail: one voxel less of halo changes the result
    op, halo = OPERATORS["gaussian"]
    a = np.random.default_rng(1).random((13, 17, 11))
    got = map_blocks(lambda region, b: b.crop(op(region)), a, block_shape=(4, 5, 3),
                     halo=halo - 1)
    assert not np.array_equal(got, op(a))


def test_leading_output_axes_threads_and_progress():
    a = np.random.default_rng(2).random((11, 10, 9)).astype(np.float32)
    seen = []

    def progress(it):
        for x in it:
            seen.append(x)
            yield x

    def two(region, b):
        return b.crop(np.stack([ndi.gaussian_filter(region, 1.0), ndi.sobel(region, 0)]))

    whole = np.stack([ndi.gaussian_filter(a, 1.0), ndi.sobel(a, 0)])
    for workers in (1, 3):
        seen.clear()
        got = map_blocks(two, a, block_shape=(4, 4, 4), halo=4, progress=progress,
                         workers=workers)
        assert got.shape == (2, 11, 10, 9) and got.dtype == np.float32
        np.testing.assert_array_equal(got, whole)
        assert len(seen) == 27
    cast = map_blocks(two, a, block_shape=(4, 4, 4), halo=4, dtype=np.float64)
    assert cast.dtype == np.float64


@pytest.mark.parametrize("block_shape,halo", [((3, 4, 5), 2), ((2, 2, 2), 5), ((4, 19, 7), 3)])
def test_in_place_equals_out_of_place(block_shape, halo):
    # halo > block: a block's input is read by blocks several grid steps later
    a = np.random.default_rng(3).random((10, 19, 7))
    ref = ndi.gaussian_filter(a, 1.0, truncate=halo)

    def run(region, b):
        return b.crop(ndi.gaussian_filter(region, 1.0, truncate=halo))

    buf = a.copy()
    out = map_blocks(run, buf, block_shape=block_shape, halo=halo, out=buf)
    assert out is buf
    np.testing.assert_array_equal(buf, ref)


def test_out_is_filled_and_returned():
    a = np.arange(60, dtype=np.int32).reshape(3, 4, 5)
    out = np.zeros((3, 4, 5), np.int64)
    got = map_blocks(lambda region, b: b.crop(region) * 2, a, block_shape=(2, 3, 2), out=out)
    assert got is out
    np.testing.assert_array_equal(out, 2 * a)


def _covers_once(shape, blocks):
    count = np.zeros(shape, np.int64)
    for b in blocks:
        count[b.write] += 1
    return bool((count == 1).all())


@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 7, 1), (9, 10, 11), (2, 3)])
@pytest.mark.parametrize("block,halo", [(1, 0), (2, 3), (4, 1), (100, 2), (3, 10)])
def test_grid_geometry(shape, block, halo):
    blocks = block_grid(shape, (block,) * len(shape), halo)
    assert _covers_once(shape, blocks)
    assert [b.index for b in blocks] == sorted(b.index for b in blocks)  # C order
    coords = np.indices(shape)
    for b in blocks:
        for ax, (w, r, i) in enumerate(zip(b.write, b.read, b.interior, strict=True)):
            assert r.start == max(0, w.start - halo) and r.stop == min(shape[ax], w.stop + halo)
            assert (i.start + r.start, i.stop + r.start) == (w.start, w.stop)
            assert w.stop - w.start <= block
        assert b.offset == tuple(r.start for r in b.read)
        assert b.margins == tuple((w.start - r.start, r.stop - w.stop)
                                  for w, r in zip(b.write, b.read, strict=True))
        # the interior of the read region is the written block, voxel for voxel
        for c in coords:
            np.testing.assert_array_equal(c[b.read][b.interior], c[b.write])


def test_margins_show_where_the_volume_clipped_the_halo():
    b = expand((slice(1, 3), slice(5, 9)), (4, 2), (10, 10))
    assert b.margins == ((1, 4), (2, 1))
    assert b.read == (slice(0, 7), slice(3, 10))
    assert isinstance(b, Block) and b.shape == (2, 4)


def test_empty_volume_and_one_voxel():
    assert block_grid((0, 4, 4), (2, 2, 2), 1) == []
    out = map_blocks(lambda r, b: b.crop(r), np.zeros((0, 4, 4)), block_shape=(2, 2, 2))
    assert out.shape == (0, 4, 4)
    [one] = block_grid((1, 1, 1), (5, 5, 5), 3)
    assert one.read == one.write == (slice(0, 1),) * 3


@pytest.mark.parametrize("block_shape,halo,match", [
    ((0, 2, 2), 1, "block shape"),
    ((2, 2), 1, "block shape"),
    ((2, 2, 2), -1, "halo"),
    ((2, 2, 2), (1, 2), "halo"),
    ((2, 2, 2), 1.5, "halo"),
])
def test_bad_geometry_is_refused(block_shape, halo, match):
    with pytest.raises(InputError, match=match):
        block_grid((4, 4, 4), block_shape, halo)


# -- the operators that run on the mechanism ----------------------------------------------
@pytest.mark.parametrize("features", ["default", "ste:2,std:1.5,dog:1"])
def test_features_blockwise_equal_whole(features):
    from electrode_ct.segment.features import compute_features

    img = ndi.gaussian_filter(np.random.default_rng(4).random((15, 21, 18)), 1.0)
    whole = compute_features(img, features, spacing=(1.6, 1.0, 1.0))
    for bs in [(4, 7, 5), (15, 3, 18)]:
        np.testing.assert_array_equal(
            compute_features(img, features, spacing=(1.6, 1.0, 1.0), block_shape=bs), whole)


@pytest.mark.parametrize("modality", ["micro", "nano"])
def test_imaging_slabs_equal_whole_volume(modality):
    # nano: the fringe filter then the PSF; the halo is the sum of their reaches
    from electrode_ct.synth.imaging import forward, get_preset
    from electrode_ct.synth.render import Grid

    rng = np.random.default_rng(5)
    ideal = ndi.gaussian_filter((rng.random((30, 20, 20)) > 0.5) * 0.2 + 0.38, 1.0)
    ideal = ideal.astype(np.float32)
    grid = Grid((30, 20, 20), (0.5, 0.5, 0.5))
    preset = get_preset(modality, shading=0.0)
    whole = forward(ideal, grid=grid, preset=preset, seed=1, block=30)
    for block in (1, 4, 7):
        np.testing.assert_array_equal(
            forward(ideal, grid=grid, preset=preset, seed=1, block=block), whole)
    buf = np.round(ideal * 65535).astype(np.uint16)
    ref = forward(buf, grid=grid, preset=preset, seed=1, block=30)
    forward(buf, grid=grid, preset=preset, seed=1, block=4, out=buf)  # in place
    np.testing.assert_array_equal(buf, ref)


def test_nlm_slabs_equal_whole_volume():
    from electrode_ct.filters import nlm

    img = ndi.gaussian_filter(np.random.default_rng(7).random((12, 14, 13)), 1.0)
    img = (img + np.random.default_rng(8).normal(0, 0.05, img.shape)).astype(np.float32)
    whole = nlm(img, sigma=0.05, patch_size=3, patch_distance=2, slab=None)
    for slab, workers in [(3, 1), (5, 2)]:
        np.testing.assert_allclose(nlm(img, sigma=0.05, patch_size=3, patch_distance=2,
                                       slab=slab, workers=workers), whole, atol=1e-6)


def test_slab_grid_along_one_axis():
    # NLM and the imaging model cut only axis 0: halo (h, 0, 0), blocks of whole planes
    blocks = block_grid((10, 4, 5), (3, 4, 5), (2, 0, 0))
    assert [b.write[0] for b in blocks] == [slice(s, min(s + 3, 10)) for s in range(0, 10, 3)]
    assert all(b.read[1:] == (slice(0, 4), slice(0, 5)) for b in blocks)
    assert [b.read[0] for b in blocks] == [slice(0, 5), slice(1, 8), slice(4, 10),
                                           slice(7, 10)]
    assert list(product(range(4), [0], [0])) == [b.index for b in blocks]
