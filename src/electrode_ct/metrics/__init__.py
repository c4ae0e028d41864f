"""Metrics on label volumes: segmentation quality, volume fractions, surfaces, tortuosity."""

from electrode_ct.metrics.compare import compare, confusion_matrix
from electrode_ct.metrics.connectivity import connectivity, percolating_mask
from electrode_ct.metrics.fractions import phase_profile, volume_fractions
from electrode_ct.metrics.local_thickness import (
    chord_length_summary,
    chord_lengths,
    local_thickness,
    thickness_distribution,
)
from electrode_ct.metrics.quality import (
    fraction_vs_reference,
    image_quality,
    interface_percentage,
    phase_statistics,
)
from electrode_ct.metrics.surface import phase_surface_area, surface_areas
from electrode_ct.metrics.tortuosity import TortuosityResult, tortuosity, tortuosity_factors
from electrode_ct.metrics.variability import agreement_map, variability

__all__ = [
    "TortuosityResult",
    "chord_length_summary",
    "chord_lengths",
    "connectivity",
    "local_thickness",
    "percolating_mask",
    "phase_profile",
    "phase_surface_area",
    "surface_areas",
    "thickness_distribution",
    "tortuosity",
    "tortuosity_factors",
    "volume_fractions",
    "agreement_map",
    "compare",
    "confusion_matrix",
    "fraction_vs_reference",
    "image_quality",
    "interface_percentage",
    "phase_statistics",
    "variability",
]
