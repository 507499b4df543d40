"""The adaptive prior many first-party layers share: a learned scale per output unit."""

from __future__ import annotations

import jax
import numpyro
from numpyro.distributions import Distribution


def sample_adaptive(
    scale_site: str,
    coef_site: str,
    scale_prior: Distribution,
    coef_dist: type[Distribution],
    coef_loc: float,
    shape: tuple[int, ...],
) -> jax.Array:
    r"""The adaptive prior: one learned scale per output unit, coefficients drawn around it.

    .. math::
        \sigma_c \sim \text{scale\_prior} \;(u,), \qquad
        \theta_{\ldots c} \sim \text{coef\_dist}(\text{coef\_loc}, \sigma_c) \;(\text{shape})

    ``shape`` ends with the number of units ``u``. Returns the coefficients, of ``shape``.
    """
    scale = numpyro.sample(scale_site, scale_prior.expand([shape[-1]]).to_event(1))
    coef_prior = coef_dist(loc=coef_loc, scale=scale).expand(list(shape)).to_event(len(shape))
    return numpyro.sample(coef_site, coef_prior)  # type: ignore[no-any-return]
