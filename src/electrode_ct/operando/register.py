"""Rigid registration of a state to the reference (SimpleITK Euler3D, multi-resolution)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from electrode_ct.errors import InputError

METRICS = ("mi", "correlation")

SAMPLING_SEED = 1
"""Seed of the metric's random voxel sample (SimpleITK reads 0 as "seed from the wall
clock", which made every run differ)."""

THREADS = 1
"""Threads of the registration: one, so the metric's sums are added in one order (Mattes
mutual information differs from run to run with more; its metric runs on SimpleITK's
global default thread count, which :func:`register_rigid` sets for its duration)."""


@contextmanager
def _sitk_threads(n: int) -> Iterator[None]:
    """SimpleITK's global default thread count set to ``n`` for the block's duration."""
    import SimpleITK as sitk

    old = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(n)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(old)


class RegistrationError(InputError):
    """A state could not be registered to the reference (reported, never invented)."""


@dataclass
class Rigid:
    """A rigid transform from reference space to a state's space (SimpleITK Euler3D).

    Attributes
    ----------
    parameters : list of float
        (angle_x, angle_y, angle_z) in radians and (t_x, t_y, t_z) in µm (SimpleITK order).
    centre_um : list of float
        Centre of rotation (x, y, z) in µm.
    metric : float
        Final metric value (lower is better).
    correlation : float
        Pearson correlation of reference and resampled state over their overlap.
    iterations : int
        Optimiser iterations at the finest level.
    """

    parameters: list[float]
    centre_um: list[float]
    metric: float = float("nan")
    correlation: float = float("nan")
    iterations: int = 0

    def sitk(self) -> Any:
        """The SimpleITK ``Euler3DTransform``."""
        import SimpleITK as sitk

        t = sitk.Euler3DTransform()
        t.SetCenter(self.centre_um)
        t.SetParameters(self.parameters)
        return t

    def report(self) -> dict[str, Any]:
        """JSON-ready summary: shift (z, y, x) in µm, angles in degrees, metric, correlation."""
        ax, ay, az, tx, ty, tz = self.parameters
        return {"shift_um_zyx": [tz, ty, tx],
                "angles_deg_xyz": [float(np.degrees(a)) for a in (ax, ay, az)],
                "centre_um_xyz": list(self.centre_um), "metric": self.metric,
                "correlation": self.correlation, "iterations": self.iterations}

    @classmethod
    def from_report(cls, rep: dict[str, Any]) -> Rigid:
        """The transform back from :meth:`report` (as written in registration.json and the
        pipeline's track summary)."""
        ax, ay, az = (float(np.radians(a)) for a in rep["angles_deg_xyz"])
        tz, ty, tx = (float(v) for v in rep["shift_um_zyx"])
        return cls([ax, ay, az, tx, ty, tz], [float(v) for v in rep["centre_um_xyz"]],
                   float(rep.get("metric", np.nan)), float(rep.get("correlation", np.nan)),
                   int(rep.get("iterations", 0)))

    @classmethod
    def identity(cls, shape: tuple[int, ...], spacing: tuple[float, ...]) -> Rigid:
        """The identity transform centred on a volume of ``shape`` (z, y, x)."""
        centre = [(n - 1) * s / 2.0 for n, s in zip(shape[::-1], spacing[::-1], strict=True)]
        return cls([0.0] * 6, centre, 0.0, 1.0, 0)


def to_sitk(array: np.ndarray, spacing: tuple[float, ...],
            offset: tuple[int, ...] | None = None) -> Any:
    """A SimpleITK image of a (z, y, x) array with spacing (z, y, x) in µm; ``offset``
    (voxels, z, y, x) places a crop of a larger volume at its position (origin in µm)."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(array))
    _place(img, spacing, offset)
    return img


def _place(img: Any, spacing: tuple[float, ...], offset: tuple[int, ...] | None) -> None:
    """Set a SimpleITK image's spacing and its origin at ``offset`` voxels (z, y, x)."""
    img.SetSpacing([float(s) for s in spacing[::-1]])
    if offset is not None:
        img.SetOrigin([float(o) * float(s) for o, s in zip(offset[::-1], spacing[::-1],
                                                           strict=True)])


def _as3d(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise InputError(f"{name}: expected a 3-D volume for registration, got shape {a.shape}")
    return a


def register_rigid(
    reference: np.ndarray,
    moving: np.ndarray,
    *,
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
    metric: str = "mi",
    shrink: tuple[int, ...] = (4, 2, 1),
    iterations: int = 200,
    initial: Rigid | None = None,
    min_correlation: float = 0.3,
    sampling: float = 0.2,
    name: str = "state",
) -> Rigid:
    """Rigidly register ``moving`` (a state) onto ``reference``.

    Parameters
    ----------
    reference, moving : numpy.ndarray
        Grey volumes (z, y, x), same spacing.
    spacing : tuple of float
        Voxel size (z, y, x) in µm.
    metric : {"mi", "correlation"}
        Mattes mutual information or normalised correlation.
    shrink : tuple of int
        Multi-resolution shrink factors (smoothing σ = factor / 2 voxels).
    iterations : int
        Maximum optimiser iterations per level.
    initial : Rigid, optional
        Starting transform (default: identity about the volume centre).
    min_correlation : float
        Below this correlation over the overlap the state is reported as not registered.
    sampling : float
        Fraction of voxels sampled (seeded) by the metric at each level.
    name : str
        The state's name, for messages.

    Returns
    -------
    Rigid
        Maps reference-space points (µm) to the state's space.

    Raises
    ------
    RegistrationError
        The optimiser fails or the result does not align the images.
    """
    import SimpleITK as sitk

    if metric not in METRICS:
        raise InputError(f"metric: expected one of {', '.join(METRICS)}, got {metric!r}")
    ref = _as3d(reference, "reference")
    mov = _as3d(moving, name)
    fixed = to_sitk(ref.astype(np.float32), spacing)
    moved = to_sitk(mov.astype(np.float32), spacing)
    start = initial or Rigid.identity(ref.shape, spacing)
    reg = sitk.ImageRegistrationMethod()
    reg.SetNumberOfThreads(THREADS)
    if metric == "mi":
        reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=48)
    else:
        reg.SetMetricAsCorrelation()
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(sampling, seed=SAMPLING_SEED)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=1.0, minStep=1e-4, numberOfIterations=int(iterations),
        relaxationFactor=0.6, gradientMagnitudeTolerance=1e-8)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel(list(shrink))
    reg.SetSmoothingSigmasPerLevel([f / 2.0 for f in shrink])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    reg.SetInitialTransform(start.sitk(), inPlace=False)
    try:
        with _sitk_threads(THREADS):
            out = reg.Execute(fixed, moved)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown error"
        raise RegistrationError(f"{name}: rigid registration failed ({first})") from None
    final = sitk.Euler3DTransform(out.GetNthTransform(0) if hasattr(out, "GetNthTransform")
                                  and out.GetName() == "CompositeTransform" else out)
    rigid = Rigid(list(final.GetParameters()), list(final.GetCenter()),
                  float(reg.GetMetricValue()), 0.0, int(reg.GetOptimizerIteration()))
    rigid.correlation = overlap_correlation(ref, resample(mov, rigid, shape=ref.shape,
                                                          spacing=spacing, order=1,
                                                          fill=np.nan))
    if not np.isfinite(rigid.correlation) or rigid.correlation < min_correlation:
        raise RegistrationError(
            f"{name}: cannot be registered to the reference (correlation "
            f"{rigid.correlation:.2f} < {min_correlation} after rigid registration)"
        )
    return rigid


def overlap_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two arrays where both are finite."""
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 10:
        return float("nan")
    x, y = a[ok].astype(np.float64), b[ok].astype(np.float64)
    x -= x.mean()
    y -= y.mean()
    den = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / den) if den > 0 else float("nan")


def resample(
    moving: np.ndarray,
    transform: Rigid,
    *,
    shape: tuple[int, ...],
    spacing: tuple[float, float, float],
    order: int = 1,
    fill: float = 0.0,
    inverse: bool = False,
    offset: tuple[int, ...] | None = None,
    moving_offset: tuple[int, ...] | None = None,
) -> np.ndarray:
    """Resample ``moving`` onto a grid of ``shape`` through a rigid transform.

    Parameters
    ----------
    moving : numpy.ndarray
        Volume (z, y, x) in the space the transform maps to.
    transform : Rigid
        Output-grid points → ``moving`` points (use ``inverse=True`` for the reverse).
    shape, spacing : tuple
        Output grid (z, y, x) and voxel size in µm.
    order : {0, 1}
        0 nearest neighbour (labels), 1 linear (grey).
    fill : float
        Value outside ``moving`` (NaN allowed for float output).
    inverse : bool
        Use the inverse transform.
    offset, moving_offset : tuple of int, optional
        Position (voxels, z, y, x) of the output grid and of ``moving`` when they are
        crops of larger volumes (default: both at the origin).

    Returns
    -------
    numpy.ndarray
        Same dtype as ``moving`` for ``order=0``, float32 otherwise.
    """
    import SimpleITK as sitk

    mov = _as3d(moving, "moving")
    t = transform.sitk()
    if inverse:
        t = t.GetInverse()
    src = to_sitk(mov if order == 0 else mov.astype(np.float32), spacing, moving_offset)
    ref = sitk.Image([int(s) for s in shape[::-1]], src.GetPixelID())
    _place(ref, spacing, offset)
    interp = sitk.sitkNearestNeighbor if order == 0 else sitk.sitkLinear
    out = sitk.Resample(src, ref, t, interp, float(fill) if order else 0.0)
    return sitk.GetArrayFromImage(out)
