"""Helpers shared by the tests that compare layers and links with hand-written NumPyro."""

from __future__ import annotations

import numpy as np
from numpyro import handlers
from numpyro.infer.util import log_density


def trace(fn, seed: int = 0):
    """The trace of ``fn()`` run once under ``seed``."""
    return handlers.trace(handlers.seed(fn, rng_seed=seed)).get_trace()


def assert_same_log_joint(model, reference, params, *args) -> float:
    """``model`` and the hand-written ``reference`` have the same log joint at ``params``."""
    lp_model, _ = log_density(model, args, {}, params)
    lp_ref, _ = log_density(reference, args, {}, params)
    assert np.isfinite(float(lp_ref))
    np.testing.assert_allclose(float(lp_model), float(lp_ref), rtol=1e-5)
    return float(lp_model)


def positive(rng, shape):
    """Random values in ``[0.5, 2)``: a valid value for a scale site."""
    return rng.uniform(0.5, 2.0, size=shape).astype(np.float32)


def real(rng, shape):
    """Standard normal values: a valid value for a real site."""
    return rng.normal(size=shape).astype(np.float32)


def run_with(fn, *, data=None, seed: int = 0):
    """Call ``fn()`` with the sites in ``data`` fixed and the rest drawn under ``seed``."""
    from numpyro import handlers as _handlers

    fn = _handlers.seed(fn, rng_seed=seed)
    if data:
        fn = _handlers.substitute(fn, data=data)
    return fn()
