"""Links for continuous targets: log-normal, Student-t, gamma, exponential and beta."""

from __future__ import annotations

from typing import Any

import attrs
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import Distribution

from blayers_core.plugin import BaseLink, positive_number_or_none, positive_prior, site_name
from blayers_plugins.links._family import check_values
from blayers_plugins.links._loc_scale import LocScaleLink

#: Degrees of freedom of the Student-t link when neither ``df`` nor ``df_prior`` is given.
DEFAULT_DF = 4.0


def _exponential_one() -> Distribution:
    return dist.Exponential(1.0)


@attrs.frozen(kw_only=True)
class LogNormalLink(LocScaleLink):
    r"""Log-normal likelihood: ``log y`` is Gaussian around the predictor.

    Generative model, for a predictor ``mu`` of shape ``(n,)`` (or ``(n, 1)``):

    .. math::
        \sigma &\sim \text{sigma\_prior}  &&\text{site } \texttt{name/sigma}, ()\\
        \log y_i &\sim \mathcal{N}(\mu_i, \sigma), \quad y_i > 0  &&\text{site } \texttt{name}, (n,)

    With ``scale`` a number, :math:`\sigma` is known; with ``scale="per_row"``, ``mu`` has shape
    ``(n, 2)`` and :math:`\sigma_i = \operatorname{softplus}(\mu_{i1})` (no ``sigma`` site).

    Args:
        sigma_prior: prior of the scale of ``log y``, a scalar distribution on the positive reals
            (default ``Exponential(1)``).
        scale: ``None`` (learned), a known positive scale, or ``"per_row"``.
        name: the observed site's name (default ``"obs"``); auxiliary sites are ``name/...``.

    Observed ``y`` must be strictly positive.
    """

    def family(self, loc: jax.Array, sigma: Any) -> Distribution:
        return dist.LogNormal(loc, sigma)

    def check_target(self, y: np.ndarray, mu_shape: tuple[int, ...]) -> None:
        check_values(self, y, "strictly positive values (y > 0)", lambda v: v > 0)


@attrs.frozen(kw_only=True)
class StudentTLink(LocScaleLink):
    r"""Student-t likelihood around the predictor (robust regression), fixed or learned df.

    Generative model, for a predictor ``mu`` of shape ``(n,)`` (or ``(n, 1)``):

    .. math::
        \sigma &\sim \text{sigma\_prior}  &&\text{site } \texttt{name/sigma}, ()\\
        \nu &\sim \text{df\_prior} \;\text{(or } \nu = \text{df)}  &&\text{site } \texttt{name/df}, ()\\
        y_i &\sim \text{StudentT}(\nu, \mu_i, \sigma)  &&\text{site } \texttt{name}, (n,)

    With ``scale`` a number, :math:`\sigma` is known; with ``scale="per_row"``, ``mu`` has shape
    ``(n, 2)`` and :math:`\sigma_i = \operatorname{softplus}(\mu_{i1})` (no ``sigma`` site).

    Args:
        df: fixed degrees of freedom (default 4 when ``df_prior`` is not given).
        df_prior: prior of learned degrees of freedom, a scalar distribution on the positive
            reals (e.g. ``Gamma(2, 0.1)``); samples site ``name/df``. Exclusive with ``df``.
        sigma_prior: prior of the scale, on the positive reals (default ``Exponential(1)``).
        scale: ``None`` (learned), a known positive scale, or ``"per_row"``.
        name: the observed site's name (default ``"obs"``); auxiliary sites are ``name/...``.
    """

    df: float | None = attrs.field(default=None, validator=positive_number_or_none)
    df_prior: Distribution | None = attrs.field(
        default=None, validator=attrs.validators.optional(positive_prior)
    )

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        if self.df is not None and self.df_prior is not None:
            raise ValueError("give df (fixed degrees of freedom) or df_prior (learned), not both")

    def family(self, loc: jax.Array, sigma: Any) -> Distribution:
        if self.df_prior is not None:
            df = numpyro.sample("df", self.df_prior)
        else:
            df = DEFAULT_DF if self.df is None else self.df
        return dist.StudentT(df, loc, sigma)


@attrs.frozen(kw_only=True)
class GammaLink(BaseLink):
    r"""Gamma likelihood with mean ``exp(mu)`` (log link) and a learned shape.

    Generative model, for a predictor ``mu`` of shape ``(n,)`` (or ``(n, 1)``):

    .. math::
        k &\sim \text{shape\_prior}  &&\text{site } \texttt{name/shape}, ()\\
        y_i &\sim \text{Gamma}(k, \text{rate} = k\, e^{-\mu_i}),
            \quad \mathbb{E}[y_i] = e^{\mu_i}  &&\text{site } \texttt{name}, (n,)

    Args:
        shape_prior: prior of the shape :math:`k`, a scalar distribution on the positive reals
            (default ``Exponential(1)``); the coefficient of variation is :math:`1/\sqrt{k}`.
        name: the observed site's name (default ``"obs"``); auxiliary sites are ``name/...``.

    Observed ``y`` must be strictly positive.
    """

    shape_prior: Distribution = attrs.field(factory=_exponential_one, validator=positive_prior)
    name: str = attrs.field(default="obs", validator=site_name)

    def likelihood(self, mu: jax.Array) -> Distribution:
        k = numpyro.sample("shape", self.shape_prior)
        return dist.Gamma(k, k * jnp.exp(-mu))

    def check_target(self, y: np.ndarray, mu_shape: tuple[int, ...]) -> None:
        check_values(self, y, "strictly positive values (y > 0)", lambda v: v > 0)


@attrs.frozen(kw_only=True)
class ExponentialLink(BaseLink):
    r"""Exponential likelihood with mean ``exp(mu)`` (log link).

    Generative model, for a predictor ``mu`` of shape ``(n,)`` (or ``(n, 1)``):

    .. math::
        y_i &\sim \text{Exponential}(\text{rate} = e^{-\mu_i}),
            \quad \mathbb{E}[y_i] = e^{\mu_i}  &&\text{site } \texttt{name}, (n,)

    Args:
        name: the observed site's name (default ``"obs"``).

    Observed ``y`` must be strictly positive (NumPyro's exponential puts no density on 0).
    """

    name: str = attrs.field(default="obs", validator=site_name)

    def likelihood(self, mu: jax.Array) -> Distribution:
        return dist.Exponential(jnp.exp(-mu))

    def check_target(self, y: np.ndarray, mu_shape: tuple[int, ...]) -> None:
        check_values(self, y, "strictly positive values (y > 0)", lambda v: v > 0)


@attrs.frozen(kw_only=True)
class BetaLink(BaseLink):
    r"""Beta likelihood for proportions in (0, 1), mean ``sigmoid(mu)`` and a learned precision.

    Generative model, for a predictor ``mu`` of shape ``(n,)`` (or ``(n, 1)``):

    .. math::
        \phi &\sim \text{precision\_prior}  &&\text{site } \texttt{name/precision}, ()\\
        m_i &= \operatorname{sigmoid}(\mu_i)\\
        y_i &\sim \text{Beta}(m_i \phi, (1 - m_i) \phi),
            \quad \mathbb{E}[y_i] = m_i  &&\text{site } \texttt{name}, (n,)

    Args:
        precision_prior: prior of the precision :math:`\phi`, a scalar distribution on the
            positive reals (default ``Exponential(1)``); :math:`\operatorname{Var}[y_i] =
            m_i (1 - m_i) / (1 + \phi)`.
        name: the observed site's name (default ``"obs"``); auxiliary sites are ``name/...``.

    Observed ``y`` must lie strictly inside (0, 1): exact 0s and 1s have no density.
    """

    precision_prior: Distribution = attrs.field(factory=_exponential_one, validator=positive_prior)
    name: str = attrs.field(default="obs", validator=site_name)

    def likelihood(self, mu: jax.Array) -> Distribution:
        phi = numpyro.sample("precision", self.precision_prior)
        return dist.Beta(jax.nn.sigmoid(mu) * phi, jax.nn.sigmoid(-mu) * phi)

    def check_target(self, y: np.ndarray, mu_shape: tuple[int, ...]) -> None:
        check_values(
            self,
            y,
            "proportions strictly inside (0, 1) (exact 0s and 1s have no density under a Beta: "
            "move them inside the interval, or use the logit link for 0/1 outcomes)",
            lambda v: (v > 0) & (v < 1),
        )
