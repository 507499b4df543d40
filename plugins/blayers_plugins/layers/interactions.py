"""Interaction layers: the order-2 factorization machine and the low-rank (UV) interaction."""

from __future__ import annotations

from typing import ClassVar

import attrs
import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from numpyro.distributions import Distribution

from blayers_plugins._priors import loc_scale_family, positive_int, positive_prior
from blayers_plugins.layers._base import BaseLayer, sample_adaptive


@attrs.frozen(kw_only=True)
class FMLayer(BaseLayer):
    r"""Order-2 factorization machine (Rendle 2010), pairwise interactions through rank-``k`` factors.

    Generative model, for ``x`` of shape ``(n, d)``, rank ``k = low_rank_dim`` and ``u = units``:

    .. math::
        \sigma_c &\sim \text{scale\_prior}  &&\texttt{name/scale}, (u,)\\
        \theta_{ifc} &\sim \text{coef\_dist}(\text{coef\_loc}, \sigma_c)
            &&\texttt{name/theta}, (d, k, u)\\
        \text{out}_{nc} &= \sum_{i<j} \langle\theta_{i\cdot c}, \theta_{j\cdot c}\rangle x_{ni} x_{nj}
          = \tfrac12 \sum_f \Big[\big(\textstyle\sum_i \theta_{ifc} x_{ni}\big)^2
            - \textstyle\sum_i \theta_{ifc}^2 x_{ni}^2\Big]  &&(n, u)

    The right-hand form costs ``O(n d k)``; it has no ``x_i^2`` terms (add them with another layer).
    """

    low_rank_dim: int = attrs.field(validator=positive_int)
    scale_prior: Distribution = attrs.field(
        factory=lambda: dist.HalfNormal(1.0), validator=positive_prior
    )
    coef_dist: type[Distribution] = attrs.field(default=dist.Normal, validator=loc_scale_family)
    coef_loc: float = 0.0

    def forward(self, x: jax.Array, *, units: int) -> jax.Array:  # type: ignore[override]
        shape = (x.shape[1], self.low_rank_dim, units)
        theta = sample_adaptive(
            "scale", "theta", self.scale_prior, self.coef_dist, self.coef_loc, shape
        )
        projected = jnp.einsum("nd,dku->nku", x, theta)
        squares = jnp.einsum("nd,dku->nku", x**2, theta**2)
        return 0.5 * jnp.sum(projected**2 - squares, axis=1)


@attrs.frozen(kw_only=True)
class LowRankInteractionLayer(BaseLayer):
    r"""Low-rank interaction of two inputs: ``x`` and ``z`` projected to rank ``k`` and multiplied.

    Generative model, for ``x`` ``(n, d_x)``, ``z`` ``(n, d_z)``, ``k = low_rank_dim``, ``u = units``:

    .. math::
        \sigma^x_c, \sigma^z_c &\sim \text{scale\_prior}
            &&\texttt{name/x\_scale}, \texttt{name/z\_scale}, (u,)\\
        U_{ifc} &\sim \text{coef\_dist}(\text{coef\_loc}, \sigma^x_c)  &&\texttt{name/x\_theta}, (d_x, k, u)\\
        V_{jfc} &\sim \text{coef\_dist}(\text{coef\_loc}, \sigma^z_c)  &&\texttt{name/z\_theta}, (d_z, k, u)\\
        \text{out}_{nc} &= \sum_f (x U)_{nfc}\,(z V)_{nfc}
            = x_n^\top (U_{\cdot\cdot c} V_{\cdot\cdot c}^\top) z_n  &&(n, u)
    """

    input_names: ClassVar[tuple[str, ...]] = ("x", "z")

    low_rank_dim: int = attrs.field(validator=positive_int)
    scale_prior: Distribution = attrs.field(
        factory=lambda: dist.HalfNormal(1.0), validator=positive_prior
    )
    coef_dist: type[Distribution] = attrs.field(default=dist.Normal, validator=loc_scale_family)
    coef_loc: float = 0.0

    def forward(self, x: jax.Array, z: jax.Array, *, units: int) -> jax.Array:  # type: ignore[override]
        k = self.low_rank_dim
        prior, family, loc = self.scale_prior, self.coef_dist, self.coef_loc
        u_factors = sample_adaptive(
            "x_scale", "x_theta", prior, family, loc, (x.shape[1], k, units)
        )
        v_factors = sample_adaptive(
            "z_scale", "z_theta", prior, family, loc, (z.shape[1], k, units)
        )
        xu = jnp.einsum("nd,dku->nku", x, u_factors)
        zv = jnp.einsum("nd,dku->nku", z, v_factors)
        return jnp.sum(xu * zv, axis=1)
