"""The ``laplace_prior`` layer: a linear layer with an L1-style (Bayesian lasso) prior."""

from __future__ import annotations

import attrs
import jax
import numpyro
import numpyro.distributions as dist

from blayers_core.plugin import BaseLayer, positive_number


@attrs.frozen(kw_only=True)
class LaplacePriorLayer(BaseLayer):
    r"""Linear layer ``x @ beta`` with a Laplace prior on the coefficients (the Bayesian lasso).

    Generative model, for ``x`` of shape ``(n, d)`` and ``u = units``:

    .. math::
        \beta_{jk} &\sim \text{Laplace}(0, s), \quad j = 1..d,\ k = 1..u
            &&\text{site } \texttt{name/beta}, (d, u)\\
        \text{out} &= x\,\beta  &&(n, u)

    The posterior mode is the lasso estimate with penalty :math:`\sigma^2 / s` under a Gaussian
    likelihood of noise scale :math:`\sigma`.

    Args:
        scale: the prior scale :math:`s > 0` (default 1).
    """

    scale: float = attrs.field(default=1.0, validator=positive_number)

    def forward(self, x: jax.Array, *, units: int) -> jax.Array:
        """Sample ``beta`` ``(d, units)`` (the site ``name/beta``); return ``x @ beta``."""
        prior = dist.Laplace(0.0, self.scale).expand([x.shape[1], units]).to_event(2)
        beta = numpyro.sample("beta", prior)
        return x @ beta  # type: ignore[no-any-return]
