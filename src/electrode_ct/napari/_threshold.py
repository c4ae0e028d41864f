"""Widget 1, segment by threshold: method, live histogram with the cuts, slice preview, apply.

The live cut values on the histogram come from
:func:`electrode_ct.segment.threshold.threshold_values` on the histogram's sample (the whole
image up to a million voxels). Preview and Apply run in a worker thread and compute the
cuts on the whole image: the preview labels the current slice with them
(:func:`~electrode_ct.segment.threshold.threshold` with ``manual`` cuts, or
``hysteresis`` with the two cuts); Apply runs
:func:`~electrode_ct.segment.threshold.threshold` on the volume and adds the phase labels
with their class map (0 pore, 1 cbd, 2 active for three classes).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Container, FloatSpinBox, LineEdit, PushButton, SpinBox

from electrode_ct.napari._common import LayerPicker, current_z, show_layer
from electrode_ct.napari._engine import EngineControls, threshold_on_engine
from electrode_ct.napari._jobs import JobPanel, Progress
from electrode_ct.volume import Volume

SAMPLE_VOXELS = 1_000_000
"""Voxels of the histogram's sample (live cut values are computed on it)."""
PREVIEW = "threshold preview"
RESULT = "phases"


class HistogramCanvas:
    """A matplotlib histogram of a grey sample with the cut values drawn as lines."""

    def __init__(self) -> None:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(3.2, 1.8), tight_layout=True)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.axes = self.figure.add_subplot()
        self.sample: np.ndarray | None = None
        self.lines: list[Any] = []

    def set_sample(self, sample: np.ndarray | None) -> None:
        """Draw the histogram of a grey sample (None clears it)."""
        self.axes.clear()
        self.lines = []
        self.sample = sample
        if sample is not None and sample.size:
            self.axes.hist(sample.ravel(), bins=128, color="#4a6fa5")
            self.axes.set_yscale("log")
        self.axes.set_xlabel("grey level", fontsize=8)
        self.axes.tick_params(labelsize=7)
        self.canvas.draw_idle()

    def set_cuts(self, cuts: np.ndarray | list[float]) -> None:
        """Move the cut lines to ``cuts`` (grey levels)."""
        for line in self.lines:
            line.remove()
        self.lines = [self.axes.axvline(float(c), color="#d04040", lw=1.2) for c in cuts]
        self.canvas.draw_idle()


def _floats(text: str, name: str) -> list[float] | None:
    from electrode_ct.cli._argv import parse_floats

    return list(parse_floats(text, name=name)) if text.strip() else None


def _classes(opts: dict[str, Any], cuts: np.ndarray) -> dict[str, int]:
    """Class map of a threshold result: 0 pore … by grey level (hysteresis: 2 classes)."""
    from electrode_ct.segment.classes import class_map

    return class_map(2 if opts["method"] == "hysteresis" else len(cuts) + 1)


def segment_recipe(grey: Volume, opts: dict[str, Any], cuts: np.ndarray) -> dict[str, Any]:
    """The pipeline's segment step that reproduces a threshold run (``ect run``).

    The pipeline has no offset: with one, the (offset) cut values are given as manual
    thresholds (as ``low high`` for hysteresis).
    """
    params: dict[str, Any] = {"method": "threshold", "threshold_method": opts["method"]}
    if opts.get("offset"):
        params.update(threshold_method="hysteresis" if opts["method"] == "hysteresis"
                      else "manual", thresholds=[float(c) for c in cuts])
    else:
        params.update({k: opts[k] for k in ("classes", "thresholds", "fractions")
                       if opts.get(k) is not None})
    return {"step": "segment", "params": params, "grey": grey.source,
            "voxel_size": list(grey.spacing)}


class ThresholdWidget(Container):
    """Segment a grey layer by a global threshold (see the module docstring)."""

    def __init__(self, napari_viewer: Any) -> None:
        from electrode_ct.segment.threshold import METHODS

        self.viewer = napari_viewer
        self.image = LayerPicker(napari_viewer, "image", label="image")
        self.method = ComboBox(label="method", choices=list(METHODS), value="otsu")
        self.classes = SpinBox(label="classes", value=3, min=2, max=8)
        self.thresholds = LineEdit(label="thresholds", value="")
        self.fractions = LineEdit(label="fractions", value="")
        self.offset = FloatSpinBox(label="offset", value=0.0, min=-1e9, max=1e9, step=1.0)
        self.preview_button = PushButton(text="Preview slice")
        self.apply_button = PushButton(text="Apply to volume")
        self.engine = EngineControls("threshold")
        self.jobs = JobPanel()
        self.histogram = HistogramCanvas()
        super().__init__(widgets=[self.image, self.method, self.classes, self.thresholds,
                                  self.fractions, self.offset, self.preview_button,
                                  *self.engine.widgets, self.apply_button, self.jobs])
        self.native.layout().addWidget(self.histogram.canvas)
        self.cuts: np.ndarray | None = None
        self.image.changed.connect(self._new_image)
        for w in (self.method, self.classes, self.thresholds, self.fractions, self.offset):
            w.changed.connect(self.update_cuts)
        self.preview_button.changed.connect(self.preview)
        self.apply_button.changed.connect(self.apply)
        self.image.reset_choices()
        self._new_image()

    def options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`threshold` from the controls."""
        m = self.method.value
        fractions = _floats(self.fractions.value, "fractions") if m == "fraction" else None
        return {"method": m, "classes": self.classes.value if m == "multiotsu" else None,
                "thresholds": _floats(self.thresholds.value, "thresholds"),
                "fractions": fractions,
                "offset": float(self.offset.value)}

    def _grey(self) -> Volume:
        return self.image.volume("image")

    def _new_image(self, *_: Any) -> None:
        from electrode_ct.inspect import sample

        layer = self.image.layer
        self.histogram.set_sample(None if layer is None else sample(self._grey(),
                                                                    max_voxels=SAMPLE_VOXELS))
        self.update_cuts()

    def update_cuts(self, *_: Any) -> np.ndarray | None:
        """Live cut values of the current options on the histogram's sample.

        The sample is the whole image up to :data:`SAMPLE_VOXELS` voxels (a regular
        sub-sample beyond); Preview and Apply compute the cuts on the whole image.
        """
        from electrode_ct.segment.threshold import threshold_values

        self.cuts = None
        sample = self.histogram.sample
        if self.image.layer is None or sample is None:
            return None
        try:
            self.cuts = threshold_values(sample, **self.options())
        except Exception as exc:  # a half-typed option: say why, keep the old view
            self.jobs.fail(exc)
            return None
        self.histogram.set_cuts(self.cuts)
        return self.cuts

    def _run(self, work: Any, show: Any, *, title: str) -> Any:
        """Whole-image cuts then ``work(data, cuts, opts)`` in a worker; ``show`` the result."""
        from electrode_ct.segment.threshold import threshold_values

        try:
            vol, opts = self._grey(), self.options()
        except Exception as exc:
            self.jobs.fail(exc)
            return None

        def job(progress: Progress) -> tuple[Any, np.ndarray]:
            steps = iter(progress(range(2)))
            next(steps)
            data = vol.numpy()
            cuts = threshold_values(data, **opts)
            next(steps)
            result = work(data, cuts, opts)
            list(steps)
            return result, cuts

        def done(result: tuple[Any, np.ndarray]) -> None:
            self.cuts = result[1]
            self.histogram.set_cuts(self.cuts)
            show(vol, opts, *result)

        return self.jobs.start(job, done, title=title)

    def preview(self, *_: Any) -> Any:
        """Label the current slice with the whole image's cuts (a one-slice layer)."""
        from electrode_ct.segment.threshold import threshold

        method = "hysteresis" if self.method.value == "hysteresis" else "manual"
        try:
            z = current_z(self.viewer, self._grey())
        except Exception as exc:
            self.jobs.fail(exc)
            return None

        def work(data: np.ndarray, cuts: np.ndarray, _: Any) -> np.ndarray:
            return threshold(data[z], method=method, thresholds=list(cuts))[None]

        def show(vol: Volume, opts: dict[str, Any], lab: np.ndarray, cuts: np.ndarray) -> None:
            origin = (vol.origin[0] + z * vol.spacing[0], *vol.origin[1:])
            show_layer(self.viewer, PREVIEW, lab,
                       like=Volume(lab, spacing=vol.spacing, origin=origin),
                       class_map=_classes(opts, cuts), opacity=0.5)

        return self._run(work, show, title="threshold preview")

    def apply(self, *_: Any) -> Any:
        """Threshold the whole volume in a worker thread; the phases appear as labels.

        Above the engine threshold (and for every method but 3-D hysteresis, which labels
        by connectivity) the volume is thresholded block by block on the out-of-core
        engine into an OME-Zarr, shown as a lazy layer.
        """
        from electrode_ct.segment.threshold import threshold

        def work(data: np.ndarray, _: np.ndarray, opts: dict[str, Any]) -> np.ndarray:
            return threshold(data, **opts)

        def show(vol: Volume, opts: dict[str, Any], lab: Any, cuts: np.ndarray) -> None:
            show_layer(self.viewer, RESULT, lab, like=vol, class_map=_classes(opts, cuts),
                       recipe=segment_recipe(vol, opts, cuts))

        try:
            vol, opts = self._grey(), self.options()
            engine = self.engine.use_engine(vol) and opts["method"] != "hysteresis"
        except Exception as exc:
            self.jobs.fail(exc)
            return None
        if not engine:
            return self._run(work, show, title="threshold")
        out, cfg = self.engine.out_path(RESULT), self.engine.config()

        def job(progress: Progress) -> tuple[Any, np.ndarray]:
            return threshold_on_engine(vol, out, cfg, opts, progress)

        def done(result: tuple[Any, np.ndarray]) -> None:
            self.cuts = result[1]
            self.histogram.set_cuts(self.cuts)
            show(vol, opts, *result)

        return self.jobs.start(job, done, title="threshold (engine)")
