"""Operando tracking: register every state, propagate reference ids, clean, measure."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from electrode_ct.errors import InputError, ShapeError
from electrode_ct.labels import check_labels
from electrode_ct.measure.intensity import measure_grey
from electrode_ct.operando.calibrate import (
    apply_calibration,
    calibrate_state,
    region_masks,
    region_peaks,
)
from electrode_ct.operando.clean import clean_tracks
from electrode_ct.operando.propagate import otsu_foreground, propagate_labels
from electrode_ct.operando.register import Rigid, register_rigid
from electrode_ct.stats import TRACKING_KEY

TIMESERIES_COLUMNS = ("label", "state", "grey_n", "grey_mean", "grey_std", "roi_mean",
                      "roi_n", "sem")


@dataclass
class TrackResult:
    """Labels, transforms, cleaning flags and grey tables of every state.

    Attributes
    ----------
    labels : list of numpy.ndarray
        uint32 labels of every state in its own space, carrying the reference ids.
    transforms : list of Rigid
        Reference → state transforms (identity for the reference).
    registration : list of dict
        Per state: transform report and the foreground method/threshold.
    cleaning : pandas.DataFrame
        :func:`electrode_ct.operando.clean.clean_tracks` flags per reference particle.
    tables : list of pandas.DataFrame
        Per-state grey tables (:func:`electrode_ct.measure.intensity.grey_table`).
    reference : int
        Index of the reference state.
    spacing : tuple of float
        Voxel size (z, y, x) in µm.
    reference_id : str
        :func:`labels_id` of the reference labels, the identity in every stamp.
    """

    labels: list[np.ndarray]
    transforms: list[Rigid]
    registration: list[dict[str, Any]]
    cleaning: pd.DataFrame
    tables: list[pd.DataFrame]
    reference: int = 0
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    reference_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def kept(self) -> np.ndarray:
        """Ids of the particles tracked consistently through every state."""
        return self.cleaning.loc[self.cleaning["kept"], "label"].to_numpy()

    @property
    def n_tracked(self) -> int:
        """Number of particles kept after cleaning."""
        return int(self.cleaning["kept"].sum())

    def stamp(self, state: int | None = None) -> dict[str, Any]:
        """The tracking stamp of a table of this result (``state`` None: all states).

        Written under :data:`electrode_ct.stats.TRACKING_KEY` in a table's provenance, it
        lets :func:`electrode_ct.stats.pairing` pair tables by label: ``tracked``,
        ``reference_id`` (:func:`labels_id` of the reference labels), ``reference_state``,
        ``state`` and ``n_states``.
        """
        return {"tracked": True, "reference_id": self.reference_id,
                "reference_state": int(self.reference), "state": state,
                "n_states": len(self.labels)}

    def state_tables(self, *, kept_only: bool = True) -> list[pd.DataFrame]:
        """Per-state grey tables (kept particles by default), each carrying its stamp."""
        ids = self.kept
        out = []
        for i, t in enumerate(self.tables):
            t = t[t["label"].isin(ids)].reset_index(drop=True) if kept_only else t.copy()
            t.attrs["electrode_ct"] = {TRACKING_KEY: self.stamp(i)}
            out.append(t)
        return out

    def timeseries(self) -> pd.DataFrame:
        """Long per-particle time series: one row per (label, state) with cleaning flags.

        Columns: :data:`TIMESERIES_COLUMNS` then the cleaning flags
        (``present_all``, ``inconsistent``, ``neighbour_of_inconsistent``, ``border``,
        ``kept``, ``volume_change_max``) of the particle.
        """
        parts = []
        for i, t in enumerate(self.tables):
            cols = [c for c in TIMESERIES_COLUMNS if c in t.columns]
            part = t[cols].copy()
            part.insert(1, "state", i)
            parts.append(part)
        ts = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
            columns=list(TIMESERIES_COLUMNS))
        flags = self.cleaning.drop(columns=["n_voxels_ref"])
        ts = ts.merge(flags, on="label", how="right")
        ts["state"] = ts["state"].fillna(-1).astype(np.int64)
        return ts.sort_values(["label", "state"]).reset_index(drop=True)


def labels_id(labels: np.ndarray) -> str:
    """SHA-256 of a label volume's shape, dtype and bytes (slab by slab along z).

    Two tables are paired only when their stamps carry the same id: the particles were
    propagated from the same reference label volume.
    """
    arr = np.ascontiguousarray(labels)
    h = hashlib.sha256(f"{arr.shape}|{arr.dtype.str}".encode())
    flat = arr.reshape(arr.shape[0], -1) if arr.ndim else arr.reshape(1, -1)
    step = max(1, (1 << 26) // max(flat[0].nbytes, 1))
    for z in range(0, flat.shape[0], step):
        h.update(flat[z:z + step].tobytes())
    return h.hexdigest()


def _foreground(i: int, grey: np.ndarray, phases: Sequence[Any] | None,
                phase_value: int | None) -> tuple[np.ndarray, dict[str, Any]]:
    if phases is not None and phases[i] is not None:
        p = np.asarray(getattr(phases[i], "data", phases[i]))
        if p.shape != grey.shape:
            if p.size == grey.size:
                p = p.reshape(grey.shape)
            else:
                raise ShapeError(f"phases {i}: shape {p.shape} differs from grey {grey.shape}")
        if p.dtype == bool or phase_value is None:
            return p.astype(bool) if p.dtype == bool else p == p.max(), {"foreground": "phases"}
        return p == phase_value, {"foreground": "phases", "phase_value": int(phase_value)}
    fg, t = otsu_foreground(grey)
    return fg, {"foreground": "otsu", "threshold": t}


def track(
    ref_labels: np.ndarray,
    greys: Sequence[np.ndarray],
    *,
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
    phases: Sequence[Any] | None = None,
    phase_value: int | None = None,
    reference: int = 0,
    metric: str = "mi",
    exclude_layers: int = 5,
    volume_tolerance: float = 0.2,
    drop_border: bool = True,
    min_correlation: float = 0.3,
    calibrate: Sequence[int | str] | None = None,
) -> TrackResult:
    """Track reference particles through a series of states.

    Parameters
    ----------
    ref_labels : numpy.ndarray
        Particle ids of the reference state (uint32, 0 = background), in the space of
        ``greys[reference]``.
    greys : sequence of numpy.ndarray
        Grey volume of every state (same shape), reference included.
    spacing : tuple of float
        Voxel size (z, y, x) in µm.
    phases : sequence, optional
        Per state: a boolean particle mask or a phase volume (``phase_value`` selects the
        active phase; without it the highest value). Default: Otsu's threshold on each
        state's grey (the reference's method).
    phase_value : int, optional
        Value of the active phase in ``phases``.
    reference : int
        Index of the reference state.
    metric : {"mi", "correlation"}
        Registration metric.
    exclude_layers : int
        Outer layers left out of ``roi_mean``.
    volume_tolerance : float
        Relative voxel-count change beyond which a particle is inconsistent.
    drop_border : bool
        Drop particles touching the volume faces in any state.
    min_correlation : float
        A state whose registered correlation is lower is reported as not registered.
    calibrate : sequence of int or "background", optional
        Reference regions of the grey-level calibration
        (:func:`electrode_ct.operando.calibrate.region_masks`: phase values of ``phases``,
        or ``"background"``). Each state's grey is mapped onto the reference's scale by
        its region peaks before it is measured; the drift is in ``registration[i]
        ["calibration"]``.

    Returns
    -------
    TrackResult

    Raises
    ------
    ShapeError
        Label and grey shapes differ.
    electrode_ct.operando.register.RegistrationError
        A state cannot be registered (no transform is invented).
    """
    ref = check_labels(ref_labels, name="reference labels")
    if ref.ndim == 2:
        ref = ref[None]
    if len(greys) < 2:
        raise InputError(f"track: expected at least 2 states, got {len(greys)}")
    if not 0 <= reference < len(greys):
        raise InputError(f"reference: state {reference} does not exist (0..{len(greys) - 1})")
    gs = []
    for i, g in enumerate(greys):
        g = np.asarray(getattr(g, "data", g))
        g = g[None] if g.ndim == 2 else g
        if g.shape != ref.shape:
            raise ShapeError(f"grey {i}: shape {g.shape} differs from the reference labels "
                             f"{ref.shape}")
        gs.append(g)
    cals = _calibrations(gs, phases, calibrate, reference)  # a bad region fails first
    labels: list[np.ndarray] = []
    transforms: list[Rigid] = []
    reports: list[dict[str, Any]] = []
    for i, g in enumerate(gs):
        if i == reference:
            labels.append(ref.astype(np.uint32))
            transforms.append(Rigid.identity(ref.shape, spacing))
            reports.append({"state": i, "reference": True, **transforms[-1].report()})
            continue
        rigid = register_rigid(gs[reference], g, spacing=spacing, metric=metric,
                               min_correlation=min_correlation, name=f"state {i}")
        fg, how = _foreground(i, g, phases, phase_value)
        labels.append(propagate_labels(ref, fg, rigid, spacing=spacing))
        transforms.append(rigid)
        reports.append({"state": i, "reference": False, **rigid.report(), **how})
    others = [lab for i, lab in enumerate(labels) if i != reference]
    cleaning = clean_tracks(ref, others, volume_tolerance=volume_tolerance,
                            drop_border=drop_border)
    for rep, cal in zip(reports, cals, strict=True):
        if cal is not None:
            rep["calibration"] = cal
    tables = [measure_grey(lab, apply_calibration(g, cal), spacing=spacing,
                           exclude_layers=exclude_layers)[0]
              for lab, g, cal in zip(labels, gs, cals, strict=True)]
    return TrackResult(labels, transforms, reports, cleaning, tables, reference, spacing,
                       labels_id(ref))


def _calibrations(greys: Sequence[np.ndarray], phases: Sequence[Any] | None,
                  regions: Sequence[int | str] | None, reference: int) -> list[dict | None]:
    """Per state: its calibration against the reference (None without ``regions``)."""
    if not regions:
        return [None] * len(greys)

    def phase(i: int) -> np.ndarray | None:
        return None if phases is None else np.asarray(getattr(phases[i], "data", phases[i]))

    ref_peaks = region_peaks(greys[reference], region_masks(
        greys[reference], phase(reference), regions, state=reference))
    return [calibrate_state(ref_peaks, g, phase(i), regions, state=i)
            for i, g in enumerate(greys)]
