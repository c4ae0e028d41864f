"""Particle separation on the block engine, stitched by ownership (no label merging).

Touching particles make stitching by merging labels across block faces over-merge and
cut. Here every block instead reads its interior plus a halo at least one particle
diameter plus the healing reach wide, runs :func:`~electrode_ct.particles.separate_particles`
unchanged on that read region, and keeps only the particles it *owns*: those whose first
voxel (in raster order, z then y then x) lies in its interior. Every particle has exactly
one first voxel, so it is owned by exactly one block; with the halo rule its whole body
and its neighbours' cuts lie inside the owner's read region and come out as in memory.

1. Size estimate (unless a halo is given): the maximum ``r`` of the phase's distance
   transform, one small reduction with a bounded halo; halo = ``2 r`` + the widest
   healing width + the smoothing radius (:func:`particle_halo`).
2. Decisions (healing only): the re-split and the choice between the two healing widths
   compare each particle with the medians of the volume's particles. Those medians are
   reduced over the owned particles of every block first (exact: the union of the owned
   particles is the volume's particle set) and handed to every block
   (:class:`~electrode_ct.particles.separate.Decisions`), so no block decides on its own
   sample. Each decision is one more pass over the blocks; the first stores each block's
   watersheds at both widths (``work/watersheds``) and the later passes load them
   (:func:`stored_watershed`): seeding and flooding run once per width, not up to 3 times.
3. Phase 1: each block separates its read region, checks that no owned particle reaches
   the read region's border (other than a face of the volume: an error naming the
   particle's voxel and the halo to use, never a silent cut) and stores its owned
   particles (a uint32 crop and their first voxels) in ``work/owned``.
4. Ids: all first voxels sorted give ids 1..n in raster order of first voxels, which is
   the order :func:`~electrode_ct.particles.relabel_sequential` gives in memory, so both
   paths write the same array. More than 2³² - 1 particles is an error before any write.
5. Phase 2: each output block pastes the owned particles of the blocks whose stored crop
   overlaps it (only it writes its chunks: no race between blocks). Two blocks claiming
   one voxel (blocks that disagree) is an error.

Phase connected components (pore clusters, carbon-binder clusters) need no ownership:
6-connectivity is exact by the face-merge + union-find of part 1,
:func:`~electrode_ct.metrics.components_blockwise.components_blockwise`, re-exported here
as :func:`components_blockwise` (one implementation).

Resumable: a block's stored particles are reused by a rerun with the same work folder,
and the output blocks carry the engine's markers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from electrode_ct.blocks import Block, block_grid
from electrode_ct.compute.engine import (
    Progress,
    Source,
    ZarrRef,
    check_blocks,
    default_block_shape,
    reduce_blocks,
    run_blocks,
)
from electrode_ct.errors import InputError
from electrode_ct.metrics.components_blockwise import components_blockwise
from electrode_ct.particles.separate import (
    Decisions,
    Watershed,
    _distance_run,
    _Run,
    distance_hypotheses,
    distance_watershed,
    healed_score,
    separate_particles,
)
from electrode_ct.particles.shape import fill_ratio, particle_solidity

__all__ = ["ParticleSettings", "components_blockwise", "estimate_diameter_um", "global_ids",
           "particle_halo", "plan_particle_blocks", "separate_blockwise"]

MAX_ID = 2**32 - 1
"""Largest particle id of the uint32 output."""

BYTES_PER_VOXEL = 100.0
"""Working memory of one block's separation per voxel of its read region: 51 bytes traced
by ``tracemalloc`` on an 80³ region of the synthetic electrode (47 with healing), doubled
for the buffers ITK and ``edt`` allocate outside it (docs/particles.md)."""

BLOCK_SHARE = 0.5
"""Share of a worker's memory one block's read region may take at :data:`BYTES_PER_VOXEL`
(a quarter for the other operators): one task runs per worker thread, the measured peak is
68 bytes per voxel (psutil RSS, a healed 200³ region), so half the memory at 100 bytes
leaves a 3× margin, and halving the halo's redundant work matters here most (the halo is
a particle diameter wide; docs/particles.md)."""

ESTIMATE_HALO = 32
"""Halo (voxels) of the size estimate: it sees particle radii up to this many voxels."""

ELONGATION = 2.0
"""Longest extent of a particle over the diameter of its largest inscribed ball assumed by
the halo estimate (the synthetic electrodes' particles reach 1.8; a longer particle is
an error naming the halo to give)."""


@dataclass(frozen=True)
class ParticleSettings:
    """What a block needs to separate its region as :func:`separate_particles` would.

    Attributes
    ----------
    value : int or None
        Label value of the particle phase; ``None`` for a boolean mask or a probability
        map (thresholded at 0.5).
    spacing : (float, float, float)
        Voxel size (z, y, x) in µm.
    heal_cracks_um, h, min_volume_um3, compactness, smooth, resplit, heal_alternative
        As :func:`~electrode_ct.particles.separate_particles` (method ``distance``).
    """

    value: int | None
    spacing: tuple[float, float, float]
    heal_cracks_um: float = 0.0
    h: float | None = None
    min_volume_um3: float = 0.0
    compactness: float = 0.0
    smooth: float = 1.0
    resplit: bool = True
    heal_alternative: float = 1.25

    def mask(self, region: np.ndarray) -> np.ndarray:
        """The particle phase of a region (bool)."""
        if self.value is not None:
            return region == self.value
        return region if region.dtype == bool else region >= 0.5

    @property
    def h_um(self) -> float:
        """Seed height in µm (default: the largest voxel size, as in memory)."""
        return float(max(self.spacing) if self.h is None else self.h)

    @property
    def reach_um(self) -> float:
        """Widest healing width used (µm)."""
        alt = self.heal_alternative if self.heal_alternative > 1 else 1.0
        return self.heal_cracks_um * alt

    def margin(self) -> int:
        """Voxels beyond the particle the result depends on: the Gaussian radius + 1."""
        return int(4.0 * self.smooth + 0.5) + 1

    def run_settings(self) -> dict[str, Any]:
        """The keywords of one healing width's run (``_distance_run``) but the medians."""
        return {"spacing": self.spacing, "h_um": self.h_um, "smooth": self.smooth,
                "compactness": self.compactness, "resplit": self.resplit,
                "min_volume_um3": self.min_volume_um3}

    def separate(self, mask: np.ndarray, decisions: Decisions | None,
                 watershed: Watershed | None = None,
                 first: Callable[[], _Run] | None = None) -> np.ndarray:
        """uint32 labels of a region's mask (all zero when it has no phase voxel);
        ``watershed`` and ``first`` hand over the watersheds and the given width's run an
        earlier pass stored."""
        if not mask.any():
            return np.zeros(mask.shape, np.uint32)
        if watershed is not None:
            return distance_hypotheses(mask, self.heal_cracks_um,
                                       heal_alternative=self.heal_alternative,
                                       given=decisions or Decisions(), watershed=watershed,
                                       first=first, **self.run_settings()).labels
        return separate_particles(
            mask, spacing=self.spacing, heal_cracks_um=self.heal_cracks_um, h=self.h,
            min_volume_um3=self.min_volume_um3, compactness=self.compactness,
            smooth=self.smooth, resplit=self.resplit, heal_alternative=self.heal_alternative,
            decisions=decisions).labels


@dataclass
class BlockwiseResult:
    """What a blockwise separation found.

    Attributes
    ----------
    n_particles : int
        Particles written (ids 1..n).
    n_border : int
        Of those, particles touching a face of the volume.
    n_removed_border : int
        Particles dropped for touching a face (``remove_border``).
    halo : tuple of int
        Halo used (voxels per axis).
    block_shape : tuple of int
        Blocks used (voxels).
    decisions : Decisions
        Volume-wide medians given to the blocks.
    """

    n_particles: int
    n_border: int
    n_removed_border: int
    halo: tuple[int, ...]
    block_shape: tuple[int, ...]
    decisions: Decisions = field(default_factory=Decisions)


def particle_halo(diameter_um: float, settings: ParticleSettings) -> tuple[int, int, int]:
    """Halo (voxels per axis) for particles up to ``diameter_um``: the diameter plus the
    widest healing width, in voxels of each axis, plus the smoothing radius."""
    reach = diameter_um + settings.reach_um
    return tuple(int(math.ceil(reach / s)) + settings.margin()  # type: ignore[return-value]
                 for s in settings.spacing)


def _peak(settings: ParticleSettings) -> Any:
    from electrode_ct.particles.seeding import distance_map

    def peak(region: np.ndarray, block: Block) -> float:
        mask = settings.mask(region)
        if not mask[block.interior].any():
            return 0.0
        return float(block.crop(distance_map(mask, settings.spacing)).max())
    return peak


def estimate_diameter_um(src: Source, settings: ParticleSettings, *,
                         block_shape: Sequence[int], client: Any = None,
                         progress: Progress | None = None) -> float:
    """Estimated largest particle diameter (µm): :data:`ELONGATION` times the diameter of
    the largest ball inside the phase (twice the largest distance of a phase voxel to the
    background), one reduction with a halo of :data:`ESTIMATE_HALO` voxels.

    Raises
    ------
    InputError
        The phase is thicker than the estimate can see (give the halo instead).
    """
    hb = tuple(min(ESTIMATE_HALO, int(b)) for b in block_shape)
    parts = reduce_blocks(_peak(settings), src, block_shape=block_shape, halo=hb,
                          client=client, progress=progress)
    radius = max(parts, default=0.0)
    seen = min(h * s for h, s in zip(hb, settings.spacing, strict=True))
    if radius >= seen:
        raise InputError(f"halo: the particle phase is thicker than the size estimate sees "
                         f"(radius >= {seen:.4g} µm with blocks {tuple(block_shape)}); give "
                         f"the halo (--halo, µm or voxels) of at least the largest particle "
                         f"diameter plus {settings.reach_um:.4g} µm")
    return ELONGATION * 2.0 * radius


def plan_particle_blocks(cfg: Any, shape: Sequence[int], halo: Sequence[int]
                         ) -> tuple[int, ...]:
    """Blocks for the separation: ``cfg.block_shape``, else cubes from the memory budget
    grown to at least the halo; refused before any work when they cannot work."""
    from electrode_ct.pipeline.compute import plan_blocks

    if cfg.block_shape is not None:
        return plan_blocks(cfg, shape, halo, BYTES_PER_VOXEL)
    limit = cfg.worker_memory()
    # default_block_shape budgets a quarter of the memory it is given: half the worker's
    base = default_block_shape(shape, halo=halo, bytes_per_voxel=BYTES_PER_VOXEL,
                               memory_limit=int(limit * 4 * BLOCK_SHARE))
    blocks = tuple(min(int(n), max(int(b), -(-int(h) // 32) * 32))
                   for b, h, n in zip(base, halo, shape, strict=True))
    check_blocks(shape, blocks, halo, bytes_per_voxel=BYTES_PER_VOXEL, memory_limit=limit)
    return blocks


def _too_small(pos: tuple[int, ...], block: Block, halo: Sequence[int], extent: int,
               settings: ParticleSettings) -> InputError:
    need = max(2 * max(halo), extent + int(math.ceil(settings.reach_um / min(settings.spacing)))
               + settings.margin())
    need_um = need * min(settings.spacing)
    return InputError(f"halo: the particle at voxel {pos} reaches the border of the region "
                      f"block {block.index} reads (halo {tuple(halo)} voxels): give a halo of "
                      f"at least {need} voxels ({need_um:.4g} µm)")


def owned(labels: np.ndarray, block: Block, shape: Sequence[int], halo: Sequence[int],
          settings: ParticleSettings) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Any]]:
    """The particles of a read region that ``block`` owns, in raster order of first voxel.

    Returns
    -------
    ids : numpy.ndarray of int64
        Their labels in ``labels``.
    first : numpy.ndarray of int64
        Raster index (in the volume) of their first voxel.
    border : numpy.ndarray of bool
        Whether each touches a face of the volume.
    boxes : list of tuple of slice
        Their bounding boxes in ``labels``.

    Raises
    ------
    InputError
        An owned particle reaches the read region's border inside the volume.
    """
    from scipy import ndimage as ndi

    off, rows = block.offset, []
    for i, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:
            continue
        plane = labels[box[0].start, box[1], box[2]] == i
        y, x = np.unravel_index(int(np.argmax(plane)), plane.shape)
        pos = (off[0] + box[0].start, off[1] + box[1].start + int(y),
               off[2] + box[2].start + int(x))
        if not all(w.start <= p < w.stop for p, w in zip(pos, block.write, strict=True)):
            continue
        lo = [b.start == 0 for b in box]
        hi = [b.stop == n for b, n in zip(box, labels.shape, strict=True)]
        if any((lo[a] and block.read[a].start > 0) or (hi[a] and block.read[a].stop < shape[a])
               for a in range(3)):
            extent = max(b.stop - b.start for b in box)
            raise _too_small(pos, block, halo, extent, settings)
        face = any((lo[a] and block.read[a].start == 0) or (hi[a] and block.read[a].stop
                                                             == shape[a]) for a in range(3))
        rows.append((int(np.ravel_multi_index(pos, tuple(shape))), i, face, box))
    rows.sort(key=lambda r: r[0])
    return (np.array([r[1] for r in rows], np.int64), np.array([r[0] for r in rows], np.int64),
            np.array([r[2] for r in rows], bool), [r[3] for r in rows])


def _medians(parts: list[np.ndarray]) -> tuple[float, float] | None:
    """Median solidity and fill ratio over every block's owned particles (None: < 2)."""
    both = np.concatenate([p for p in parts if p.size] or [np.zeros((0, 2))])
    if both.shape[0] < 2:
        return None
    return float(np.median(both[:, 0])), float(np.median(both[:, 1]))


def _owned_values(labels: np.ndarray, whole: np.ndarray, score: np.ndarray, block: Block,
                  shape: Sequence[int], halo: Sequence[int],
                  settings: ParticleSettings) -> np.ndarray:
    """(solidity of ``whole``, fill ratio of ``labels``) of the owned particles, (k, 2)."""
    ids = owned(labels, block, shape, halo, settings)[0]
    keep = np.zeros(int(labels.max(initial=0)) + 1, bool)
    keep[ids] = True
    sp = settings.spacing
    sol = particle_solidity(np.where(keep[whole], whole, 0), spacing=sp)
    fill = fill_ratio(np.where(keep[labels], labels, 0), score, spacing=sp)[0]
    return np.stack([sol[ids], fill[ids]], axis=1) if ids.size else np.zeros((0, 2))


def _store_path(folder: Path, kind: str, block: Block, what: Any) -> Path:
    """The file of a block's stored ``kind`` of result: its name digests ``what`` (the
    inputs besides the mask) and the block's read region."""
    import hashlib

    key = hashlib.blake2b(repr((*what, block.read)).encode(), digest_size=8).hexdigest()
    return folder / f"{kind}_{_name(block)[:-4]}_{key}.npz"


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Write compressed arrays to ``path`` atomically (a temporary file, then a rename)."""
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def stored_watershed(mask: np.ndarray, block: Block, settings: ParticleSettings,
                     folder: Path | None) -> Watershed:
    """The block's :func:`~electrode_ct.particles.separate.distance_watershed` at a healing
    width, computed once and stored in ``folder`` (None: computed every time).

    With healing the blocks are separated in up to four passes (two decisions, then the
    separation); each pass needs the same watersheds of the same read region. The first
    pass stores the watershed labels (compressed int32, ~0.1 byte per voxel) and the seed
    count; later passes load them and recompute only the healed mask's distance map (the
    same floats), so the seeding and the flooding run once per width instead of up to
    three times. The file name digests the settings, width and read region.
    """
    sp, smooth = settings.spacing, settings.smooth

    def at(width: float) -> tuple[np.ndarray, np.ndarray, int]:
        if folder is None:
            labels, score, markers = distance_watershed(
                mask, width, spacing=sp, h_um=settings.h_um, smooth=smooth,
                compactness=settings.compactness)
            return labels, score, int(markers.max())
        path = _store_path(folder, "ws", block, (settings, width))
        if path.exists():
            stored = np.load(path)
            score = healed_score(mask, width, spacing=sp, smooth=smooth)[1]
            return stored["labels"], score, int(stored["n_markers"])
        labels, score, n_markers = stored_watershed(mask, block, settings, None)(width)
        _save_npz(path, labels=labels, n_markers=np.int64(n_markers))
        return labels, score, n_markers
    return at


def stored_first(mask: np.ndarray, block: Block, settings: ParticleSettings,
                 folder: Path | None, given: Decisions) -> Callable[[], _Run]:
    """The block's run at the given healing width (watershed, re-split with the medians
    ``given.resplit``, cut back), computed once and stored in ``folder``.

    The choice pass computes it for the medians of the choice, and phase 1 needs the same
    run (the same mask, watershed and medians): it loads the labels and the healed-region
    labels (compressed, ~0.1 byte per voxel each) and takes the distance map from
    :func:`stored_watershed`, so the re-split, the slowest per-particle step, runs once
    per block instead of twice. The file name digests the settings, medians and region.
    """
    width = settings.heal_cracks_um
    watershed = stored_watershed(mask, block, settings, folder)

    def get() -> _Run:
        if folder is None:
            return _distance_run(mask, width, medians=given.resplit, watershed=watershed,
                                 **settings.run_settings())
        path = _store_path(folder, "first", block, (settings, given.resplit))
        if path.exists():
            f = np.load(path)
            counts = [int(c) for c in f["counts"]]
            return _Run(f["labels"], f["whole"], watershed(width)[1], *counts)
        run = stored_first(mask, block, settings, None, given)()
        _save_npz(path, labels=run.labels, whole=run.whole, counts=np.array(
            [run.n_small, run.n_markers, run.n_resplit, run.n_rehealed], np.int64))
        return run
    return get


def _resplit_part(settings: ParticleSettings, width: float, shape: Sequence[int],
                  halo: Sequence[int], folder: Path | None) -> Any:
    def part(region: np.ndarray, block: Block) -> np.ndarray:
        mask = settings.mask(region)
        if not mask.any():
            return np.zeros((0, 2))
        labels, score, _ = stored_watershed(mask, block, settings, folder)(width)
        return _owned_values(labels, labels, score, block, shape, halo, settings)
    return part


def _choose_part(settings: ParticleSettings, given: Decisions, shape: Sequence[int],
                 halo: Sequence[int], folder: Path | None) -> Any:
    def part(region: np.ndarray, block: Block) -> np.ndarray:
        mask = settings.mask(region)
        if not mask.any():
            return np.zeros((0, 2))
        first = stored_first(mask, block, settings, folder, given)()
        return _owned_values(first.labels, first.whole, first.score, block, shape, halo,
                             settings)
    return part


def decide(src: Source, settings: ParticleSettings, *, block_shape: Sequence[int],
           halo: Sequence[int], client: Any = None, progress: Progress | None = None,
           folder: Path | None = None) -> Decisions:
    """The volume-wide medians of the healing decisions, reduced over owned particles.

    Nothing to decide without healing (an empty :class:`Decisions`). With ``folder`` the
    blocks' watersheds are stored there for the later passes (:func:`stored_watershed`).
    """
    s = settings
    if s.heal_cracks_um <= 0:
        return Decisions()
    shape = tuple(int(n) for n in (src.open("r") if isinstance(src, ZarrRef) else src).shape)
    run = {"block_shape": block_shape, "halo": halo, "client": client, "progress": progress}
    widths = [s.heal_cracks_um] + ([s.heal_alternative * s.heal_cracks_um]
                                   if s.heal_alternative > 1 else [])
    resplit = [_medians(reduce_blocks(_resplit_part(s, w, shape, halo, folder), src, **run))
               if s.resplit else None for w in widths]
    given = Decisions(resplit=resplit[0], resplit_wider=resplit[-1] if len(widths) > 1
                      else None)
    if len(widths) < 2:
        return given
    choose = _medians(reduce_blocks(_choose_part(s, given, shape, halo, folder), src, **run))
    return Decisions(given.resplit, given.resplit_wider, choose)


def _name(block: Block) -> str:
    return "_".join(str(i) for i in block.index) + ".npz"


def _store(path: Path, labels: np.ndarray, block: Block, ids: np.ndarray,
           boxes: list[Any]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Write the owned particles' crop (local ids 1..k in order) atomically; its origin
    and shape in the volume."""
    if not ids.size:
        origin, crop = tuple(s.start for s in block.write), np.zeros((0, 0, 0), np.uint32)
    else:
        lo = [min(b[a].start for b in boxes) for a in range(3)]
        hi = [max(b[a].stop for b in boxes) for a in range(3)]
        lut = np.zeros(int(labels.max()) + 1, np.uint32)
        lut[ids] = np.arange(1, ids.size + 1, dtype=np.uint32)
        crop = lut[labels[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]]
        origin = tuple(o + a for o, a in zip(block.offset, lo, strict=True))
    _save_npz(path, crop=crop, origin=np.array(origin, np.int64))
    return origin, crop.shape


def _phase1(settings: ParticleSettings, decisions: Decisions, shape: Sequence[int],
            halo: Sequence[int], folder: Path, stored: Path | None) -> Any:
    def part(region: np.ndarray, block: Block) -> dict[str, Any]:
        path = folder / _name(block)
        done = folder / (_name(block) + ".json")
        if done.exists():  # resumed: this block's particles are stored
            import json

            return {k: np.asarray(v) if k in ("first", "border") else v
                    for k, v in json.loads(done.read_text()).items()}
        mask = settings.mask(region)
        labels = settings.separate(
            mask, decisions, None if stored is None else
            stored_watershed(mask, block, settings, stored), None if stored is None else
            stored_first(mask, block, settings, stored, decisions))
        ids, first, border, boxes = owned(labels, block, shape, halo, settings)
        origin, size = _store(path, labels, block, ids, boxes)
        out = {"first": first, "border": border, "origin": list(origin), "shape": list(size),
               "n_phase": int(np.count_nonzero(mask[block.interior]))}
        _mark(done, out)
        return out
    return part


def _mark(done: Path, out: dict[str, Any]) -> None:
    import json

    tmp = done.with_suffix(".tmp")
    tmp.write_text(json.dumps({k: np.asarray(v).tolist() for k, v in out.items()}))
    os.replace(tmp, done)


def global_ids(parts: list[dict[str, Any]], *, remove_border: bool = False,
               max_id: int = MAX_ID) -> tuple[np.ndarray, int, int]:
    """Global id of every owned particle, blocks concatenated in order: 1..n by raster
    order of first voxels (0: dropped for touching a face with ``remove_border``).

    Returns
    -------
    ids : numpy.ndarray of uint32
    n_border, n_removed : int
        Kept particles touching a face; particles dropped.

    Raises
    ------
    InputError
        More than ``max_id`` particles: the ids do not fit the uint32 output.
    """
    first = np.concatenate([np.asarray(p["first"], np.int64) for p in parts] or
                           [np.zeros(0, np.int64)])
    border = np.concatenate([np.asarray(p["border"], bool) for p in parts] or
                            [np.zeros(0, bool)])
    keep = ~border if remove_border else np.ones(first.size, bool)
    n = int(keep.sum())
    if n > max_id:
        raise InputError(f"labels: {n} particles after composition exceed the uint32 ids of "
                         f"the output (at most {max_id}); separate a sub-volume or raise "
                         f"--min-volume-um3")
    kept = np.flatnonzero(keep)
    ids = np.zeros(first.size, np.uint32)
    ids[kept[np.argsort(first[kept], kind="stable")]] = np.arange(1, n + 1, dtype=np.uint32)
    return ids, int((border & keep).sum()), int(first.size - n)


def _overlap(origin: Sequence[int], size: Sequence[int], block: Block
             ) -> tuple[tuple[slice, ...], tuple[slice, ...]] | None:
    """Slices into the crop and into the block where they overlap (None: they do not)."""
    src, dst = [], []
    for o, n, w in zip(origin, size, block.write, strict=True):
        lo, hi = max(o, w.start), min(o + n, w.stop)
        if lo >= hi:
            return None
        src.append(slice(lo - o, hi - o))
        dst.append(slice(lo - w.start, hi - w.start))
    return tuple(src), tuple(dst)


def _phase2(folder: Path, entries: list[tuple[str, list[int], list[int], int, int]]) -> Any:
    def paste(region: np.ndarray, block: Block) -> np.ndarray:
        out = np.zeros(block.shape, np.uint32)
        ids = np.load(folder / "ids.npy", mmap_mode="r")
        for name, origin, size, start, count in entries:
            where = _overlap(origin, size, block) if count else None
            if where is None:
                continue
            lut = np.concatenate([[0], ids[start:start + count]]).astype(np.uint32)
            vals = lut[np.load(folder / name)["crop"][where[0]]]
            target = out[where[1]]
            hit = vals > 0
            if (target[hit] > 0).any():
                raise InputError(f"halo: blocks disagree on particles in block {block.index} "
                                 f"(voxels claimed twice); give a larger halo")
            target[hit] = vals[hit]
        return out
    return paste


def separate_blockwise(src: Source, dst: ZarrRef | np.ndarray, *,
                       settings: ParticleSettings, work: Path, block_shape: Sequence[int],
                       halo: int | Sequence[int] | None = None, client: Any = None,
                       progress: Progress | None = None, remove_border: bool = False,
                       resume: bool = True) -> BlockwiseResult:
    """Separate the particles of a phase volume block by block, by ownership.

    Parameters
    ----------
    src : ZarrRef or numpy.ndarray
        Phase labels (``settings.value`` picks the phase) or a particle probability map,
        (z, y, x).
    dst : ZarrRef or numpy.ndarray
        uint32 output of the same shape (Zarr chunks dividing ``block_shape``).
    settings : ParticleSettings
        The separation's parameters (method ``distance``).
    work : pathlib.Path
        Folder for the blocks' owned particles (``work/owned``; on a file system every
        worker sees); kept for a resumed run, removable after. With healing also the
        blocks' watersheds between the passes (``work/watersheds``, ~0.1 byte per read
        voxel and width; removed at the end, :func:`stored_watershed`).
    block_shape : sequence of int
        Block (interior) shape in voxels, at least the halo.
    halo : int or sequence of int, optional
        Halo in voxels: at least the largest particle diameter plus the widest healing
        width plus the smoothing radius. Default: from :func:`estimate_diameter_um`.
    client, progress, resume
        As for :func:`~electrode_ct.compute.run_blocks`.
    remove_border : bool
        Drop the particles touching a face of the volume (rule ``touch``).

    Returns
    -------
    BlockwiseResult

    Raises
    ------
    InputError
        An owned particle reaches its read region's border (the message names its voxel
        and the halo to give), blocks disagree, more particles than uint32 ids, or no
        voxel of the phase (as in memory).
    """
    from electrode_ct.blocks import as_halo

    shape = tuple(int(n) for n in (src.open("r") if isinstance(src, ZarrRef) else src).shape)
    run = {"block_shape": block_shape, "client": client, "progress": progress}
    if halo is None:
        halo = particle_halo(estimate_diameter_um(src, settings, **run), settings)
    h = as_halo(halo, 3)
    check_blocks(shape, block_shape, h)
    folder, stored = Path(work) / "owned", Path(work) / "watersheds"
    for path in (folder, stored):
        path.mkdir(parents=True, exist_ok=True)
        for old in ([] if resume else path.iterdir()):
            old.unlink()
    heal = settings.heal_cracks_um > 0
    decisions = decide(src, settings, halo=h, folder=stored if heal else None, **run)
    parts = reduce_blocks(_phase1(settings, decisions, shape, h, folder,
                                  stored if heal else None), src, halo=h, **run)
    if not sum(int(p["n_phase"]) for p in parts):
        raise InputError(f"phases: no voxels of the requested phase "
                         f"{settings.value if settings.value is not None else '(mask)'}")
    ids, n_border, n_removed = global_ids(parts, remove_border=remove_border)
    np.save(folder / "ids.tmp.npy", ids)
    os.replace(folder / "ids.tmp.npy", folder / "ids.npy")
    entries, start = [], 0
    for b, p in zip(block_grid(shape, block_shape, h), parts, strict=True):
        count = len(p["first"])
        entries.append((_name(b), list(p["origin"]), list(p["shape"]), start, count))
        start += count
    run_blocks(_phase2(folder, entries), src, dst, resume=resume, **run)
    for old in stored.iterdir():  # kept until here for a resumed run
        old.unlink()
    return BlockwiseResult(int(ids.max(initial=0)), n_border, n_removed, h,
                           tuple(int(b) for b in block_shape), decisions)
