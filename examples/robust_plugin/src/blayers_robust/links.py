"""The ``robust_student_t`` link: the public :class:`~blayers_core.plugin.BaseLink` plus its math."""

from __future__ import annotations

import attrs
import jax
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import Distribution

from blayers_core.plugin import BaseLink, positive_number_or_none, site_name


@attrs.frozen(kw_only=True)
class RobustStudentTLink(BaseLink):
    r"""Student-t likelihood around the predictor: a regression robust to outliers.

    Generative model, for a predictor ``mu`` of shape ``(n,)`` (or ``(n, 1)``) and ``o = name``:

    .. math::
        \sigma &\sim \text{Exponential}(1)  &&\text{site } \texttt{o/sigma}, ()\\
        \nu &\sim \text{Gamma}(2, 0.1)  &&\text{site } \texttt{o/df}, ()\\
        y_i &\sim \text{StudentT}(\nu, \mu_i, \sigma), \quad i = 1..n  &&\text{site } \texttt{o}, (n,)

    ``Gamma(2, 0.1)`` (shape 2, rate 0.1, mean 20) is the usual weakly informative prior on the
    degrees of freedom. With ``df`` given, :math:`\nu` is that fixed value and no ``o/df`` site is
    sampled.

    Called as ``link(mu, y=None)``. The base class's final ``__call__`` matches ``mu`` to ``y``
    (an ``(n, 1)`` predictor matches an ``(n,)`` target; any other mismatch raises
    ``ValueError``), scopes the auxiliary sites under ``o``, and observes ``o`` at ``y``, or draws
    it, ``(n,)``, when ``y`` is ``None``; this class writes only the likelihood.

    Args:
        df: fixed degrees of freedom :math:`\nu > 0`; ``None`` (default) learns them.
        name: the observed site's name (default ``"obs"``); auxiliary sites are ``name/...``.

    Raises:
        ValueError: from the constructor, when ``df`` is not ``None`` or a positive finite
            number, or ``name`` is empty or contains ``/``.
    """

    df: float | None = attrs.field(default=None, validator=positive_number_or_none)
    name: str = attrs.field(default="obs", validator=site_name)

    def likelihood(self, mu: jax.Array) -> Distribution:
        """Sample ``sigma`` (and ``df``), scoped under ``name``; the distribution of ``y``."""
        sigma = numpyro.sample("sigma", dist.Exponential(1.0))
        df = numpyro.sample("df", dist.Gamma(2.0, 0.1)) if self.df is None else self.df
        return dist.StudentT(df, mu, sigma)
