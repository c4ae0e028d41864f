"""Class-prior (label-shift) adaptation of per-voxel class probabilities.

A classifier trained on one image learns posteriors ``p(c|x)`` under that image's (or the
training set's effective) class priors ``π_train``. An image with other phase fractions
has other priors ``π_new``; by Bayes' rule the posteriors then become

    p_new(c|x) ∝ p(c|x) · π_new(c) / π_train(c)

and ``π_new`` can be estimated from the unlabelled image alone by expectation-maximisation
(Saerens, Latinne & Decaestecker 2002, "Adjusting the outputs of a classifier to new a
priori probabilities: a simple procedure", Neural Computation 14:21-41): start from
``π_train``, adjust the posteriors, set ``π_new`` to their mean, repeat to convergence.

The functions work on a ``(K, ...)`` probability array (class axis first, as
:attr:`Prediction.probabilities`). They are blockwise-safe: estimate the priors once from
the whole image or a regular subsample of it (:func:`estimate_priors`), then apply the
fixed correction to every block (:func:`adjust`), so the result does not depend on the
blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from electrode_ct.errors import InputError

EPS = 1e-12
"""Floor of priors and probabilities (avoids division by zero for an absent class)."""


def _as_prior(prior: Any, k: int, name: str) -> np.ndarray:
    p = np.asarray(prior, np.float64).ravel()
    if p.size != k:
        raise InputError(f"{name}: expected {k} class priors, got {p.size}")
    if not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
        raise InputError(f"{name}: priors must be finite, non-negative and not all zero")
    return np.maximum(p / p.sum(), EPS)


def _flat(prob: Any) -> np.ndarray:
    p = np.asarray(prob)
    if p.ndim < 1 or p.shape[0] < 2:
        raise InputError(f"probabilities: expected a (K, ...) array with K >= 2 classes, "
                         f"got shape {p.shape}")
    return p.reshape(p.shape[0], -1)


def calibrate(prob: np.ndarray, power: float = 1.0) -> np.ndarray:
    """Sharpen (``power`` > 1) or soften (< 1) probabilities: ``p^power``, renormalised.

    Parameters
    ----------
    prob : numpy.ndarray
        (K, ...) class probabilities.
    power : float
        Exponent (an inverse temperature); 1 returns the probabilities unchanged.

    Returns
    -------
    numpy.ndarray
        float64 (K, ...) probabilities summing to 1 over axis 0.
    """
    p = np.maximum(np.asarray(prob, np.float64), EPS)
    if power != 1.0:
        p = p ** float(power)
    return p / p.sum(axis=0, keepdims=True)


def subsample(prob: np.ndarray, max_points: int = 1_000_000) -> np.ndarray:
    """A regular (strided) subsample of the voxels: (K, n) with n <= ``max_points``.

    Deterministic and independent of any block decomposition.
    """
    flat = _flat(prob)
    step = max(1, -(-flat.shape[1] // int(max_points)))
    return flat[:, ::step]


def estimate_priors(prob: np.ndarray, prior_train: Sequence[float], *,
                    power: float = 1.0, max_iter: int = 200, tol: float = 1e-6,
                    max_points: int = 1_000_000) -> tuple[np.ndarray, dict[str, Any]]:
    """EM estimate of the class priors of an unlabelled image (Saerens et al. 2002).

    Parameters
    ----------
    prob : numpy.ndarray
        (K, ...) posteriors of the image's voxels under ``prior_train`` (all voxels or a
        subsample; at most ``max_points`` voxels are used, strided).
    prior_train : sequence of float
        The priors the classifier's posteriors correspond to (K values; normalised here).
    power : float
        Calibration exponent applied to ``prob`` first (:func:`calibrate`).
    max_iter : int
        EM iterations at most.
    tol : float
        Stop when no prior changes by more than this (absolute).
    max_points : int
        Voxels used at most.

    Returns
    -------
    prior : numpy.ndarray
        (K,) estimated priors of the image (sum 1).
    info : dict
        ``iterations``, ``converged`` (bool), ``n_points``.
    """
    flat = subsample(prob, max_points)
    k = flat.shape[0]
    pt = _as_prior(prior_train, k, "prior_train")
    p = calibrate(flat, power)
    pi = pt.copy()
    it, converged = 0, False
    for it in range(1, int(max_iter) + 1):  # noqa: B007 - EM iterations, vectorised inside
        q = p * (pi / pt)[:, None]
        q /= q.sum(axis=0, keepdims=True)
        new = np.maximum(q.mean(axis=1), EPS)
        new /= new.sum()
        delta = float(np.max(np.abs(new - pi)))
        pi = new
        if delta < tol:
            converged = True
            break
    return pi, {"iterations": it, "converged": converged, "n_points": int(flat.shape[1])}


def adjust(prob: np.ndarray, prior_train: Sequence[float], prior_new: Sequence[float], *,
           strength: float = 1.0, power: float = 1.0) -> np.ndarray:
    """Posteriors under new priors: ``p(c|x) · (π_new(c)/π_train(c))^strength``, renormalised.

    Parameters
    ----------
    prob : numpy.ndarray
        (K, ...) posteriors under ``prior_train`` (a block or the whole image).
    prior_train, prior_new : sequence of float
        Old and new class priors (K values each).
    strength : float
        Damping of the correction in log space (1 = full Bayes correction, 0 = none).
    power : float
        Calibration exponent applied to ``prob`` first (as used for the estimate).

    Returns
    -------
    numpy.ndarray
        float32 (K, ...) adjusted probabilities.
    """
    p = np.asarray(prob)
    k = p.shape[0]
    w = (_as_prior(prior_new, k, "prior_new") / _as_prior(prior_train, k, "prior_train"))
    w = w ** float(strength)
    q = calibrate(p, power) * w.reshape((k,) + (1,) * (p.ndim - 1))
    return (q / q.sum(axis=0, keepdims=True)).astype(np.float32)


def adapt(prob: np.ndarray, prior_train: Sequence[float], *, strength: float = 1.0,
          power: float = 1.0, max_points: int = 1_000_000
          ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Estimate an image's priors and adjust its posteriors in one call (whole array).

    Returns
    -------
    adjusted : numpy.ndarray
        float32 (K, ...) probabilities.
    prior : numpy.ndarray
        (K,) estimated priors.
    info : dict
        As :func:`estimate_priors`.
    """
    prior, info = estimate_priors(prob, prior_train, power=power, max_points=max_points)
    return adjust(prob, prior_train, prior, strength=strength, power=power), prior, info
