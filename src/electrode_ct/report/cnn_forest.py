"""Report section: the CNN's and a forest's validation scores (``--compare-forest``)."""

from __future__ import annotations

from typing import Any

from electrode_ct.report.html import Section


def cnn_forest_sections(man: dict[str, Any]) -> list[Section]:
    """A section with both validation mean IoUs, flagged when the CNN does not win.

    Parameters
    ----------
    man : dict
        The run's ``provenance.json``; the segment step's ``summary["forest_comparison"]``
        (``steps.segment.compare_forest``) feeds the section, none without it.
    """
    cmp = man.get("steps", {}).get("segment", {}).get("summary", {}).get("forest_comparison")
    if not cmp:
        return []
    sec = Section("CNN against a forest")
    sec.text("Mean IoU on the validation slice given at training (ect segment train-cnn "
             "--val IMAGE LABELS --compare-forest); the forest was trained on the CNN's "
             "labels.")
    sec.table({"CNN validation mean IoU": cmp["cnn_val_mean_iou"],
               "forest validation mean IoU": cmp["forest_val_mean_iou"],
               "CNN − forest": cmp["margin"]})
    if not cmp["cnn_beats_forest"]:
        sec.text(f"Warning: {cmp['warning']}", note=True)
    return [sec]
