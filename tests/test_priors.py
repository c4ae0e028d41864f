"""Class-prior (label-shift) adaptation: EM recovers known shifted priors."""

from __future__ import annotations

import numpy as np
import pytest

from electrode_ct.errors import InputError
from electrode_ct.segment import priors


def _gaussian_case(pi_train, pi_test, n=60_000, seed=0):
    """Three 1-D Gaussian classes; exact Bayes posteriors under ``pi_train`` on a test
    sample drawn with ``pi_test``. Returns (posteriors (K, n), true labels)."""
    rng = np.random.default_rng(seed)
    means, sd = np.array([0.0, 1.5, 3.0]), 0.8
    y = rng.choice(3, size=n, p=pi_test)
    x = rng.normal(means[y], sd)
    lik = np.exp(-0.5 * ((x[None] - means[:, None]) / sd) ** 2)
    post = lik * np.asarray(pi_train)[:, None]
    return post / post.sum(axis=0), y


def test_em_recovers_shifted_priors():
    pi_train, pi_test = [1 / 3, 1 / 3, 1 / 3], [0.6, 0.1, 0.3]
    post, y = _gaussian_case(pi_train, pi_test)
    est, info = priors.estimate_priors(post, pi_train)
    assert info["converged"]
    truth = np.bincount(y, minlength=3) / y.size
    np.testing.assert_allclose(est, truth, atol=0.02)


def test_adjusted_posteriors_are_bayes_posteriors_and_more_accurate():
    pi_train, pi_test = [0.2, 0.5, 0.3], [0.6, 0.1, 0.3]
    post, y = _gaussian_case(pi_train, pi_test, seed=1)
    exact, _ = _gaussian_case(pi_test, pi_test, seed=1)  # same sample, true priors
    adj = priors.adjust(post, pi_train, pi_test)
    np.testing.assert_allclose(adj, exact, atol=1e-5)
    fitted, est, _ = priors.adapt(post, pi_train)
    acc_before = np.mean(post.argmax(0) == y)
    acc_after = np.mean(fitted.argmax(0) == y)
    assert acc_after > acc_before + 0.02


def test_no_shift_is_a_fixed_point():
    pi = [0.25, 0.25, 0.5]
    post, _ = _gaussian_case(pi, pi, seed=2)
    est, _ = priors.estimate_priors(post, pi)
    np.testing.assert_allclose(est, pi, atol=0.02)


def test_blockwise_application_equals_whole():
    pi_train = [1 / 3, 1 / 3, 1 / 3]
    post, _ = _gaussian_case(pi_train, [0.5, 0.2, 0.3], n=4 * 50 * 60, seed=3)
    vol = post.reshape(3, 4, 50, 60).astype(np.float32)
    est, _ = priors.estimate_priors(vol, pi_train)
    whole = priors.adjust(vol, pi_train, est)
    parts = np.concatenate([priors.adjust(vol[:, :, :20], pi_train, est),
                            priors.adjust(vol[:, :, 20:], pi_train, est)], axis=2)
    np.testing.assert_array_equal(whole, parts)
    assert whole.shape == vol.shape and whole.dtype == np.float32


def test_strength_and_power():
    pi_train, pi_new = [0.5, 0.5], [0.8, 0.2]
    p = np.array([[0.6, 0.3], [0.4, 0.7]])
    np.testing.assert_allclose(priors.adjust(p, pi_train, pi_new, strength=0), p, atol=1e-7)
    half = priors.adjust(p, pi_train, pi_new, strength=0.5)
    full = priors.adjust(p, pi_train, pi_new)
    assert p[0, 1] < half[0, 1] < full[0, 1]
    sharp = priors.calibrate(p, 2.0)
    np.testing.assert_allclose(sharp[:, 0], [0.36 / 0.52, 0.16 / 0.52])


def test_bad_input():
    with pytest.raises(InputError, match="expected 2 class priors"):
        priors.estimate_priors(np.full((2, 5), 0.5), [1.0, 0.0, 0.0])
    with pytest.raises(InputError, match="K >= 2"):
        priors.estimate_priors(np.ones((1, 5)), [1.0])
    with pytest.raises(InputError, match="non-negative"):
        priors.adjust(np.full((2, 5), 0.5), [0.5, 0.5], [-1, 2])
