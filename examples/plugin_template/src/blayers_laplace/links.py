"""The ``laplace`` link: a Laplace likelihood, i.e. Bayesian median regression."""

from __future__ import annotations

import attrs
import jax
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import Distribution

from blayers_core.plugin import BaseLink, positive_prior, site_name


@attrs.frozen(kw_only=True)
class LaplaceLink(BaseLink):
    r"""Laplace likelihood around the predictor: the posterior mode is a median regression.

    Generative model, for a predictor ``mu`` of shape ``(n,)`` (or ``(n, 1)``) and ``o = name``:

    .. math::
        b &\sim \text{scale\_prior}  &&\text{site } \texttt{o/scale}, ()\\
        y_i &\sim \text{Laplace}(\mu_i, b), \quad i = 1..n  &&\text{site } \texttt{o}, (n,)

    Args:
        scale_prior: prior of the scale :math:`b`, a scalar distribution on the positive reals
            (default ``HalfNormal(1)``).
        name: the observed site's name (default ``"obs"``); the scale is ``name/scale``.
    """

    scale_prior: Distribution = attrs.field(
        factory=lambda: dist.HalfNormal(1.0), validator=positive_prior
    )
    name: str = attrs.field(default="obs", validator=site_name)

    def likelihood(self, mu: jax.Array) -> Distribution:
        """Sample the scale (site ``name/scale``); the distribution of ``y``, ``(n,)``."""
        scale = numpyro.sample("scale", self.scale_prior)
        return dist.Laplace(mu, scale)
