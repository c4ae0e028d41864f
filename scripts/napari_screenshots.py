"""Screenshots of every widget of the napari plugin on the embedded real sample.

Drives the widgets as a user would on the NREL NMC-1-cal micro-CT crop (75³, 0.398 µm)
and its ilastik scribbles: threshold (Otsu), the forest loop, particles (preview on a
crop, then the volume), the particle table coloured by volume, cracks, and saves one
screenshot of the window per widget. The test suite runs :func:`take` into a temporary
folder (tests/test_napari_screenshots.py); ``docs/images/napari_*.png`` come from

    xvfb-run -a .venv/bin/python scripts/napari_screenshots.py docs/images
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

SHOTS = ("threshold", "forest", "particles", "table", "cracks")
"""Screenshot names: ``napari_<name>.png``."""


def _shot(viewer: Any, out: Path, name: str, widget: Any) -> Path:
    from qtpy.QtWidgets import QApplication, QWidget

    for toast in viewer.window._qt_window.findChildren(QWidget):
        if type(toast).__name__ == "NapariQtNotification":  # messages fade out on screen
            toast.hide()
    widget.native.parent().raise_()  # the widget's dock tab
    if name != "table":  # the table centres the view on the selected particle
        viewer.reset_view()
    QApplication.processEvents()
    path = out / f"napari_{name}.png"
    from skimage.io import imsave

    imsave(path, viewer.screenshot(canvas_only=False, flash=False), check_contrast=False)
    return path


def take(out: Path, make_viewer: Callable[..., Any], wait: Callable[[Any], None]) -> list[Path]:
    """Run every widget on the embedded sample and save one screenshot each into ``out``.

    ``make_viewer(**kwargs)`` makes a viewer; ``wait(panel)`` returns once a widget's job
    panel is idle.
    """
    from electrode_ct.napari._cracks import CracksWidget
    from electrode_ct.napari._forest import ForestWidget
    from electrode_ct.napari._particles import ParticlesWidget
    from electrode_ct.napari._sample import nmc_microct
    from electrode_ct.napari._table import TableWidget
    from electrode_ct.napari._threshold import ThresholdWidget

    out.mkdir(parents=True, exist_ok=True)
    viewer = make_viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    for data, kwargs, kind in nmc_microct():
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    widgets: dict[str, Any] = {}
    for name, cls in (("threshold", ThresholdWidget), ("forest", ForestWidget),
                      ("particles", ParticlesWidget), ("table", TableWidget),
                      ("cracks", CracksWidget)):
        widgets[name] = cls(viewer)
        viewer.window.add_dock_widget(widgets[name], name=name, area="right", tabify=True)
    shots = []
    thr = widgets["threshold"]
    thr.method.value = "otsu"
    thr.apply()
    wait(thr.jobs)
    shots.append(_shot(viewer, out, "threshold", thr))
    forest = widgets["forest"]
    forest.class_names.value, forest.trees.value = "active,pore_cbd", 16
    forest.train()
    wait(forest.jobs)
    shots.append(_shot(viewer, out, "forest", forest))
    parts = widgets["particles"]
    parts.phases.value, parts.heal.value = "phases", 0.8
    parts.apply()
    wait(parts.jobs)
    shots.append(_shot(viewer, out, "particles", parts))
    table = widgets["table"]
    table.particles.value, table.grey.value = "particles", "nmc1cal"
    table.measure()
    wait(table.jobs)
    table.colour_by.value = "volume_um3"
    table.table.native.selectRow(0)
    shots.append(_shot(viewer, out, "table", table))
    cracks = widgets["cracks"]
    cracks.grey.value, cracks.particles.value = "nmc1cal", "particles"
    cracks.classify()
    wait(cracks.jobs)
    shots.append(_shot(viewer, out, "cracks", cracks))
    return shots


def main() -> None:
    import napari
    from qtpy.QtWidgets import QApplication

    def wait(panel: Any) -> None:
        while panel.running:
            QApplication.processEvents()

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/images")
    for path in take(out, napari.Viewer, wait):
        print(path)


if __name__ == "__main__":
    main()
