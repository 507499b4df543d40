"""The ``student_t_prior`` layer: the public :class:`~blayers_core.plugin.BaseLayer` plus its math."""

from __future__ import annotations

import attrs
import jax
import numpyro
import numpyro.distributions as dist

from blayers_core.plugin import BaseLayer, positive_number


@attrs.frozen(kw_only=True)
class StudentTPriorLayer(BaseLayer):
    r"""Linear layer ``x @ beta`` whose coefficients have a heavy-tailed Student-t prior.

    Generative model, for ``x`` of shape ``(n, d)`` and ``u = units``:

    .. math::
        \beta_{jk} &\sim \text{StudentT}(\nu, 0, s), \quad j = 1..d,\ k = 1..u
            &&\text{site } \texttt{name/beta}, (d, u)\\
        \text{out} &= x\,\beta  &&(n, u)

    with :math:`\nu` = ``df`` and :math:`s` = ``scale``. Compared with a Normal prior of the same
    scale, the Student-t shrinks small coefficients about as much but lets a few large ones
    through (it is a scale mixture of Normals with an inverse-Gamma mixing distribution).

    Called as ``layer(name, x, units=1)``. The base class's final ``__call__`` checks ``name``,
    ``units`` and ``x`` (a 2-D numeric array), opens ``scope(prefix=name)`` so the site is
    ``"{name}/beta"``, and checks the ``(n, units)`` output; this class writes only the math. It
    holds configuration only.

    Args:
        df: degrees of freedom :math:`\nu > 0` of the prior (default 3; large values approach a
            Normal prior).
        scale: scale :math:`s > 0` of the prior (default 1).

    Raises:
        ValueError: from the constructor, when ``df`` or ``scale`` is not a positive finite number.
    """

    df: float = attrs.field(default=3.0, validator=positive_number)
    scale: float = attrs.field(default=1.0, validator=positive_number)

    def forward(self, x: jax.Array, *, units: int) -> jax.Array:
        """Sample ``beta`` of shape ``(d, units)`` and return ``x @ beta``, ``(n, units)``."""
        prior = dist.StudentT(self.df, 0.0, self.scale).expand([x.shape[1], units])
        beta = numpyro.sample("beta", prior.to_event(2))
        return x @ beta  # type: ignore[no-any-return]
