"""Widget 4, particles: healing width and h with a preview on a crop, then the whole volume.

Both run :func:`electrode_ct.particles.separate.separate_particles` (distance method) in
a worker thread: the preview on a cube around the viewer's centre (its own labels layer,
placed where the crop lies), the final run on the whole phase volume.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from magicgui.widgets import Container, FloatSlider, LineEdit, PushButton, SpinBox

from electrode_ct.napari._common import LayerPicker, camera, current_z, show_layer
from electrode_ct.napari._jobs import JobPanel, Progress, notify
from electrode_ct.volume import Volume

PREVIEW, RESULT = "particles preview", "particles"


def crop_around(vol: Volume, centre: tuple[int, int, int], side: int) -> tuple[slice, ...]:
    """A cube of ``side`` voxels around ``centre`` (z, y, x), shifted to lie in the volume."""
    out = []
    for c, n in zip(centre, vol.shape, strict=True):
        s = min(int(side), n)
        lo = int(np.clip(c - s // 2, 0, n - s))
        out.append(slice(lo, lo + s))
    return tuple(out)


def crop_volume(vol: Volume, region: tuple[slice, ...]) -> Volume:
    """The sub-volume ``region`` with its origin moved to where it lies (µm)."""
    origin = tuple(o + s.start * d for o, s, d in zip(vol.origin, region, vol.spacing,
                                                         strict=True))
    return Volume(np.asarray(vol.data[region]), spacing=vol.spacing, origin=origin,
                  metadata=dict(vol.metadata))


class ParticlesWidget(Container):
    """Separate the particle phase into particles (see the module docstring)."""

    def __init__(self, napari_viewer: Any) -> None:
        self.viewer = napari_viewer
        self.phases = LayerPicker(napari_viewer, "labels", label="phases")
        self.phase = LineEdit(label="phase", value="active")
        self.heal = FloatSlider(label="heal width (µm)", value=0.0, min=0.0, max=5.0,
                                step=0.1)
        self.h = FloatSlider(label="h (µm, 0 = voxel)", value=0.0, min=0.0, max=5.0, step=0.1)
        self.crop = SpinBox(label="crop (voxels)", value=64, min=8, max=512)
        self.preview_button = PushButton(text="Preview crop")
        self.apply_button = PushButton(text="Separate volume")
        self.jobs = JobPanel()
        super().__init__(widgets=[self.phases, self.phase, self.heal, self.h, self.crop,
                                  self.preview_button, self.apply_button, self.jobs])
        self.preview_button.changed.connect(self.preview)
        self.apply_button.changed.connect(self.apply)
        self.phases.reset_choices()

    def options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`separate_particles` from the controls."""
        phase: str | int = self.phase.value.strip()
        return {"phase": int(phase) if str(phase).isdigit() else phase,
                "heal_cracks_um": float(self.heal.value),
                "h": float(self.h.value) or None}

    def _run(self, vol: Volume, name: str, *, title: str) -> Any:
        from electrode_ct.particles.separate import separate_particles

        opts = self.options()
        recipe = {"step": "particles", "phases": vol.source, "phases_layer": self.phases.value,
                  "params": {**opts, "phase": str(opts["phase"]), "method": "distance"}}

        def job(progress: Progress) -> Any:
            for _ in progress(range(1)):
                sep = separate_particles(vol, **opts)
            return sep

        def done(sep: Any) -> None:
            show_layer(self.viewer, name, sep.labels, like=vol, recipe=recipe)
            notify(f"{title}: {sep.n_particles} particles")

        return self.jobs.start(job, done, title=title)

    def _phases(self) -> Volume:
        vol = self.phases.volume("phases")
        if self.phases.value in (PREVIEW, RESULT):
            from electrode_ct.errors import InputError

            raise InputError("phases: choose the phase labels, not a particle layer")
        return vol

    def preview(self, *_: Any) -> Any:
        """Separate a crop around the viewer's centre (current slice, camera centre)."""
        try:
            vol = self._phases()
            cam = camera(self.viewer).center
            centre = (current_z(self.viewer, vol),
                      *(int(round((float(cam[a - 3]) - vol.origin[a]) / vol.spacing[a]))
                        for a in (1, 2)))
            sub = crop_volume(vol, crop_around(vol, centre, int(self.crop.value)))
        except Exception as exc:
            self.jobs.fail(exc)
            return None
        return self._run(sub, PREVIEW, title="particles preview")

    def apply(self, *_: Any) -> Any:
        """Separate the whole phase volume."""
        try:
            vol = self._phases()
        except Exception as exc:
            self.jobs.fail(exc)
            return None
        return self._run(Volume(np.asarray(vol.data), spacing=vol.spacing, origin=vol.origin,
                                metadata=dict(vol.metadata)), RESULT, title="particles")
