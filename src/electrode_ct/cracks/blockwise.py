"""Cracks on the block engine: bounding boxes per label, owned particles, 3-phase volume.

A particle is *owned* by the block holding its first voxel in raster order, so every
particle belongs to exactly one block whatever the block shape. A first reduction pass
(:func:`label_boxes_blocks`) gives every label's bounding box and first voxel, merged
exactly from per-block partials (:func:`electrode_ct.labels.label_boxes`); from them the
halo reaching every particle (:func:`reach`) and each block's owned particles
(:func:`owners`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from electrode_ct.blocks import Block, block_grid
from electrode_ct.compute.engine import Source, ZarrRef, reduce_blocks
from electrode_ct.labels import label_boxes, merge_boxes


@dataclass(frozen=True)
class _Boxes:
    """Block function: :func:`label_boxes` of a block's interior (picklable)."""

    shape: tuple[int, ...]

    def __call__(self, region: np.ndarray, block: Block) -> np.ndarray:
        return label_boxes(block.crop(region), offset=tuple(s.start for s in block.write),
                           shape=self.shape)


def _shape(src: Source) -> tuple[int, ...]:
    arr = src.open("r") if isinstance(src, ZarrRef) else src
    return tuple(int(n) for n in arr.shape)


def label_boxes_blocks(labels: Source, *, block_shape: Sequence[int], client: Any = None,
                       progress: Any = None) -> np.ndarray:
    """Bounding box and first voxel of every label, from per-block partials.

    Parameters
    ----------
    labels : ZarrRef or array-like
        Global label volume (z, y, x).
    block_shape : sequence of int
        Blocks of the reduction (voxels; no halo).
    client, progress
        As :func:`electrode_ct.compute.engine.reduce_blocks`.

    Returns
    -------
    numpy.ndarray
        int64 rows of :data:`electrode_ct.labels.BOX_COLUMNS`, sorted by label; equal to
        :func:`~electrode_ct.labels.label_boxes` of the whole volume.
    """
    shape = _shape(labels)
    parts = reduce_blocks(_Boxes(shape), labels, block_shape=block_shape, client=client,
                          progress=progress)
    return merge_boxes(parts)


def reach(boxes: np.ndarray, *, margin: int = 0) -> tuple[int, int, int]:
    """Halo (voxels, per axis) reaching every particle from any of its voxels: the largest
    box extent plus ``margin``; (0, 0, 0) without particles."""
    if not len(boxes):
        return (0, 0, 0)
    ext = (boxes[:, 4:7] - boxes[:, 1:4]).max(axis=0) + int(margin)
    return tuple(int(e) for e in ext)  # type: ignore[return-value]


def owners(boxes: np.ndarray, shape: Sequence[int],
           block_shape: Sequence[int]) -> np.ndarray:
    """Position (in :func:`~electrode_ct.blocks.block_grid` order) of the block owning
    each label of ``boxes``: the block holding its first voxel in raster order."""
    shape = tuple(int(n) for n in shape)
    first = np.unravel_index(boxes[:, 7], shape)
    step = [min(int(b), n) for b, n in zip(block_shape, shape, strict=True)]
    dims = [-(-n // b) for n, b in zip(shape, step, strict=True)]
    grid = tuple(f // b for f, b in zip(first, step, strict=True))
    return np.ravel_multi_index(grid, dims) if len(boxes) else np.zeros(0, np.int64)


def owned_by_block(boxes: np.ndarray, shape: Sequence[int],
                   block_shape: Sequence[int]) -> list[np.ndarray]:
    """Rows of ``boxes`` owned by each block of the grid (a list in grid order)."""
    n = len(block_grid(shape, block_shape))
    own = owners(boxes, shape, block_shape)
    return [boxes[own == i] for i in range(n)]


def heal_margin(spacing: Sequence[float], width_um: float | None = None) -> tuple[int, ...]:
    """Voxels around a particle that its healed mask depends on (per axis): the healing
    closing's ball reaches ``half`` voxels, its shrink-back another ``half``, plus 3 for
    the hole filling's border test and the surface distance."""
    sp = tuple(float(s) for s in spacing)
    width = 2 * max(sp) if width_um is None else float(width_um)
    radius = width / 2 + max(sp) / 2
    return tuple(2 * int(np.floor(radius / h)) + 3 for h in sp)


def _faces(region: np.ndarray, block: Block, shape: Sequence[int],
           depth: Sequence[int]) -> np.ndarray:
    """Ids within ``depth`` voxels of a read border that is not a volume face."""
    found = [np.zeros(0, region.dtype)]
    for a, (sl, n, d) in enumerate(zip(block.read, shape, depth, strict=True)):
        idx = [slice(None)] * region.ndim
        if sl.start > 0:
            idx[a] = slice(0, d)
            found.append(np.unique(region[tuple(idx)]))
        if sl.stop < n:
            idx[a] = slice(max(0, region.shape[a] - d), None)
            found.append(np.unique(region[tuple(idx)]))
    return np.unique(np.concatenate(found))


def check_reach(region: np.ndarray, block: Block, shape: Sequence[int],
                margin: Sequence[int], halo: Sequence[int]) -> None:
    """Refuse a particle of the block's interior that comes within ``margin`` voxels of
    the read border (its crop would be cut): one line naming it and the halo needed."""
    from electrode_ct.errors import InputError

    inner = np.unique(block.crop(region))
    cut = np.intersect1d(inner[inner != 0], _faces(region, block, shape, margin))
    if cut.size:
        pos = np.argwhere(block.crop(region) == cut[0])[0] + [s.start for s in block.write]
        raise InputError(f"particle {int(cut[0])} at voxel {tuple(int(p) for p in pos)} is "
                         f"larger than the reach of halo {tuple(int(h) for h in halo)}: give "
                         f"a halo of at least its extent + {tuple(int(m) for m in margin)} "
                         "voxels (and blocks at least that large)")


@dataclass(frozen=True)
class ThreePhaseBlock:
    """Block function of :func:`three_phase_blocks` (picklable): ``region`` is the label
    volume's; the grey volume is read from ``grey`` over the same region."""

    grey: Source
    split: np.ndarray
    threshold: float
    spacing: tuple[float, float, float]
    shape: tuple[int, ...]
    halo: tuple[int, ...]
    width_um: float | None = None

    def healed(self, region: np.ndarray, block: Block) -> np.ndarray:
        """Healed labels of the region, after the reach check."""
        from electrode_ct.cracks.candidates import heal_labels

        margin = heal_margin(self.spacing, self.width_um)
        check_reach(region, block, self.shape, margin, self.halo)
        width = 2 * max(self.spacing) if self.width_um is None else self.width_um
        return heal_labels(region, width_um=width, spacing=self.spacing)

    def __call__(self, region: np.ndarray, block: Block) -> np.ndarray:
        from electrode_ct.cracks.threephase import three_phase

        healed = self.healed(region, block)
        grey = np.asarray((self.grey.open("r") if isinstance(self.grey, ZarrRef)
                           else self.grey)[block.read])
        ids = np.intersect1d(self.split, np.unique(healed))
        phases, _, _ = three_phase(grey, healed, ids, labels=region, spacing=self.spacing,
                                   threshold=self.threshold, integral=False)
        return block.crop(phases)


def three_phase_blocks(labels: Source, grey: Source, dst: ZarrRef | np.ndarray, *,
                       split: np.ndarray, threshold: float,
                       spacing: tuple[float, float, float], block_shape: Sequence[int],
                       halo: Sequence[int], width_um: float | None = None,
                       client: Any = None, progress: Any = None,
                       memory_limit: int | None = None) -> None:
    """The 3-phase volume of :func:`~electrode_ct.cracks.threephase.three_phase`, block by
    block: each block heals its region (block + halo) and splits the particles ``split``
    at the in-mask grey ``threshold``; identical to the whole-volume result when the halo
    reaches every particle (:func:`reach` with :func:`heal_margin`).

    Parameters
    ----------
    labels, grey : ZarrRef or array-like
        Particle labels and grey volume (z, y, x).
    dst : ZarrRef or numpy.ndarray
        uint8 output (0 exterior, 1 solid, 2 flaw).
    split : numpy.ndarray
        Ids of the particles split into solid and flaw.
    threshold : float
        In-mask grey threshold (:func:`~electrode_ct.cracks.threephase.in_mask_threshold`).
    spacing, block_shape, halo, width_um
        Voxel size (µm), blocks and halo (voxels), healing width (µm, default 2 voxels).
    client, progress, memory_limit
        As :func:`electrode_ct.compute.engine.run_blocks`.

    Raises
    ------
    InputError
        A particle larger than the halo's reach.
    """
    from electrode_ct.compute.engine import run_blocks

    shape = _shape(labels)
    func = ThreePhaseBlock(grey, np.asarray(split, np.int64), float(threshold),
                           tuple(float(s) for s in spacing), shape,
                           tuple(int(h) for h in halo), width_um)
    run_blocks(func, labels, dst, block_shape=block_shape, halo=halo, client=client,
               progress=progress, bytes_per_voxel=BYTES_PER_VOXEL, memory_limit=memory_limit)


BYTES_PER_VOXEL = 48.0
"""Working memory of one 3-phase block per voxel of its read region: labels and healed
labels (uint32, with the closing's temporaries), grey as float32, the surface distance
(float32), row indices (int64) and the masks (39 bytes measured with tracemalloc on a
48 × 48 × 52 block of uint32 labels and uint16 grey, on top of the reads)."""


@dataclass(frozen=True)
class CrackRows:
    """Reduction function of :func:`crack_rows_blocks`: the crack rows of the particles a
    block owns, each measured on a crop of its box plus the healing margin."""

    labels: Source
    grey: Source
    boxes: np.ndarray
    split: np.ndarray
    threshold: float
    spacing: tuple[float, float, float]
    shape: tuple[int, ...]
    block_shape: tuple[int, ...]
    width_um: float | None = None

    def __call__(self, region: np.ndarray, block: Block) -> Any:
        import pandas as pd

        from electrode_ct.cracks.candidates import heal_labels
        from electrode_ct.cracks.threephase import three_phase

        pos = int(np.ravel_multi_index(block.index, [-(-n // min(b, n)) for n, b in
                                                     zip(self.shape, self.block_shape,
                                                         strict=True)]))
        mine = self.boxes[owners(self.boxes, self.shape, self.block_shape) == pos]
        mine = mine[np.isin(mine[:, 0], self.split)]
        margin = heal_margin(self.spacing, self.width_um)
        width = 2 * max(self.spacing) if self.width_um is None else self.width_um
        rows = []
        for box in mine:
            crop = tuple(slice(max(0, int(a) - m), min(n, int(b) + m)) for a, b, m, n in
                         zip(box[1:4], box[4:7], margin, self.shape, strict=True))
            lab = np.asarray(_read(self.labels, crop))
            healed = heal_labels(lab, width_um=width, spacing=self.spacing)
            grey = np.asarray(_read(self.grey, crop))
            _, tab, _ = three_phase(grey, healed, box[:1], labels=lab, spacing=self.spacing,
                                    threshold=self.threshold, integral=False)
            rows.append(tab)
        return pd.concat(rows, ignore_index=True) if rows else None


def _read(src: Source, box: tuple[slice, ...]) -> np.ndarray:
    return np.asarray((src.open("r") if isinstance(src, ZarrRef) else src)[box])


def crack_rows_blocks(labels: Source, grey: Source, boxes: np.ndarray, *, split: np.ndarray,
                      threshold: float, spacing: tuple[float, float, float],
                      block_shape: Sequence[int], width_um: float | None = None,
                      client: Any = None, progress: Any = None) -> Any:
    """The crack rows of :func:`~electrode_ct.cracks.threephase.three_phase` (voxel
    columns; the integral columns NaN), one per particle of ``split``, each computed by
    the block owning it on a crop of its box plus :func:`heal_margin`; rows concatenated
    in block order, then sorted as ``split``.

    Parameters
    ----------
    labels, grey : ZarrRef or array-like
        Particle labels and grey volume.
    boxes : numpy.ndarray
        :func:`label_boxes_blocks` of ``labels``.
    split, threshold, spacing, width_um
        As :func:`three_phase_blocks`.
    block_shape, client, progress
        Blocks of the reduction and the engine (see
        :func:`electrode_ct.compute.engine.reduce_blocks`).

    Returns
    -------
    pandas.DataFrame
        ``label`` then :data:`~electrode_ct.cracks.threephase.THREEPHASE_COLUMNS`.
    """
    import pandas as pd

    from electrode_ct.compute.engine import reduce_blocks

    shape = _shape(labels)
    split = np.asarray(split, np.int64)
    func = CrackRows(labels, grey, boxes, split, float(threshold),
                     tuple(float(s) for s in spacing), shape,
                     tuple(int(b) for b in block_shape), width_um)
    parts = [p for p in reduce_blocks(func, labels, block_shape=block_shape, client=client,
                                      progress=progress) if p is not None]
    if not parts:
        from electrode_ct.cracks.threephase import THREEPHASE_COLUMNS

        return pd.DataFrame(columns=["label", *THREEPHASE_COLUMNS])
    rows = pd.concat(parts, ignore_index=True).set_index("label")
    return rows.loc[split.astype(np.uint32)].reset_index()


@dataclass
class BlockSplitter:
    """:func:`~electrode_ct.cracks.threephase.three_phase` on the block engine, for
    :func:`~electrode_ct.cracks.classify.classify_scan`'s ``splitter``.

    The in-mask threshold is taken over the split particles' healed masks as today; the
    3-phase volume is written block by block into ``dst`` (:func:`three_phase_blocks`),
    the voxel crack columns come from the owning blocks (:func:`crack_rows_blocks`) and
    the integral columns from :func:`~electrode_ct.cracks.pvolume.crack_volume_pv`.

    Attributes
    ----------
    labels, grey : ZarrRef or array-like
        The scan's labels and grey volume as the blocks read them.
    dst : ZarrRef or numpy.ndarray
        uint8 3-phase output.
    boxes : numpy.ndarray
        :func:`label_boxes_blocks` of ``labels``.
    block_shape, halo : tuple of int
        Blocks and halo of the 3-phase pass (voxels; see :func:`reach`).
    client, progress, memory_limit
        The engine (see :func:`electrode_ct.compute.engine.run_blocks`).
    """

    labels: Source
    grey: Source
    dst: ZarrRef | np.ndarray
    boxes: np.ndarray
    block_shape: tuple[int, ...]
    halo: tuple[int, ...]
    client: Any = None
    progress: Any = None
    memory_limit: int | None = None

    def __call__(self, grey: np.ndarray, healed: np.ndarray, ids: np.ndarray, *,
                 labels: np.ndarray | None = None, spacing: Any = (1.0, 1.0, 1.0),
                 reference: np.ndarray | None = None,
                 fine: np.ndarray | None = None) -> tuple[None, Any, float]:
        """Split ``ids`` (arguments of :func:`~electrode_ct.cracks.threephase.three_phase`);
        returns ``(None, table, threshold)``: the phases are in ``dst``."""
        from electrode_ct.cracks.pvolume import PV_COLUMNS, crack_volume_pv
        from electrode_ct.cracks.threephase import in_mask_threshold
        from electrode_ct.volume import as_spacing

        sp = as_spacing(spacing, name="spacing")
        ids = np.asarray(ids, np.int64)
        inside = np.isin(healed, ids)
        thr = in_mask_threshold(grey.astype(np.float32, copy=False)[inside])
        del inside
        three_phase_blocks(self.labels, self.grey, self.dst, split=ids, threshold=thr,
                           spacing=sp, block_shape=self.block_shape, halo=self.halo,
                           client=self.client, progress=self.progress,
                           memory_limit=self.memory_limit)
        table = crack_rows_blocks(self.labels, self.grey, self.boxes, split=ids,
                                  threshold=thr, spacing=sp, block_shape=self.block_shape,
                                  client=self.client, progress=self.progress)
        pv, _ = crack_volume_pv(grey, healed, ids, reference=reference, spacing=sp, fine=fine)
        for c in PV_COLUMNS:
            table[c] = pv[c].to_numpy()
        return None, table, thr
