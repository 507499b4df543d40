"""Location-scale links (Gaussian, log-normal, Student-t): one scale option, three families.

The noise scale is chosen by the ``scale`` argument:

* ``None`` (default): learned, one scalar ``sigma ~ sigma_prior`` at site ``name/sigma``;
* a positive number: known, no site is sampled;
* ``"per_row"``: learned per row from the predictor. ``mu`` then has shape ``(n, 2)``: column 0
  is the location and column 1 the unconstrained scale, mapped to
  ``sigma_i = softplus(mu[i, 1])``. A layer called with ``units=2`` builds exactly that, e.g.
  ``link(layer("mu", x, units=2), y)``; the target stays ``(n,)``.
"""

from __future__ import annotations

import abc
import math
import numbers
from typing import Any

import attrs
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import Distribution

from blayers_core.plugin import BaseLink, align_to_target, positive_prior, site_name

#: The ``scale`` option for a scale learned per row from a second predictor column.
PER_ROW = "per_row"


def scale_option(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """``None`` (learned), a finite number > 0 (known) or ``"per_row"``."""
    if value is None or (isinstance(value, str) and value == PER_ROW):
        return
    is_number = isinstance(value, numbers.Real) or (
        hasattr(value, "dtype") and np.ndim(value) == 0 and np.issubdtype(value.dtype, np.number)
    )
    if (
        isinstance(value, bool | np.bool_)
        or not is_number
        or not math.isfinite(float(value))
        or float(value) <= 0
    ):
        raise ValueError(
            f"{attribute.name} must be a positive number (a known scale), None (one learned scale) "
            f"or {PER_ROW!r} (a scale per row from column 1 of an (n, 2) predictor), got {value!r}"
        )


@attrs.frozen(kw_only=True)
class LocScaleLink(BaseLink):
    """Base of the location-scale links; subclasses give :meth:`family` (and its extra sites).

    Args:
        sigma_prior: prior of the one learned scale, a scalar distribution on the positive reals
            (default ``Exponential(1)``); only with ``scale=None``.
        scale: ``None`` (learned), a known positive number, or ``"per_row"`` (see the module).
        name: the observed site's name (default ``"obs"``); auxiliary sites are ``name/...``.
    """

    sigma_prior: Distribution | None = attrs.field(
        default=None, validator=attrs.validators.optional(positive_prior)
    )
    scale: float | str | None = attrs.field(default=None, validator=scale_option)
    name: str = attrs.field(default="obs", validator=site_name)

    def __attrs_post_init__(self) -> None:
        if self.sigma_prior is not None and self.scale is not None:
            raise ValueError(
                "give sigma_prior (a learned scale) or scale (a known one, or 'per_row'), not both"
            )

    @property
    def per_row(self) -> bool:
        return isinstance(self.scale, str)

    def align(self, mu: Any, y: Any | None) -> tuple[jax.Array, jax.Array | None]:
        if not self.per_row:
            return align_to_target(self.name, mu, y)
        mu = jnp.asarray(mu)
        if mu.ndim != 2 or mu.shape[1] != 2:
            raise ValueError(
                f"{self.label}: with scale='per_row' the predictor mu must have shape (n, 2), "
                "column 0 the location and column 1 the unconstrained scale "
                f"(sigma = softplus(mu[:, 1])), got shape {tuple(mu.shape)}. Build it with "
                "units=2, e.g. layer('mu', x, units=2), or jnp.stack([loc, raw_scale], axis=1)."
            )
        y_arr = None if y is None else jnp.asarray(y)
        if y_arr is not None and tuple(y_arr.shape) != (mu.shape[0],):
            raise ValueError(
                f"{self.label}: with scale='per_row' the target y must have shape (n,) = "
                f"({mu.shape[0]},), one value per row of the (n, 2) predictor mu, got shape "
                f"{tuple(y_arr.shape)}. blayers never broadcasts them against each other."
            )
        return mu, y_arr

    def likelihood(self, mu: jax.Array) -> Distribution:
        if self.per_row:
            return self.family(mu[:, 0], jax.nn.softplus(mu[:, 1]))
        if self.scale is not None:
            return self.family(mu, self.scale)
        prior = self.sigma_prior if self.sigma_prior is not None else dist.Exponential(1.0)
        return self.family(mu, numpyro.sample("sigma", prior))

    @abc.abstractmethod
    def family(self, loc: jax.Array, sigma: Any) -> Distribution:
        """The distribution of ``y`` given location and scale (may sample more scoped sites)."""
