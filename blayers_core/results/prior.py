"""``sample_prior``: draws of every site of a model under its prior, before seeing data."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from numpyro.infer import Predictive

from blayers_core.contract._typing import ModelFn


def sample_prior(
    model: ModelFn, *, num_samples: int = 500, seed: int = 0, **data: Any
) -> dict[str, np.ndarray]:
    """``{site: (num_samples, ...)}`` prior draws of the latent and observed sites of ``model``.

    Leave the target out of ``data`` (the model's ``y=None`` default) to get prior predictive
    draws of the observed sites; deterministic sites are included too. Useful to check that the
    priors give plausible data before fitting::

        prior = sample_prior(model, num_samples=200, seed=0, x=x)
        prior["obs"].shape  # (200, n)
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int | np.integer):
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    if num_samples < 1:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"seed must be an int, got {seed!r}")
    draws = Predictive(model, num_samples=int(num_samples))(jax.random.PRNGKey(int(seed)), **data)
    return {k: np.asarray(v) for k, v in draws.items() if not k.startswith("_")}
