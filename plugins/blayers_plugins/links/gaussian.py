"""The Gaussian link."""

from __future__ import annotations

from typing import Any

import attrs
import jax
import numpyro.distributions as dist
from numpyro.distributions import Distribution

from blayers_plugins.links._loc_scale import LocScaleLink


@attrs.frozen(kw_only=True)
class GaussianLink(LocScaleLink):
    r"""Gaussian likelihood around the predictor, with a learned, a known or a per-row scale.

    Generative model, for a predictor ``mu`` of shape ``(n,)`` (or ``(n, 1)``):

    .. math::
        \sigma &\sim \text{sigma\_prior}  &&\text{site } \texttt{name/sigma}, ()\\
        y_i &\sim \mathcal{N}(\mu_i, \sigma)  &&\text{site } \texttt{name}, (n,)

    With ``scale`` a number, :math:`\sigma` is that known value and no ``sigma`` site is sampled.
    With ``scale="per_row"``, ``mu`` has shape ``(n, 2)`` (location, unconstrained scale) and
    :math:`y_i \sim \mathcal{N}(\mu_{i0}, \operatorname{softplus}(\mu_{i1}))`, again without a
    ``sigma`` site; build such a predictor with ``units=2``.

    Args:
        sigma_prior: prior of the noise scale, a scalar distribution on the positive reals
            (default ``Exponential(1)``).
        scale: a known noise scale instead of a learned one, or ``"per_row"``.
        name: the observed site's name (default ``"obs"``); auxiliary sites are ``name/...``.
    """

    def family(self, loc: jax.Array, sigma: Any) -> Distribution:
        return dist.Normal(loc, sigma)


#: BLayers' ``gaussian_link_exp``: Gaussian likelihood with ``sigma ~ Exponential(1)``.
gaussian_link_exp = GaussianLink()
