"""Metrics on label volumes: segmentation quality, volume fractions, surfaces, tortuosity."""

from electrode_ct.metrics.compare import compare, confusion_matrix
from electrode_ct.metrics.quality import (
    fraction_vs_reference,
    image_quality,
    interface_percentage,
    phase_statistics,
)
from electrode_ct.metrics.variability import agreement_map, variability

__all__ = [
    "agreement_map",
    "compare",
    "confusion_matrix",
    "fraction_vs_reference",
    "image_quality",
    "interface_percentage",
    "phase_statistics",
    "variability",
]
