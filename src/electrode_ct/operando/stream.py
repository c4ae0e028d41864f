"""Operando tracking at full size: states streamed one at a time, propagation in blocks.

:func:`track_streamed` gives the result of :func:`~electrode_ct.operando.track.track`
without holding two states at once:

- **Registration** (:func:`register_streamed`): a rigid registration of block-mean
  down-sampled copies (factor ``f``: a voxel of the copy is the mean of ``f³`` voxels, its
  centre ``(f - 1) / 2`` voxels from the first one's), refined at full resolution on a few
  crops spread along the volume's diagonal, each started from the coarse transform; the
  refined transforms are expressed about one centre and averaged. The down-sampled
  reference is the only thing kept between states.
- **Propagation** (:func:`propagate_blocks`): today's seeded watershed
  (:func:`~electrode_ct.operando.propagate.propagate_labels`' rule) block by block, each
  block reading its region plus a halo of at least the largest particle's extent, and the
  reference labels of the region's pre-image only. A particle within 2 voxels of a block's read
  border (not a volume face) is an error naming it and the halo it needs.
- **Tables**: per state, today's grey table and cleaning flags (the cleaning reads the
  states' labels back one at a time).

With a Dask client the propagation blocks run as one task each
(:func:`electrode_ct.compute.engine.run_blocks`, inputs and outputs as Zarr).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from electrode_ct.blocks import Block
from electrode_ct.compute.engine import Source, ZarrRef, run_blocks
from electrode_ct.errors import InputError, ShapeError
from electrode_ct.operando.calibrate import region_masks, region_peaks
from electrode_ct.operando.register import Rigid, register_rigid, resample

COARSE_VOXELS = 128**3
"""Default down-sampling makes the registration copy at most about this many voxels."""

REFINE_BLOCKS = 3
"""Full-resolution crops refining the coarse registration."""

REFINE_EDGE = 96
"""Edge (voxels) of a refinement crop (clipped to the volume)."""

BYTES_PER_VOXEL = 64.0
"""Working memory of one propagation block per voxel of its read region: the state's
region, the moved labels, seeds (int64), two distance maps (float32) and the watershed's
own arrays (58 bytes measured with tracemalloc on a 48 × 72 × 72 uint8 state)."""


def check_states(shapes: Sequence[Sequence[int]], spacings: Sequence[Sequence[float]],
                 names: Sequence[str]) -> None:
    """Refuse states whose shape or voxel size differ from the first one's (the
    reference labels): one line naming both.

    Raises
    ------
    ShapeError
        A shape or a spacing differs (spacings compared to 1e-6 relative).
    """
    ref_shape, ref_sp = tuple(int(n) for n in shapes[0]), tuple(float(s) for s in spacings[0])
    for shape, sp, name in zip(shapes[1:], spacings[1:], names[1:], strict=True):
        if tuple(int(n) for n in shape) != ref_shape:
            raise ShapeError(f"{name}: shape {tuple(int(n) for n in shape)} differs from the "
                             f"shape {ref_shape} of {names[0]}; every state must have the "
                             "reference's shape")
        if not np.allclose(sp, ref_sp, rtol=1e-6, atol=0):
            raise ShapeError(f"{name}: voxel size {tuple(float(s) for s in sp)} µm differs "
                             f"from the voxel size {ref_sp} µm of {names[0]}; resample the "
                             "states to one grid first")


def coarse_factor(shape: Sequence[int], *, target: int = COARSE_VOXELS) -> int:
    """Down-sampling factor making a copy of ``shape`` at most ``target`` voxels.

    Examples
    --------
    >>> coarse_factor((1024, 1024, 1024)), coarse_factor((48, 72, 72))
    (8, 1)
    """
    return max(1, math.ceil((math.prod(int(n) for n in shape) / target) ** (1 / 3)))


def downsample_mean(array: Any, factor: int, *, slab_voxels: int = 1 << 24) -> np.ndarray:
    """float32 block means of ``factor³`` voxels (trailing partial blocks dropped), read
    slab by slab from any array-like (numpy, memmap, Zarr, dask)."""
    f = int(factor)
    nz, ny, nx = (int(n) // f for n in array.shape)
    out = np.empty((nz, ny, nx), np.float32)
    step = max(1, slab_voxels // max(1, ny * nx * f**3))
    for z in range(0, nz, step):
        k = min(step, nz - z)
        slab = np.asarray(array[z * f:(z + k) * f, :ny * f, :nx * f], np.float32)
        out[z:z + k] = slab.reshape(k, f, ny, f, nx, f).mean(axis=(1, 3, 5))
    return out


def move_centre(rigid: Rigid, centre_um: Sequence[float]) -> Rigid:
    """The same transform about another centre (x, y, z µm):
    ``t' = t + (R - I)(c' - c)``."""
    t = rigid.sitk()
    rot = np.asarray(t.GetMatrix()).reshape(3, 3)
    c, c2 = np.asarray(rigid.centre_um), np.asarray(centre_um, float)
    shift = np.asarray(rigid.parameters[3:]) + (rot - np.eye(3)) @ (c2 - c)
    return Rigid([*rigid.parameters[:3], *shift.tolist()], [float(v) for v in c2],
                 rigid.metric, rigid.correlation, rigid.iterations)


def _shifted(rigid: Rigid, delta_um_xyz: Sequence[float]) -> Rigid:
    """``rigid`` seen from a frame whose origin is ``delta`` µm (x, y, z) away."""
    return Rigid(list(rigid.parameters), [c + d for c, d in zip(rigid.centre_um, delta_um_xyz,
                                                                strict=True)],
                 rigid.metric, rigid.correlation, rigid.iterations)


def refine_boxes(shape: Sequence[int], n: int = REFINE_BLOCKS,
                 edge: int = REFINE_EDGE) -> list[tuple[slice, ...]]:
    """``n`` crops of ``edge`` voxels (clipped) centred along the volume's diagonal at
    ``(k + 1) / (n + 1)`` of its extent.

    Examples
    --------
    >>> refine_boxes((100, 20, 200), 1, 32)
    [(slice(34, 66, None), slice(0, 20, None), slice(84, 116, None))]
    """
    out = []
    for k in range(n):
        box = []
        for m in (int(v) for v in shape):
            e = min(edge, m)
            start = min(max(0, round(m * (k + 1) / (n + 1)) - e // 2), m - e)
            box.append(slice(start, start + e))
        out.append(tuple(box))
    return out


def register_streamed(ref_small: np.ndarray, ref_grey: Any, moving: Any, *,
                      spacing: tuple[float, float, float], factor: int,
                      metric: str = "mi", min_correlation: float = 0.3,
                      refine: int = REFINE_BLOCKS, edge: int = REFINE_EDGE,
                      name: str = "state") -> Rigid:
    """Register a state: coarse on down-sampled copies, refined on full-resolution crops.

    Parameters
    ----------
    ref_small : numpy.ndarray
        :func:`downsample_mean` of the reference grey by ``factor``.
    ref_grey, moving : array-like
        Reference and state grey volumes (read by crops only).
    spacing : tuple of float
        Voxel size (z, y, x) in µm.
    factor : int
        Down-sampling factor (1: the coarse step runs at full resolution).
    metric, min_correlation, name
        As :func:`~electrode_ct.operando.register.register_rigid`.
    refine, edge : int
        Number and edge (voxels) of the refinement crops (0: no refinement).

    Returns
    -------
    Rigid
        Reference → state transform about the volume's centre (µm, SimpleITK order).
    """
    sp = tuple(float(s) for s in spacing)
    coarse_sp = tuple(s * factor for s in sp)
    small = downsample_mean(moving, factor) if factor > 1 else np.asarray(moving, np.float32)
    coarse = register_rigid(ref_small, small, spacing=coarse_sp, metric=metric,
                            min_correlation=min_correlation, shrink=(2, 1), name=name)
    shape = tuple(int(n) for n in ref_grey.shape)
    full = _shifted(coarse, [(factor - 1) / 2 * s for s in sp[::-1]])
    centre = Rigid.identity(shape, sp).centre_um
    full = move_centre(full, centre)
    if refine <= 0 or factor == 1:
        return full
    found = []
    for box in refine_boxes(shape, refine, edge):
        delta = [-b.start * s for b, s in zip(box[::-1], sp[::-1], strict=True)]
        start = _shifted(full, delta)
        rig = register_rigid(np.asarray(ref_grey[box]), np.asarray(moving[box]), spacing=sp,
                             metric=metric, min_correlation=min_correlation, shrink=(1,),
                             initial=start, name=f"{name} (crop {box[0].start}, "
                                                  f"{box[1].start}, {box[2].start})")
        back = _shifted(rig, [-d for d in delta])
        found.append(move_centre(back, centre))
    params = np.mean([r.parameters for r in found], axis=0)
    return Rigid(params.tolist(), list(centre), float(np.mean([r.metric for r in found])),
                 float(np.mean([r.correlation for r in found])),
                 int(sum(r.iterations for r in found)))


def _open(src: Source) -> Any:
    return src.open("r") if isinstance(src, ZarrRef) else src


def preimage(rigid: Rigid, read: Sequence[slice], shape: Sequence[int],
             spacing: Sequence[float], margin: int = 2) -> tuple[slice, ...]:
    """Box of the reference (voxels) that a state region ``read`` maps from (``rigid``
    maps reference → state), grown by ``margin`` voxels and clipped to ``shape``."""
    t = rigid.sitk()
    sp = np.asarray(spacing, float)
    corners = np.array(np.meshgrid(*[(s.start, s.stop - 1) for s in read],
                                   indexing="ij")).reshape(3, -1).T
    inv = t.GetInverse()
    pts = np.array([inv.TransformPoint((c[::-1] * sp[::-1]).tolist())[::-1] for c in corners])
    lo = np.floor(pts.min(axis=0) / sp).astype(int) - margin
    hi = np.ceil(pts.max(axis=0) / sp).astype(int) + margin + 1
    return tuple(slice(int(max(0, a)), int(min(n, max(b, 0))))
                 for a, b, n in zip(lo, hi, shape, strict=True))


@dataclass(frozen=True)
class PropagateBlock:
    """Block function of :func:`propagate_blocks` (picklable for Dask workers).

    ``region`` is the state's grey (foreground ``grey > threshold``), its phase volume
    (``== value``) or its particle mask (non-zero).
    """

    ref: Source
    rigid: Rigid | None
    spacing: tuple[float, float, float]
    shape: tuple[int, int, int]
    halo: tuple[int, int, int]
    threshold: float | None = None
    value: int | None = None
    core_um: float | None = None

    def foreground(self, region: np.ndarray) -> np.ndarray:
        """``grey > threshold``, ``phases == value``, or a mask's non-zero voxels."""
        if self.threshold is not None:
            return region > self.threshold
        return region == self.value if self.value is not None else region.astype(bool)

    def __call__(self, region: np.ndarray, block: Block) -> np.ndarray:
        from electrode_ct.cracks.blockwise import check_reach
        from electrode_ct.operando.propagate import watershed_seeds

        fg = self.foreground(region)
        ref = _open(self.ref)
        if self.rigid is None:
            moved = np.asarray(ref[block.read]).astype(np.uint32)
        else:
            box = preimage(self.rigid, block.read, self.shape, self.spacing)
            moved = resample(np.asarray(ref[box]).astype(np.uint32), self.rigid,
                             shape=fg.shape, spacing=self.spacing, order=0, inverse=True,
                             offset=block.offset,
                             moving_offset=tuple(s.start for s in box))
        check_reach(moved, block, self.shape, (2, 2, 2), self.halo)
        return block.crop(watershed_seeds(moved, fg, spacing=self.spacing,
                                          core_um=self.core_um))


def propagate_blocks(ref_labels: Source, state: Source, rigid: Rigid | None,
                     dst: ZarrRef | np.ndarray, *, spacing: tuple[float, float, float],
                     block_shape: Sequence[int], halo: Sequence[int],
                     threshold: float | None = None, value: int | None = None,
                     client: Any = None, core_um: float | None = None) -> None:
    """Today's label propagation, block by block (see the module docstring).

    Parameters
    ----------
    ref_labels : ZarrRef or array-like
        Reference particle ids (the state's grid).
    state : ZarrRef or array-like
        The state's grey (with ``threshold``), phase volume (with ``value``) or mask.
    rigid : Rigid or None
        Reference → state transform (None: aligned).
    dst : ZarrRef or numpy.ndarray
        uint32 output of the state's shape.
    spacing, block_shape, halo, threshold, value, client, core_um
        Voxel size (µm); blocks and halo (voxels); foreground threshold or phase value;
        Dask client; seed depth (µm, default the largest voxel edge).

    Raises
    ------
    InputError
        A particle within 2 voxels of a block's read border (halo too small).
    """
    shape = tuple(int(n) for n in _open(state).shape)
    func = PropagateBlock(ref_labels, rigid, tuple(float(s) for s in spacing), shape,
                          tuple(int(h) for h in halo), threshold, value, core_um)
    run_blocks(func, state, dst, block_shape=block_shape, halo=halo, client=client)


def particle_halo(ref_labels: Any) -> tuple[int, int, int]:
    """Halo (voxels) reaching every particle: the largest box extent over all labels + 2
    (a rigid motion may turn a particle: the largest extent is used on every axis)."""
    from electrode_ct.cracks.blockwise import reach
    from electrode_ct.labels import label_boxes

    ext = max(reach(label_boxes(np.asarray(ref_labels)), margin=2))
    return (ext, ext, ext)


class StoredStates(Sequence[np.ndarray]):
    """The propagated labels of every state, read back one at a time on access."""

    def __init__(self, items: list[ZarrRef | np.ndarray]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> np.ndarray:  # type: ignore[override]
        item = self.items[i]
        arr = item.open("r")[...] if isinstance(item, ZarrRef) else item
        return np.asarray(arr).astype(np.uint32, copy=False)

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(len(self)))


def new_labels(work: Path | None, name: str, shape: tuple[int, ...],
               block_shape: Sequence[int]) -> ZarrRef | np.ndarray:
    """A uint32 label output: a Zarr store in ``work`` (chunks = blocks), else memory."""
    if work is None:
        return np.zeros(shape, np.uint32)
    import zarr

    path = Path(work) / f"{name}.zarr"
    zarr.open(str(path), mode="w", shape=shape, chunks=tuple(int(b) for b in block_shape),
              dtype=np.uint32)
    return ZarrRef(str(path))


def _state_foreground(i: int, grey: np.ndarray, phases: Sequence[Source] | None,
                      phase_value: int | None) -> tuple[Source, dict[str, Any], dict[str, Any]]:
    """The source the blocks read, their foreground rule and the report entries of a
    state (the rule of :func:`~electrode_ct.operando.track.track`)."""
    from electrode_ct.operando.propagate import otsu_foreground

    if phases is not None and phases[i] is not None:
        p = _open(phases[i])
        if p.dtype == bool:
            return phases[i], {}, {"foreground": "phases"}
        if phase_value is None:
            return phases[i], {"value": int(np.max(p))}, {"foreground": "phases"}
        return phases[i], {"value": int(phase_value)}, {"foreground": "phases",
                                                          "phase_value": int(phase_value)}
    _, t = otsu_foreground(grey)
    return None, {"threshold": t}, {"foreground": "otsu", "threshold": t}


@dataclass
class StreamPlan:
    """How :func:`track_streamed` runs: blocks, halo, down-sampling, refinement, engine.

    Attributes
    ----------
    block_shape : tuple of int, optional
        Propagation blocks (voxels; default: the whole volume in one block).
    halo : tuple of int, optional
        Propagation halo (voxels; default :func:`particle_halo`).
    factor : int, optional
        Registration down-sampling (default :func:`coarse_factor`; 1 registers at full
        resolution exactly as :func:`~electrode_ct.operando.track.track`).
    refine, edge : int
        Refinement crops and their edge (voxels).
    client : distributed.Client, optional
        Runs the propagation blocks on Dask (sources then must be :class:`ZarrRef`).
    work : pathlib.Path, optional
        Folder for the states' label stores (default: kept in memory).
    transforms : list of Rigid, optional
        Given reference → state transforms (no registration).
    """

    block_shape: tuple[int, ...] | None = None
    halo: tuple[int, ...] | None = None
    factor: int | None = None
    refine: int = REFINE_BLOCKS
    edge: int = REFINE_EDGE
    client: Any = None
    work: Path | None = None
    transforms: list[Rigid] | None = None


def track_streamed(ref_labels: Source, greys: Sequence[Source], *,
                   spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
                   phases: Sequence[Source] | None = None, phase_value: int | None = None,
                   reference: int = 0, metric: str = "mi", exclude_layers: int = 5,
                   volume_tolerance: float = 0.2, drop_border: bool = True,
                   min_correlation: float = 0.3, plan: StreamPlan | None = None,
                   calibrate: Sequence[int | str] | None = None) -> Any:
    """:func:`~electrode_ct.operando.track.track`, one state in memory at a time
    (``calibrate``: as there; the reference grey is read once more for its peaks).

    Parameters are those of :func:`~electrode_ct.operando.track.track`, with inputs as
    Zarr references or lazy arrays, and ``plan`` (:class:`StreamPlan`).

    Returns
    -------
    TrackResult
        ``labels`` is a :class:`StoredStates` (read back on access).
    """
    from electrode_ct.measure.intensity import measure_grey
    from electrode_ct.operando.calibrate import apply_calibration, calibrate_state
    from electrode_ct.operando.clean import clean_tracks
    from electrode_ct.operando.track import TrackResult, labels_id

    plan = plan or StreamPlan()
    ref_arr = _open(ref_labels)
    shape = tuple(int(n) for n in ref_arr.shape)
    if not 0 <= reference < len(greys) or len(greys) < 2:
        raise InputError(f"reference: state {reference} of {len(greys)} states (need >= 2)")
    blocks = tuple(plan.block_shape or shape)
    halo = tuple(plan.halo or particle_halo(ref_arr))
    factor = plan.factor or coarse_factor(shape)
    ref_grey = _open(greys[reference])
    ref_small = downsample_mean(ref_grey, factor) if factor > 1 else None
    ref_peaks = _reference_peaks(ref_grey, phases, calibrate, reference)
    labels, transforms, reports, tables = [], [], [], []
    for i, src in enumerate(greys):
        grey = np.asarray(_open(src))  # the one state in memory
        if i == reference:
            rigid: Rigid | None = None
            transforms.append(Rigid.identity(shape, spacing))
            reports.append({"state": i, "reference": True, **transforms[-1].report()})
        else:
            rigid = _register(i, ref_small, ref_grey, grey, spacing, factor, metric,
                              min_correlation, plan)
            transforms.append(rigid)
        if i == reference:
            out: ZarrRef | np.ndarray = ref_labels if isinstance(ref_labels, ZarrRef) \
                else np.asarray(ref_arr)
        else:
            fg_src, rule, how = _state_foreground(i, grey, phases, phase_value)
            out = new_labels(plan.work, f"labels_{i}", shape, blocks)
            state = fg_src if fg_src is not None else (src if plan.client else grey)
            propagate_blocks(ref_labels, state, rigid, out, spacing=spacing,
                             block_shape=blocks, halo=halo, client=plan.client, **rule)
            reports.append({"state": i, "reference": False, **rigid.report(), **how})
        labels.append(out)
        lab = StoredStates([out])[0]
        cal = None if ref_peaks is None else calibrate_state(
            ref_peaks, grey, None if phases is None else np.asarray(_open(phases[i])),
            calibrate, state=i)
        if cal is not None:
            reports[-1]["calibration"] = cal
        tables.append(measure_grey(lab, apply_calibration(grey, cal), spacing=spacing,
                                   exclude_layers=exclude_layers)[0])
        del grey, lab
    states = StoredStates(labels)
    ref_ids = np.asarray(ref_arr[...])
    others = StoredStates([item for i, item in enumerate(labels) if i != reference])
    cleaning = clean_tracks(ref_ids, others, volume_tolerance=volume_tolerance,
                            drop_border=drop_border)
    return TrackResult(states, transforms, reports, cleaning, tables, reference,
                       tuple(spacing), labels_id(ref_ids))


def _reference_peaks(ref_grey: Any, phases: Sequence[Source] | None,
                     regions: Sequence[int | str] | None, reference: int) -> Any:
    """The reference state's calibration peaks (None without ``regions``)."""
    if not regions:
        return None
    grey = np.asarray(ref_grey)
    ph = None if phases is None else np.asarray(_open(phases[reference]))
    return region_peaks(grey, region_masks(grey, ph, regions, state=reference))


def _register(i: int, ref_small: np.ndarray | None, ref_grey: Any, grey: np.ndarray,
              spacing: tuple[float, float, float], factor: int, metric: str,
              min_correlation: float, plan: StreamPlan) -> Rigid:
    """A state's transform: given, full-resolution (factor 1) or streamed."""
    if plan.transforms is not None:
        return plan.transforms[i]
    if ref_small is None:
        return register_rigid(np.asarray(ref_grey), grey, spacing=spacing, metric=metric,
                              min_correlation=min_correlation, name=f"state {i}")
    return register_streamed(ref_small, ref_grey, grey, spacing=spacing, factor=factor,
                             metric=metric, min_correlation=min_correlation,
                             refine=plan.refine, edge=plan.edge, name=f"state {i}")
