"""Operando series: the same particles over N states of charge.

Per state: a crack *openness* (0 pristine, 1 at top of charge, partly closed after
discharge) scaled per particle by a log-normal growth factor, and a small rigid
misalignment (shift plus rotation about the volume centre) of the whole sample. Particle
ids are those of state 0; particles that first appear later get new ids after them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from electrode_ct.errors import InputError
from electrode_ct.synth.phantom import Phantom, _visible, choose_cracked, render_state
from electrode_ct.synth.render import nearest_two
from electrode_ct.synth.scene import Params, build_scene, validate


def default_openness(states: int) -> list[float]:
    """Crack openness per state: pristine, charging up to 1, then partial closing (0.6).

    >>> default_openness(4)
    [0.0, 0.5, 1.0, 0.6]
    """
    if states == 1:
        return [1.0]
    if states == 2:
        return [0.0, 1.0]
    charge = np.linspace(0, 1, states - 1)[1:]
    return [0.0, *[float(v) for v in charge], 0.6]


def rotation_matrix(angles_deg: Sequence[float]) -> np.ndarray:
    """Rotation ``Rz @ Ry @ Rx`` acting on (z, y, x) vectors, from angles about the z, y
    and x axes in degrees."""
    a, b, c = np.radians(np.asarray(angles_deg, float))

    def about(axis: int, t: float) -> np.ndarray:
        i, j = [k for k in range(3) if k != axis]
        m = np.eye(3)
        m[i, i] = m[j, j] = np.cos(t)
        m[i, j], m[j, i] = -np.sin(t), np.sin(t)
        return m

    return about(0, a) @ about(1, b) @ about(2, c)


def operando_series(shape: tuple[int, int, int] = (64, 64, 64), *, states: int = 4,
                    openness: Sequence[float] | None = None, growth_sd: float = 0.3,
                    max_shift_um: float | None = None, max_rotation_deg: float = 0.5,
                    transforms: Sequence[tuple[Sequence[float], Sequence[float]]] | None = None,
                    **kwargs: Any) -> list[Phantom]:
    """Render the same electrode at several states of charge.

    Parameters
    ----------
    shape : tuple of 3 int
        Output shape (z, y, x), voxels.
    states : int
        Number of states (>= 1).
    openness : sequence of float, optional
        Crack openness per state (default :func:`default_openness`).
    growth_sd : float
        σ of the log-normal per-particle crack growth factor.
    max_shift_um : float, optional
        Largest shift per axis between states, µm (default 2 voxels).
    max_rotation_deg : float
        Largest rotation angle about each axis, degrees.
    transforms : sequence of (shift_um, angles_deg), optional
        Explicit rigid transform per state (overrides the random ones); shift (z, y, x)
        in µm and angles about z, y, x in degrees, applied about the volume centre.
    **kwargs
        Any :func:`~electrode_ct.synth.electrode` parameter.

    Returns
    -------
    list of Phantom
        One per state; ``info["transform"]`` holds ``shift_um``, ``angles_deg``,
        ``matrix`` and ``center_um`` (state-0 coordinates map to ``R (x - c) + c + t``),
        ``info["openness"]`` the state's openness; ``truth["state"]`` the index.
    """
    if int(states) != states or states < 1:
        raise InputError(f"states: expected a whole number >= 1, got {states}")
    states = int(states)
    opens = list(default_openness(states) if openness is None else openness)
    if len(opens) != states or min(opens) < 0:
        raise InputError(f"openness: expected {states} values >= 0, got {opens}")
    if transforms is not None and len(transforms) != states:
        raise InputError(f"transforms: expected {states} (shift, angles) pairs, got "
                         f"{len(transforms)}")
    params = validate(Params(shape=shape, **_params_kwargs(kwargs)))
    h = np.asarray(params.voxel_size)
    shift_max = 2 * float(h.max()) if max_shift_um is None else float(max_shift_um)
    rng = np.random.default_rng([params.seed, 4242])
    moves = []
    for s in range(states):
        if transforms is not None:
            t, ang = np.asarray(transforms[s][0], float), np.asarray(transforms[s][1], float)
        elif s == 0:
            t, ang = np.zeros(3), np.zeros(3)
        else:
            t = rng.uniform(-shift_max, shift_max, 3)
            ang = rng.uniform(-max_rotation_deg, max_rotation_deg, 3)
        moves.append((t, ang))
    ext = np.asarray(params.shape) * h
    reach = max(float(np.abs(m[0]).max()) for m in moves) + float(np.linalg.norm(ext)) / 2 * (
        np.sin(np.radians(max(float(np.abs(m[1]).max()) for m in moves))))
    t0 = time.perf_counter()
    scene = build_scene(params, pad_um=reach + float(h.max()))
    t_pack = time.perf_counter() - t0
    growth = rng.lognormal(0.0, growth_sd, len(scene.particles))
    center = (ext - h) / 2
    # choose the cracked particles once, on the unmoved state
    margin = max(0.5 * params.radius_mean_um, 2.5 * float(h.max()))
    labels, d1, _ = nearest_two(scene.particles, scene.grid, field=scene.roughness,
                                margin_um=margin)
    counts = _visible(labels, d1, 0.0, len(scene.particles))
    del labels, d1
    chosen = choose_cracked(scene, counts, params.cracked_fraction)
    base = scene.flaws.with_active(chosen)
    ids = np.zeros(len(scene.particles), np.int64)
    out: list[Phantom] = []
    thresholds = None
    for s, (t, ang) in enumerate(moves):
        rot = rotation_matrix(ang)
        parts = scene.particles.transformed(rot, t, center)
        flaws = base.transformed(rot).opened(opens[s] * growth)
        ph, used = render_state(scene, parts=parts, flaws=flaws, thresholds=thresholds,
                                ids=ids, state=s, noise_seed=params.seed + 1000003 * s)
        thresholds = used["thresholds"]
        ph.info["transform"] = {"shift_um": t.tolist(), "angles_deg": ang.tolist(),
                                "matrix": rot.tolist(), "center_um": center.tolist()}
        ph.info["openness"] = opens[s]
        ph.info["states"] = states
        ph.info["timings_s"] = {"packing": t_pack if s == 0 else 0.0, **ph.info["timings_s"]}
        out.append(ph)
    return out


def _params_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    fields = set(Params.__dataclass_fields__) - {"shape", "imaging"}
    direct = {k: v for k, v in kwargs.items() if k in fields}
    direct["imaging"] = {k: v for k, v in kwargs.items() if k not in fields}
    return direct


def save_series(phantoms: Sequence[Phantom], out_dir: str | Path) -> list[Path]:
    """Write each state into ``out_dir/state_<k>/`` (see :meth:`Phantom.save`)."""
    out = Path(out_dir)
    return [ph.save(out / f"state_{k}") for k, ph in enumerate(phantoms)]
