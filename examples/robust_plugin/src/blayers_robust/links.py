"""The ``robust_student_t`` link, written against the Link protocol from scratch."""

from __future__ import annotations

from typing import Any

import attrs
import jax
import numpyro
import numpyro.distributions as dist
from numpyro.handlers import scope

from blayers_core import align_to_target
from blayers_robust._checks import positive_finite_or_none, site_name


@attrs.frozen(kw_only=True)
class RobustStudentTLink:
    r"""Student-t likelihood around the predictor: a regression robust to outliers.

    Generative model, for a predictor ``mu`` of shape ``(n,)`` (or ``(n, 1)``) and ``o = name``:

    .. math::
        \sigma &\sim \text{Exponential}(1)  &&\text{site } \texttt{o/sigma}, ()\\
        \nu &\sim \text{Gamma}(2, 0.1)  &&\text{site } \texttt{o/df}, ()\\
        y_i &\sim \text{StudentT}(\nu, \mu_i, \sigma), \quad i = 1..n  &&\text{site } \texttt{o}, (n,)

    ``Gamma(2, 0.1)`` (shape 2, rate 0.1, mean 20) is the usual weakly informative prior on the
    degrees of freedom. With ``df`` given, :math:`\nu` is that fixed value and no ``o/df`` site is
    sampled.

    It satisfies :class:`blayers_core.Link` structurally: ``link(mu, y=None)`` observes ``o`` at
    ``y`` (or draws it when ``y`` is ``None``) and returns it, ``(n,)``. An ``(n, 1)`` predictor
    matches an ``(n,)`` target; any other shape mismatch raises ``ValueError``.

    Args:
        df: fixed degrees of freedom :math:`\nu > 0`; ``None`` (default) learns them.
        name: the observed site's name (default ``"obs"``); auxiliary sites are ``name/...``.

    Raises:
        ValueError: from the constructor, when ``df`` is not ``None`` or a positive finite
            number, or ``name`` is empty or contains ``/``.
    """

    df: float | None = attrs.field(default=None, validator=positive_finite_or_none)
    name: str = attrs.field(default="obs", validator=site_name)

    def __call__(self, mu: Any, y: Any | None = None) -> jax.Array:
        """Sample ``name/sigma`` (and ``name/df``), then observe ``name`` at ``y``; ``(n,)``."""
        mu, y = align_to_target(self.name, mu, y)
        with scope(prefix=self.name):  # auxiliary sites are "{name}/sigma", "{name}/df"
            sigma = numpyro.sample("sigma", dist.Exponential(1.0))
            df = numpyro.sample("df", dist.Gamma(2.0, 0.1)) if self.df is None else self.df
        return numpyro.sample(self.name, dist.StudentT(df, mu, sigma), obs=y)  # type: ignore[no-any-return]
