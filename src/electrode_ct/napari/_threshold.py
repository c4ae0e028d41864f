"""Widget 1, segment by threshold: method, live histogram with the cuts, slice preview, apply.

The cut values come from :func:`electrode_ct.segment.threshold.threshold_values` on the
whole image; the preview labels the current slice with those cuts
(:func:`~electrode_ct.segment.threshold.threshold` with ``manual`` cuts, or
``hysteresis`` with the two cuts); Apply runs
:func:`~electrode_ct.segment.threshold.threshold` on the volume in a worker thread and
adds the phase labels with their class map (0 pore, 1 cbd, 2 active for three classes).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Container, FloatSpinBox, LineEdit, PushButton, SpinBox

from electrode_ct.napari._common import LayerPicker, current_z, show_layer
from electrode_ct.napari._jobs import JobPanel, Progress
from electrode_ct.volume import Volume

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
        self.method = ComboBox(label="method", choices=list(METHODS), value="multiotsu")
        self.classes = SpinBox(label="classes", value=3, min=2, max=8)
        self.thresholds = LineEdit(label="thresholds", value="")
        self.fractions = LineEdit(label="fractions", value="")
        self.offset = FloatSpinBox(label="offset", value=0.0, min=-1e9, max=1e9, step=1.0)
        self.preview_button = PushButton(text="Preview slice")
        self.apply_button = PushButton(text="Apply to volume")
        self.jobs = JobPanel()
        self.histogram = HistogramCanvas()
        super().__init__(widgets=[self.image, self.method, self.classes, self.thresholds,
                                  self.fractions, self.offset, self.preview_button,
                                  self.apply_button, self.jobs])
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
                                                                    max_voxels=1_000_000))
        self.update_cuts()

    def update_cuts(self, *_: Any) -> np.ndarray | None:
        """Cut values of the current options on the whole image, drawn on the histogram."""
        from electrode_ct.segment.threshold import threshold_values

        self.cuts = None
        if self.image.layer is None:
            return None
        try:
            opts = self.options()
            self.cuts = threshold_values(self._grey().numpy(), **opts)
        except Exception as exc:  # a half-typed option: say why, keep the old view
            self.jobs.fail(exc)
            return None
        self.histogram.set_cuts(self.cuts)
        return self.cuts

    def preview(self, *_: Any) -> Any:
        """Label the current slice with the cut values (a 2-D preview layer)."""
        from electrode_ct.segment.classes import class_map
        from electrode_ct.segment.threshold import threshold

        cuts = self.update_cuts()
        if cuts is None:
            return None
        vol = self._grey()
        z = current_z(self.viewer, vol)
        method = "hysteresis" if self.method.value == "hysteresis" else "manual"
        lab = threshold(np.asarray(vol.data[z]), method=method, thresholds=list(cuts))[None]
        origin = (vol.origin[0] + z * vol.spacing[0], *vol.origin[1:])
        return show_layer(self.viewer, PREVIEW, lab,
                          like=Volume(lab, spacing=vol.spacing, origin=origin),
                          class_map=class_map(len(cuts) + 1), opacity=0.5)

    def apply(self, *_: Any) -> Any:
        """Threshold the whole volume in a worker thread; the phases appear as labels."""
        from electrode_ct.segment.classes import class_map
        from electrode_ct.segment.threshold import threshold

        cuts = self.update_cuts()
        if cuts is None:
            return None
        vol, opts = self._grey(), self.options()
        n = 2 if opts["method"] == "hysteresis" else len(cuts) + 1

        def job(progress: Progress) -> tuple[np.ndarray, Volume]:
            for _ in progress(range(1)):
                data = vol.numpy()
            return threshold(data, **opts), vol

        def done(result: tuple[np.ndarray, Volume]) -> None:
            lab, like = result
            show_layer(self.viewer, RESULT, lab, like=like, class_map=class_map(n),
                       recipe=segment_recipe(like, opts, cuts))

        return self.jobs.start(job, done, title="threshold")
