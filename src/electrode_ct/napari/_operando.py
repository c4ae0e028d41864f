"""Widget 7, operando: the same particles across states of charge, ΔĪ per particle as colour.

*Track* runs :func:`electrode_ct.operando.track.track` (rigid registration of every state
to the reference, reference ids propagated) in a worker thread, then per state
:func:`electrode_ct.stats.paired` on the tracked tables (the particles kept through every
state): each particle's change ΔI of the chosen grey column versus the reference. The
results are stacked along a new first axis, so napari's slider over that axis is the state
slider: ``states`` (the grey of each state), ``tracked particles`` (each state's labels
in its own space, reference ids) and ``ΔĪ`` (each particle's ΔI painted into it, a
diverging colour map centred on 0).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Container, PushButton, Select, SpinBox

from electrode_ct.napari._common import LayerPicker, show_layer
from electrode_ct.napari._jobs import JobPanel, Progress, notify
from electrode_ct.volume import Volume

STATES, TRACKED, DELTA = "states", "tracked particles", "ΔĪ"


class OperandoWidget(Container):
    """Track particles through states and colour them by their change (module docstring)."""

    def __init__(self, napari_viewer: Any) -> None:
        self.viewer = napari_viewer
        self.states = Select(label="states (in order)", choices=self._images)
        self.reference = SpinBox(label="reference state", value=0, min=0, max=99)
        self.particles = LayerPicker(napari_viewer, "labels", label="reference particles")
        self.column = ComboBox(label="grey column", choices=["roi_mean", "grey_mean"],
                               value="roi_mean")
        self.track_button = PushButton(text="Track states")
        self.jobs = JobPanel()
        super().__init__(widgets=[self.states, self.reference, self.particles, self.column,
                                  self.track_button, self.jobs])
        self.result: Any = None
        self.deltas: list[Any] = []
        self.track_button.changed.connect(self.track)
        events = napari_viewer.layers.events
        for event in (events.inserted, events.removed):
            event.connect(lambda *_: self.states.reset_choices())
        self.particles.reset_choices()

    def _images(self, *_: Any) -> list[str]:
        return [ly.name for ly in self.viewer.layers
                if ly._type_string == "image" and ly.name not in (STATES, DELTA)]

    def _inputs(self) -> tuple[list[Volume], Volume, int]:
        from electrode_ct.errors import InputError
        from electrode_ct.napari._layers import as_volume

        names = [n for n in self._images() if n in (self.states.value or [])]
        if len(names) < 2:
            raise InputError("states: choose at least two grey layers (the states, in "
                             "layer-list order)")
        ref = int(self.reference.value)
        if ref >= len(names):
            raise InputError(f"reference state: {ref} is not one of the {len(names)} states")
        greys = [as_volume(self.viewer.layers[n]) for n in names]
        return greys, self.particles.volume("reference particles"), ref

    def track(self, *_: Any) -> Any:
        """Track the particles and compute ΔI per particle and state in a worker."""
        from electrode_ct.operando.track import track
        from electrode_ct.stats import paired

        try:
            greys, lab, ref = self._inputs()
        except Exception as exc:
            self.jobs.fail(exc)
            return None
        column = self.column.value

        def job(progress: Progress) -> tuple[Any, list[Any]]:
            for _ in progress(range(1)):
                res = track(np.asarray(lab.data), [g.numpy() for g in greys],
                            spacing=greys[ref].spacing, reference=ref)
            tables = res.state_tables()
            deltas = [paired(tables[ref], t, column=column)[1]
                      for t in progress(tables, total=len(tables))]
            return res, deltas

        def done(result: tuple[Any, list[Any]]) -> None:
            self.result, self.deltas = result
            self._show(greys, ref)
            notify(f"{self.result.n_tracked} particles tracked through {len(greys)} states")

        return self.jobs.start(job, done, title="track states")

    def _show(self, greys: list[Volume], ref: int) -> None:
        from electrode_ct.report.great2_plots import paint_property

        g = greys[ref]
        like = Volume(np.zeros((1, 1, 1)), spacing=g.spacing, origin=g.origin)
        stacked = {"scale": (1.0, *g.spacing), "translate": (0.0, *g.origin)}
        painted = np.stack([paint_property(lab, d, "delta") for lab, d in
                            zip(self.result.labels, self.deltas, strict=True)])
        top = float(np.nanmax(np.abs(painted))) if np.isfinite(painted).any() else 1.0
        show_layer(self.viewer, STATES, np.stack([v.numpy() for v in greys]), like=like,
                   kind="image", **stacked)
        show_layer(self.viewer, TRACKED, np.stack(self.result.labels), like=like, **stacked)
        show_layer(self.viewer, DELTA, painted, like=like, kind="image", colormap="PiYG",
                   contrast_limits=(-top, top if top > 0 else 1.0), **stacked)
        self.viewer.dims.axis_labels = ("state", "z", "y", "x")
        self.viewer.dims.set_point(0, ref)
