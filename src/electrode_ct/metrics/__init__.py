"""Metrics on label volumes: segmentation quality, volume fractions, surfaces, tortuosity."""

from electrode_ct.metrics.compare import compare, confusion_matrix

__all__ = ["compare", "confusion_matrix"]
