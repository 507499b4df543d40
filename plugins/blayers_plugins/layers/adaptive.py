"""Linear layers: an adaptive (hierarchical) prior and a fixed prior (L2 / L1)."""

from __future__ import annotations

import attrs
import jax
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import Distribution

from blayers_core.plugin import BaseLayer, loc_scale_family, positive_prior, real_prior
from blayers_plugins.layers._adaptive_prior import sample_adaptive


@attrs.frozen(kw_only=True)
class AdaptiveLayer(BaseLayer):
    r"""Linear layer whose coefficient scale is learned (adaptive shrinkage).

    Generative model, for ``x`` of shape ``(n, d)`` and ``u = units``:

    .. math::
        \sigma_j &\sim \text{scale\_prior}, \quad j = 1..u  &&\text{site } \texttt{name/scale}, (u,)\\
        \beta_{ij} &\sim \text{coef\_dist}(\text{coef\_loc}, \sigma_j)
            &&\text{site } \texttt{name/beta}, (d, u)\\
        \text{out} &= x\,\beta  &&(n, u)

    Args:
        scale_prior: prior of the scale, a scalar distribution on the positive reals
            (default ``HalfNormal(1)``).
        coef_dist: location-scale family of the coefficients (default ``Normal``).
        coef_loc: location of the coefficients' prior (default 0).
    """

    scale_prior: Distribution = attrs.field(
        factory=lambda: dist.HalfNormal(1.0), validator=positive_prior
    )
    coef_dist: type[Distribution] = attrs.field(default=dist.Normal, validator=loc_scale_family)
    coef_loc: float = 0.0

    def forward(self, x: jax.Array, *, units: int) -> jax.Array:
        shape = (x.shape[1], units)
        beta = sample_adaptive(
            "scale", "beta", self.scale_prior, self.coef_dist, self.coef_loc, shape
        )
        return x @ beta


@attrs.frozen(kw_only=True)
class FixedPriorLayer(BaseLayer):
    r"""Linear layer with a fixed prior on the coefficients: ``Normal`` is L2, ``Laplace`` is L1.

    Generative model, for ``x`` of shape ``(n, d)`` and ``u = units``:

    .. math::
        \beta_{ij} &\sim \text{coef\_prior}  &&\text{site } \texttt{name/beta}, (d, u)\\
        \text{out} &= x\,\beta  &&(n, u)

    Args:
        coef_prior: scalar prior of every coefficient on the real line (default ``Normal(0, 1)``;
            ``Laplace(0, b)`` for an L1 penalty).
    """

    coef_prior: Distribution = attrs.field(
        factory=lambda: dist.Normal(0.0, 1.0), validator=real_prior
    )

    def forward(self, x: jax.Array, *, units: int) -> jax.Array:
        beta = numpyro.sample("beta", self.coef_prior.expand([x.shape[1], units]).to_event(2))
        return x @ beta
