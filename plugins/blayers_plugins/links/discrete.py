"""Links for discrete outcomes: binary (logit), categorical (softmax), ordinal (cumulative logit).

Observed classes are integer codes (any integer dtype, or floats holding whole numbers), checked
against the link's classes when concrete; a binary outcome is 0/1 (or bool).
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import Distribution

from blayers_core.plugin import BaseLink, positive_prior, real_prior, site_name
from blayers_plugins.links._family import (
    check_codes,
    check_values,
    num_classes_validator,
)


@attrs.frozen(kw_only=True)
class LogitLink(BaseLink):
    r"""Bernoulli likelihood for 0/1 outcomes with log-odds ``mu`` (logistic regression).

    Generative model, for a predictor ``mu`` of shape ``(n,)`` (or ``(n, 1)``):

    .. math::
        y_i &\sim \text{Bernoulli}(\operatorname{sigmoid}(\mu_i))  &&\text{site } \texttt{name}, (n,)

    Args:
        name: the observed site's name (default ``"obs"``).

    Observed ``y`` must be 0 or 1 (bool, integer or float).
    """

    name: str = attrs.field(default="obs", validator=site_name)

    def likelihood(self, mu: jax.Array) -> Distribution:
        return dist.BernoulliLogits(mu)

    def check_target(self, y: np.ndarray, mu_shape: tuple[int, ...]) -> None:
        check_values(self, y, "binary outcomes 0 or 1", lambda v: (v == 0) | (v == 1))


@attrs.frozen(kw_only=True)
class CategoricalLink(BaseLink):
    r"""Categorical likelihood over K classes with logits ``mu`` of shape ``(n, K)`` (softmax).

    Generative model, for logits ``mu`` of shape ``(n, K)``, one column per class (build them
    with ``units=K``):

    .. math::
        p_{ik} &= \frac{e^{\mu_{ik}}}{\sum_j e^{\mu_{ij}}}\\
        y_i &\sim \text{Categorical}(p_{i\cdot}), \quad y_i \in \{0, \dots, K-1\}
            &&\text{site } \texttt{name}, (n,)

    The target is ``(n,)`` codes, not one-hot rows. Adding the same number to a row of logits
    leaves the likelihood unchanged: only differences between columns are identified by the data,
    the layer's prior pins down the rest.

    Args:
        num_classes: K, checked against the columns of ``mu`` (default: taken from ``mu``).
        name: the observed site's name (default ``"obs"``).
    """

    #: Columns of the predictor (classes) the conformance kit calls it with.
    example_units: ClassVar[int] = 3
    target_dtype: ClassVar[Any] = jnp.int32
    num_classes: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(num_classes_validator)
    )
    name: str = attrs.field(default="obs", validator=site_name)

    def align(self, mu: Any, y: Any | None) -> tuple[jax.Array, jax.Array | None]:
        mu = jnp.asarray(mu)
        columns = "K >= 2" if self.num_classes is None else f"K = num_classes = {self.num_classes}"
        if mu.ndim != 2 or mu.shape[1] < 2 or mu.shape[1] != (self.num_classes or mu.shape[1]):
            raise ValueError(
                f"{self.label}: the logits mu must have shape (n, K), one column per class with "
                f"{columns}, got shape {tuple(mu.shape)}. Build them with units=K, e.g. "
                "layer('mu', x, units=K); the target y holds (n,) class codes 0..K-1."
            )
        y_arr = None if y is None else jnp.asarray(y)
        if y_arr is not None and tuple(y_arr.shape) != (mu.shape[0],):
            raise ValueError(
                f"{self.label}: the target y must hold one class code per row, shape (n,) = "
                f"({mu.shape[0]},) for logits mu of shape {tuple(mu.shape)}, got shape "
                f"{tuple(y_arr.shape)} (codes 0..K-1, not one-hot rows). blayers never "
                "broadcasts them against each other."
            )
        return mu, y_arr

    def check_target(self, y: np.ndarray, mu_shape: tuple[int, ...]) -> None:
        check_codes(self, y, mu_shape[1])

    def likelihood(self, mu: jax.Array) -> Distribution:
        return dist.CategoricalLogits(mu)


@attrs.frozen(kw_only=True)
class OrdinalLink(BaseLink):
    r"""Ordinal likelihood over K ordered classes: cumulative logit with learned cutpoints.

    Generative model, for a predictor ``mu`` of shape ``(n,)`` (or ``(n, 1)``) and
    ``K = num_classes``:

    .. math::
        c_1 &\sim \text{first\_cutpoint\_prior}  &&\text{site } \texttt{name/first\_cutpoint}, ()\\
        \delta_j &\sim \text{gap\_prior}, \quad j = 1..K-2
            &&\text{site } \texttt{name/cutpoint\_gaps}, (K-2,)\\
        c_{j+1} &= c_j + \delta_j  &&\text{cutpoints}, (K-1,)\\
        P(y_i \le k) &= \operatorname{sigmoid}(c_{k+1} - \mu_i), \quad k = 0..K-2\\
        y_i &\sim \text{Categorical}(P(y_i = 0), \dots, P(y_i = K-1))
            &&\text{site } \texttt{name}, (n,)

    This is NumPyro's ``OrderedLogistic(mu, cutpoints)`` with its log-probabilities computed in
    closed form: for :math:`0 < k < K-1`, :math:`\log P(y_i = k) = \log\sigma(c_{k+1} - \mu_i)
    + \log\sigma(\mu_i - c_k) + \log(1 - e^{-\delta_k})`, so no probability is a difference of
    two rounded sigmoids (which is 0 in float32 far in the tails, and its log ``-inf``) and the K
    probabilities sum to 1. With ``K = 2`` there are no gaps and this is logistic regression with
    intercept :math:`-c_1`.

    The cutpoints are not a site of their own; :meth:`cutpoints` builds them from values or
    posterior draws of ``first_cutpoint`` and ``cutpoint_gaps``. Adding a constant to ``mu`` and
    to every cutpoint leaves the likelihood unchanged, so an intercept in the predictor is
    identified only through the priors: leave it out.

    Args:
        num_classes: K >= 2, the number of ordered classes; codes are ``0..K-1``.
        first_cutpoint_prior: prior of the lowest cutpoint, a scalar distribution on the real
            line (default ``Normal(0, 2)``).
        gap_prior: prior of each gap between consecutive cutpoints, a scalar distribution on the
            positive reals (default ``Exponential(1)``).
        name: the observed site's name (default ``"obs"``); auxiliary sites are ``name/...``.
    """

    #: Constructor arguments the conformance kit (blayers_core.testing) builds it with.
    example_config: ClassVar[dict[str, Any]] = {"num_classes": 3}
    target_dtype: ClassVar[Any] = jnp.int32
    num_classes: int = attrs.field(validator=num_classes_validator)
    first_cutpoint_prior: Distribution = attrs.field(
        factory=lambda: dist.Normal(0.0, 2.0), validator=real_prior
    )
    gap_prior: Distribution = attrs.field(
        factory=lambda: dist.Exponential(1.0), validator=positive_prior
    )
    name: str = attrs.field(default="obs", validator=site_name)

    def check_target(self, y: np.ndarray, mu_shape: tuple[int, ...]) -> None:
        check_codes(self, y, self.num_classes)

    @staticmethod
    def cutpoints(first_cutpoint: Any, cutpoint_gaps: Any | None = None) -> jax.Array:
        """Cutpoints ``(..., K-1)`` from values (or draws ``(S,)``, ``(S, K-2)``) of the sites."""
        first = jnp.asarray(first_cutpoint)[..., None]
        if cutpoint_gaps is None:
            return first
        gaps = jnp.cumsum(jnp.asarray(cutpoint_gaps), axis=-1)
        return jnp.concatenate([first, first + gaps], axis=-1)

    def likelihood(self, mu: jax.Array) -> Distribution:
        first = numpyro.sample("first_cutpoint", self.first_cutpoint_prior)
        num_gaps = self.num_classes - 2
        if num_gaps:
            prior = self.gap_prior.expand([num_gaps]).to_event(1)
            gaps = numpyro.sample("cutpoint_gaps", prior)
        else:
            gaps = jnp.zeros((0,))
        cutpoints = self.cutpoints(first, gaps)
        eta = mu[..., None]
        below = jax.nn.log_sigmoid(cutpoints - eta)  # log P(y <= k), k = 0..K-2
        above = jax.nn.log_sigmoid(eta - cutpoints)  # log P(y > k)
        middle = below[..., 1:] + above[..., :-1] + jnp.log(-jnp.expm1(-gaps))
        log_probs = jnp.concatenate([below[..., :1], middle, above[..., -1:]], axis=-1)
        return dist.CategoricalLogits(log_probs)
