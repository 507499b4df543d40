"""The shared contract of first-party links: a final ``__call__`` around an abstract ``likelihood``.

``BaseLink.__call__(mu, y=None)`` aligns the predictor with the target (an ``(n, 1)`` predictor
matches an ``(n,)`` target; nothing else is reshaped or broadcast), samples the link's auxiliary
sites inside ``scope(prefix=name)`` and then the observed site ``name`` itself.
"""

from __future__ import annotations

import abc
from typing import Any

import jax
import jax.numpy as jnp
import numpyro
from numpyro.distributions import Distribution
from numpyro.handlers import scope


def align(link: str, mu: Any, y: Any | None) -> tuple[jax.Array, jax.Array | None]:
    """``mu`` and ``y`` with equal shapes; ``(n, 1)`` predictors lose their unit axis.

    Raises:
        ValueError: when the shapes differ in any other way; they are never broadcast.
    """
    mu = jnp.asarray(mu)
    if mu.ndim == 0:
        raise ValueError(
            f"link {link!r}: the predictor mu must have one value per row, got a scalar"
        )
    y_arr = None if y is None else jnp.asarray(y)
    if mu.ndim == 2 and mu.shape[1] == 1 and (y_arr is None or y_arr.ndim == 1):
        mu = mu[:, 0]
    if y_arr is not None and tuple(y_arr.shape) != tuple(mu.shape):
        raise ValueError(
            f"link {link!r}: the target y has shape {tuple(y_arr.shape)} but the predictor mu has "
            f"shape {tuple(mu.shape)}; they must match row for row (an (n, 1) predictor matches an "
            "(n,) target). Reshape one of them; blayers never broadcasts them against each other."
        )
    return mu, y_arr


class BaseLink(abc.ABC):
    """Base of first-party links. Subclasses implement :meth:`likelihood`; ``__call__`` is final.

    Subclasses are attrs classes with a ``name`` field: the observed site's name.
    """

    name: str

    def __call__(self, mu: Any, y: Any | None = None) -> jax.Array:
        mu, y = align(self.name, mu, y)
        with scope(prefix=self.name):
            likelihood = self.likelihood(mu)
        return numpyro.sample(self.name, likelihood, obs=y)  # type: ignore[no-any-return]

    @abc.abstractmethod
    def likelihood(self, mu: jax.Array) -> Distribution:
        """Sample auxiliary sites (already scoped) and return the distribution of ``y``."""


def site_name(instance: Any, attribute: Any, value: Any) -> None:
    """A non-empty site name without the scope divider."""
    if not isinstance(value, str) or not value or "/" in value:
        raise ValueError(f"{attribute.name} must be a non-empty str without '/', got {value!r}")
