"""Posterior draws from a fitted guide."""

from __future__ import annotations

from typing import Any

from numpyro.infer import Predictive
from numpyro.infer.autoguide import AutoGuide

from blayers_core.contract._typing import Array, GuideFn


def draw_posterior(
    guide: GuideFn, params: dict[str, Any], rng_key: Array, num_samples: int, data: dict[str, Any]
) -> dict[str, Array]:
    """``num_samples`` draws of every latent site (``(num_samples, ...)`` each) from the guide."""
    if isinstance(guide, AutoGuide):
        return guide.sample_posterior(rng_key, params, **data, sample_shape=(num_samples,))  # type: ignore[no-any-return]
    draws = Predictive(guide, params=params, num_samples=num_samples)(rng_key, **data)
    return {k: v for k, v in draws.items() if not k.startswith("_")}
