r"""A tiny model, a hand-written guide for it and its data: what losses and guides are run on.

.. math::
    a \sim \mathcal{N}(0, 1), \quad b \sim \text{HalfNormal}(1), \quad
    y_i \sim \mathcal{N}(a, b), \; i = 1..n

with sites ``a``, ``b`` and the observed ``obs`` ``(n,)``.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from blayers_core.testing._fitting import FIT_ROWS

#: The latent sites of :func:`tiny_model`.
LATENT_SITES = ("a", "b")
#: ``FIT_ROWS`` observations of :func:`tiny_model`.
TINY_Y = np.random.default_rng(0).normal(0.5, 1.0, size=FIT_ROWS).astype(np.float32)
#: Values of :func:`tiny_guide`'s parameters (constrained).
TINY_PARAMS: dict[str, Any] = {
    "a_loc": jnp.asarray(0.1),
    "a_scale": jnp.asarray(0.9),
    "b_loc": jnp.asarray(0.0),
    "b_scale": jnp.asarray(0.5),
}


def tiny_model(y: Any) -> Any:
    """``a ~ Normal(0, 1)``, ``b ~ HalfNormal(1)``, ``y_i ~ Normal(a, b)`` (site ``obs``)."""
    a = numpyro.sample("a", dist.Normal(0.0, 1.0))
    b = numpyro.sample("b", dist.HalfNormal(1.0))
    return numpyro.sample("obs", dist.Normal(a * jnp.ones(jnp.shape(y)[0]), b), obs=y)


def tiny_guide(y: Any) -> None:
    """Mean-field guide of :func:`tiny_model`: a normal for ``a``, a log-normal for ``b``."""
    a_loc = numpyro.param("a_loc", 0.0)
    a_scale = numpyro.param("a_scale", 1.0, constraint=constraints.positive)
    b_loc = numpyro.param("b_loc", 0.0)
    b_scale = numpyro.param("b_scale", 1.0, constraint=constraints.positive)
    numpyro.sample("a", dist.Normal(a_loc, a_scale))
    numpyro.sample("b", dist.LogNormal(b_loc, b_scale))
