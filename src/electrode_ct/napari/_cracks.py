"""Widget 6, cracks: the flaw score of every particle as colour, and the three-phase view.

*Classify* runs :func:`electrode_ct.cracks.classify.classify` (the shipped features model
unless a model file is chosen) in a worker thread; the per-particle ``flaw_score`` is
painted into the particles (:func:`electrode_ct.report.great2_plots.paint_property`) and
the solid / flaw / exterior split of the particles is shown as labels named by
:data:`electrode_ct.cracks.PHASES`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import Container, FileEdit, PushButton

from electrode_ct.napari._common import LayerPicker, show_layer, show_property
from electrode_ct.napari._jobs import JobPanel, Progress, notify

SCORE, THREE_PHASE = "flaw score", "particle phases"


class CracksWidget(Container):
    """Classify particles as flawed or not (see the module docstring)."""

    def __init__(self, napari_viewer: Any) -> None:
        self.viewer = napari_viewer
        self.grey = LayerPicker(napari_viewer, "image", label="grey")
        self.particles = LayerPicker(napari_viewer, "labels", label="particles")
        self.model = FileEdit(label="model (optional)", mode="r", filter="*.ectmodel")
        self.classify_button = PushButton(text="Classify particles")
        self.jobs = JobPanel()
        super().__init__(widgets=[self.grey, self.particles, self.model, self.classify_button,
                                  self.jobs])
        self.result: Any = None
        self.classify_button.changed.connect(self.classify)
        self.grey.reset_choices()
        self.particles.reset_choices()

    def _model(self) -> str | None:
        path = Path(self.model.value)
        return str(path) if path.name and path.is_file() else None

    def classify(self, *_: Any) -> Any:
        """Score and split the particles in a worker; paint the scores when done."""
        from electrode_ct.cracks import PHASES
        from electrode_ct.cracks.classify import classify

        try:
            grey = self.grey.volume("grey")
            lab = self.particles.volume("particles")
        except Exception as exc:
            self.jobs.fail(exc)
            return None
        model = self._model()

        def job(progress: Progress) -> Any:
            for _ in progress(range(1)):
                res = classify(grey.numpy(), np.asarray(lab.data), spacing=grey.spacing,
                               model=model)
            return res

        def done(res: Any) -> None:
            self.result = res
            show_property(self.viewer, SCORE, np.asarray(lab.data), res.table, "flaw_score",
                          like=lab, colormap="inferno")
            show_layer(self.viewer, THREE_PHASE, res.phases, like=lab, class_map=dict(PHASES))
            notify(f"{int(res.table['flawed'].sum())} of {len(res.table)} particles flawed")

        return self.jobs.start(job, done, title="classify cracks")
