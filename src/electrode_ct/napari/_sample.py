"""npe2 sample data: the embedded real samples and a small electrode phantom."""

from __future__ import annotations

from electrode_ct.napari._layers import LayerData, volume_layer

PHANTOM_SHAPE = (48, 48, 48)
"""Shape (z, y, x) of the sample phantom (voxels of 0.5 µm)."""


def nmc_microct() -> list[LayerData]:
    """NREL NMC-1-cal micro-CT crop (75³, 0.398 µm) and its ilastik scribbles."""
    from electrode_ct.data import nmc_microct as load

    grey, scribbles = load()
    return [volume_layer(grey, name="nmc1cal"),
            volume_layer(scribbles, name="scribbles", labels=True)]


def nmc_phases() -> list[LayerData]:
    """NREL NMC-1-cal three-phase label volume (MATBOX), class names attached."""
    from electrode_ct.data import nmc_phases as load

    return [volume_layer(load(), name="nmc1cal phases", labels=True)]


def phantom() -> list[LayerData]:
    """A 48³ electrode phantom (seed 0): grey, phase labels and particle labels."""
    from electrode_ct.synth.phantom import electrode

    ph = electrode(PHANTOM_SHAPE, seed=0)
    return [volume_layer(ph.grey, name="phantom"),
            volume_layer(ph.phases, name="phantom phases", labels=True),
            volume_layer(ph.particles, name="phantom particles", labels=True)]
