"""The shared contract of first-party links: a final ``__call__`` around an abstract ``likelihood``.

``BaseLink.__call__(mu, y=None)`` aligns the predictor with the target (an ``(n, 1)`` predictor
matches an ``(n,)`` target; nothing else is reshaped or broadcast), samples the link's auxiliary
sites inside ``scope(prefix=name)`` and then the observed site ``name`` itself.
"""

from __future__ import annotations

import abc
from typing import Any

import jax
import numpyro
from numpyro.distributions import Distribution
from numpyro.handlers import scope

from blayers_core import align_to_target


class BaseLink(abc.ABC):
    """Base of first-party links. Subclasses implement :meth:`likelihood`; ``__call__`` is final.

    Subclasses are attrs classes with a ``name`` field: the observed site's name.
    """

    name: str

    def __call__(self, mu: Any, y: Any | None = None) -> jax.Array:
        mu, y = align_to_target(self.name, mu, y)
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
