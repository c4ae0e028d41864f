"""Per-particle measurements: morphology table and size distribution (more modules add here)."""

from electrode_ct.measure.morphology import morphology_table
from electrode_ct.measure.psd import size_distribution

__all__ = ["morphology_table", "size_distribution"]
