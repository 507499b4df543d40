"""Links for counts, all with a log link (mean ``exp(mu)``): Poisson, negative binomial and
their zero-inflated versions.

Observed counts must be non-negative integers (any numeric dtype: ``3.0`` is the count 3); a
negative or fractional count raises when the data are concrete, before anything is compiled.
"""

from __future__ import annotations

import attrs
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import Distribution

from blayers_core.plugin import BaseLink, positive_prior, site_name, unit_interval_prior
from blayers_plugins.links._family import check_counts


def _exponential_one() -> Distribution:
    return dist.Exponential(1.0)


def _uniform_gate() -> Distribution:
    return dist.Beta(1.0, 1.0)


def _zero_inflated(base: Distribution, gate_prior: Distribution) -> Distribution:
    """``base`` with an extra point mass at 0 of weight ``gate`` (site ``gate``)."""
    gate = numpyro.sample("gate", gate_prior)
    return dist.ZeroInflatedDistribution(base, gate=gate)


@attrs.frozen(kw_only=True)
class PoissonLink(BaseLink):
    r"""Poisson likelihood for counts with rate ``exp(mu)`` (log link).

    Generative model, for a predictor ``mu`` of shape ``(n,)`` (or ``(n, 1)``):

    .. math::
        y_i &\sim \text{Poisson}(e^{\mu_i})  &&\text{site } \texttt{name}, (n,)

    Args:
        name: the observed site's name (default ``"obs"``).
    """

    name: str = attrs.field(default="obs", validator=site_name)

    def likelihood(self, mu: jax.Array) -> Distribution:
        return dist.Poisson(jnp.exp(mu))

    def check_target(self, y: np.ndarray, mu_shape: tuple[int, ...]) -> None:
        check_counts(self, y)


@attrs.frozen(kw_only=True)
class NegativeBinomialLink(BaseLink):
    r"""Negative binomial (NB2) likelihood for overdispersed counts with mean ``exp(mu)``.

    Generative model, for a predictor ``mu`` of shape ``(n,)`` (or ``(n, 1)``):

    .. math::
        \phi &\sim \text{concentration\_prior}  &&\text{site } \texttt{name/concentration}, ()\\
        y_i &\sim \text{NB2}(\text{mean} = e^{\mu_i}, \phi),
            \quad \operatorname{Var}[y_i] = e^{\mu_i} + e^{2\mu_i} / \phi
            &&\text{site } \texttt{name}, (n,)

    Args:
        concentration_prior: prior of the concentration :math:`\phi`, a scalar distribution on
            the positive reals (default ``Exponential(1)``); large :math:`\phi` is near-Poisson.
        name: the observed site's name (default ``"obs"``); auxiliary sites are ``name/...``.
    """

    concentration_prior: Distribution = attrs.field(
        factory=_exponential_one, validator=positive_prior
    )
    name: str = attrs.field(default="obs", validator=site_name)

    def likelihood(self, mu: jax.Array) -> Distribution:
        phi = numpyro.sample("concentration", self.concentration_prior)
        return dist.NegativeBinomial2(jnp.exp(mu), phi)

    def check_target(self, y: np.ndarray, mu_shape: tuple[int, ...]) -> None:
        check_counts(self, y)


@attrs.frozen(kw_only=True)
class ZeroInflatedPoissonLink(PoissonLink):
    r"""Zero-inflated Poisson likelihood: an extra share ``gate`` of structural zeros.

    Generative model, for a predictor ``mu`` of shape ``(n,)`` (or ``(n, 1)``):

    .. math::
        \pi &\sim \text{gate\_prior}  &&\text{site } \texttt{name/gate}, ()\\
        y_i &\sim \pi\,\delta_0 + (1 - \pi)\,\text{Poisson}(e^{\mu_i})
            &&\text{site } \texttt{name}, (n,)

    Args:
        gate_prior: prior of the zero-inflation probability :math:`\pi`, a scalar distribution
            on the unit interval (default ``Beta(1, 1)``).
        name: the observed site's name (default ``"obs"``); auxiliary sites are ``name/...``.
    """

    gate_prior: Distribution = attrs.field(factory=_uniform_gate, validator=unit_interval_prior)

    def likelihood(self, mu: jax.Array) -> Distribution:
        return _zero_inflated(super().likelihood(mu), self.gate_prior)


@attrs.frozen(kw_only=True)
class ZeroInflatedNegativeBinomialLink(NegativeBinomialLink):
    r"""Zero-inflated negative binomial (NB2) likelihood: overdispersion plus structural zeros.

    Generative model, for a predictor ``mu`` of shape ``(n,)`` (or ``(n, 1)``):

    .. math::
        \phi &\sim \text{concentration\_prior}  &&\text{site } \texttt{name/concentration}, ()\\
        \pi &\sim \text{gate\_prior}  &&\text{site } \texttt{name/gate}, ()\\
        y_i &\sim \pi\,\delta_0 + (1 - \pi)\,\text{NB2}(\text{mean} = e^{\mu_i}, \phi)
            &&\text{site } \texttt{name}, (n,)

    Args:
        concentration_prior: prior of the concentration :math:`\phi`, on the positive reals
            (default ``Exponential(1)``).
        gate_prior: prior of the zero-inflation probability :math:`\pi`, a scalar distribution
            on the unit interval (default ``Beta(1, 1)``).
        name: the observed site's name (default ``"obs"``); auxiliary sites are ``name/...``.
    """

    gate_prior: Distribution = attrs.field(factory=_uniform_gate, validator=unit_interval_prior)

    def likelihood(self, mu: jax.Array) -> Distribution:
        return _zero_inflated(super().likelihood(mu), self.gate_prior)
