"""The ``student_t_prior`` layer, written against the Layer protocol from scratch."""

from __future__ import annotations

from typing import Any

import attrs
import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.handlers import scope

from blayers_core import layer_input
from blayers_robust._checks import positive_finite


@attrs.frozen(kw_only=True)
class StudentTPriorLayer:
    r"""Linear layer ``x @ beta`` whose coefficients have a heavy-tailed Student-t prior.

    Generative model, for ``x`` of shape ``(n, d)`` and ``u = units``:

    .. math::
        \beta_{jk} &\sim \text{StudentT}(\nu, 0, s), \quad j = 1..d,\ k = 1..u
            &&\text{site } \texttt{name/beta}, (d, u)\\
        \text{out} &= x\,\beta  &&(n, u)

    with :math:`\nu` = ``df`` and :math:`s` = ``scale``. Compared with a Normal prior of the same
    scale, the Student-t shrinks small coefficients about as much but lets a few large ones
    through (it is a scale mixture of Normals with an inverse-Gamma mixing distribution).

    It satisfies :class:`blayers_core.Layer` structurally: ``layer(name, x, units=1)`` samples
    ``"{name}/beta"`` and returns an ``(n, units)`` array. It holds configuration only.

    Args:
        df: degrees of freedom :math:`\nu > 0` of the prior (default 3; large values approach a
            Normal prior).
        scale: scale :math:`s > 0` of the prior (default 1).

    Raises:
        ValueError: from the constructor, when ``df`` or ``scale`` is not a positive finite number.
    """

    df: float = attrs.field(default=3.0, validator=positive_finite)
    scale: float = attrs.field(default=1.0, validator=positive_finite)

    def __call__(self, name: str, x: Any, *, units: int = 1) -> jax.Array:
        """Sample ``"{name}/beta"`` of shape ``(d, units)`` and return ``x @ beta``, ``(n, units)``.

        Raises:
            TypeError: ``name`` is not a non-empty str.
            ValueError: ``x`` is not a 2-D numeric array, or ``units`` is not a positive int.
        """
        if not isinstance(name, str) or not name:
            raise TypeError(
                "StudentTPriorLayer: the first argument is the layer's site name, a non-empty "
                f"str, e.g. layer('mu', x); got {name!r}"
            )
        if isinstance(units, bool) or not isinstance(units, int | np.integer) or units < 1:
            raise ValueError(f"layer {name!r}: units must be a positive int, got {units!r}")
        x = layer_input(name, "x", x)
        prior = dist.StudentT(self.df, 0.0, self.scale).expand([x.shape[1], int(units)])
        with scope(prefix=name):  # the site is "{name}/beta"
            beta = numpyro.sample("beta", prior.to_event(2))
        return x @ beta  # type: ignore[no-any-return]
