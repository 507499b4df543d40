"""The Gaussian link."""

from __future__ import annotations

import attrs
import jax
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import Distribution

from blayers_plugins._priors import positive_number_or_none, positive_prior
from blayers_plugins.links._base import BaseLink, site_name


@attrs.frozen(kw_only=True)
class GaussianLink(BaseLink):
    r"""Gaussian likelihood around the predictor, with a learned or a known scale.

    Generative model, for a predictor ``mu`` of shape ``(n,)`` (or ``(n, 1)``):

    .. math::
        \sigma &\sim \text{sigma\_prior}  &&\text{site } \texttt{name/sigma}, ()\\
        y_i &\sim \mathcal{N}(\mu_i, \sigma)  &&\text{site } \texttt{name}, (n,)

    With ``scale`` given, :math:`\sigma` is that known value and no ``sigma`` site is sampled.

    Args:
        sigma_prior: prior of the noise scale, a scalar distribution on the positive reals
            (default ``Exponential(1)``).
        scale: a known noise scale instead of a learned one.
        name: the observed site's name (default ``"obs"``); auxiliary sites are ``name/...``.
    """

    sigma_prior: Distribution | None = attrs.field(
        default=None, validator=attrs.validators.optional(positive_prior)
    )
    scale: float | None = attrs.field(default=None, validator=positive_number_or_none)
    name: str = attrs.field(default="obs", validator=site_name)

    def __attrs_post_init__(self) -> None:
        if self.sigma_prior is not None and self.scale is not None:
            raise ValueError("give sigma_prior (a learned scale) or scale (a known one), not both")

    def likelihood(self, mu: jax.Array) -> Distribution:
        if self.scale is not None:
            return dist.Normal(mu, self.scale)
        prior = self.sigma_prior if self.sigma_prior is not None else dist.Exponential(1.0)
        sigma = numpyro.sample("sigma", prior)
        return dist.Normal(mu, sigma)


#: BLayers' ``gaussian_link_exp``: Gaussian likelihood with ``sigma ~ Exponential(1)``.
gaussian_link_exp = GaussianLink()
