"""Training targets for the particle-boundary route.

From instance (particle) labels, derive three classes a segmentation network can learn:
background, particle interior (foreground) and boundary (the voxels where a particle
meets the background or another particle). The boundary probability of a network trained
on these targets can seed or replace the distance-transform markers of particle
separation: touching particles are split where the boundary probability is high.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from electrode_ct.errors import InputError

BOUNDARY_CLASSES: dict[str, int] = {"background": 1, "foreground": 2, "boundary": 3}
"""Training label values of the boundary targets (0 stays 'unlabelled')."""


def boundary_targets(instances: np.ndarray, *, width: int = 1, mode: str = "auto",
                     touching_only: bool = False) -> np.ndarray:
    """Background / foreground / boundary training labels from instance labels.

    Parameters
    ----------
    instances : numpy.ndarray
        Integer particle ids, 0 = background; 2-D (y, x) or 3-D (z, y, x).
    width : int
        Boundary thickness in voxels on each side of an edge (>= 1).
    mode : {"auto", "2d", "3d"}
        Neighbourhood: ``"2d"`` treats each z-slice alone.
    touching_only : bool
        Mark only particle–particle contacts as boundary (not particle–background edges).

    Returns
    -------
    numpy.ndarray of uint8
        1 = background, 2 = particle interior, 3 = boundary (see :data:`BOUNDARY_CLASSES`).

    Examples
    --------
    >>> import numpy as np
    >>> inst = np.zeros((1, 6, 8), np.uint32); inst[0, 1:5, 1:4] = 1; inst[0, 1:5, 4:7] = 2
    >>> boundary_targets(inst, touching_only=True)[0, 2]
    array([1, 2, 2, 3, 3, 2, 2, 1], dtype=uint8)
    """
    from electrode_ct.segment.cnn.perturb import _offsets, _shifted, _spatial_ndim

    inst = np.asarray(instances)
    if inst.dtype.kind not in "iu":
        raise InputError(f"instance labels: expected integer ids, got dtype {inst.dtype}")
    if width < 1:
        raise InputError(f"boundary width: expected >= 1 voxel, got {width}")
    nd = _spatial_ndim(inst, mode)
    edge = np.zeros(inst.shape, bool)
    for off in _offsets(inst.ndim, nd):
        nb = _shifted(inst, off)
        outside = np.zeros(inst.shape, bool)
        outside[tuple(slice(None) if o == 0 else (slice(0, 1) if o < 0 else slice(-1, None))
                      for o in off)] = True
        differs = (nb != inst) & ~outside
        if touching_only:
            differs &= (nb != 0) & (inst != 0)
        edge |= differs
    if width > 1:
        struct = ndi.generate_binary_structure(inst.ndim, 1)
        if nd == 2 and inst.ndim == 3:
            struct[0] = struct[2] = False
        edge = ndi.binary_dilation(edge, struct, iterations=width - 1)
    out = np.where(inst > 0, BOUNDARY_CLASSES["foreground"], BOUNDARY_CLASSES["background"])
    out[edge] = BOUNDARY_CLASSES["boundary"]
    return out.astype(np.uint8)
