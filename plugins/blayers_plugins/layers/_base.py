"""The shared contract of first-party layers: a final ``__call__`` around an abstract ``forward``.

``BaseLayer.__call__(name, *inputs, units=1, activation=None)`` checks the name and the inputs,
opens ``numpyro.handlers.scope(prefix=name)`` so every site is named ``"{name}/..."``, calls the
subclass's ``forward(*inputs, units=units)``, checks its ``(n, units)`` output and applies the
activation. Subclasses only write the math.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import numpy as np
import numpyro
from numpyro.distributions import Distribution
from numpyro.handlers import scope

from blayers_core import layer_input


class _LayerMeta(abc.ABCMeta):
    """Lets ``AdaptiveLayer("x", x)`` stand for ``AdaptiveLayer()("x", x)``, as BLayers allowed.

    A layer's constructor takes keyword arguments only, so a positional first argument that is a
    string can only be a site name.
    """

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if args and isinstance(args[0], str):
            return super().__call__()(*args, **kwargs)
        return super().__call__(*args, **kwargs)


class BaseLayer(metaclass=_LayerMeta):
    """Base of first-party layers. Subclasses implement :meth:`forward`; ``__call__`` is final."""

    #: Names of the positional inputs, used in error messages (e.g. ``("x", "z")``).
    input_names: ClassVar[tuple[str, ...]] = ("x",)

    def __call__(
        self,
        name: str,
        *inputs: Any,
        units: int = 1,
        activation: Callable[[jax.Array], jax.Array] | None = None,
    ) -> jax.Array:
        if not isinstance(name, str) or not name:
            raise TypeError(
                f"{type(self).__name__}: the first argument is the layer's site name, a non-empty "
                f"str, e.g. layer('mu', x); got {name!r}"
            )
        if len(inputs) != len(self.input_names):
            raise TypeError(
                f"layer {name!r} ({type(self).__name__}) takes inputs "
                f"({', '.join(self.input_names)}), got {len(inputs)} input(s)"
            )
        if isinstance(units, bool) or not isinstance(units, int | np.integer) or units < 1:
            raise ValueError(f"layer {name!r}: units must be a positive int, got {units!r}")
        arrays = [
            self.convert_input(name, a, v) for a, v in zip(self.input_names, inputs, strict=True)
        ]
        rows = {a: v.shape[0] for a, v in zip(self.input_names, arrays, strict=True)}
        if len(set(rows.values())) > 1:
            raise ValueError(f"layer {name!r}: inputs have different numbers of rows: {rows}")
        with scope(prefix=name):
            out = self.forward(*arrays, units=int(units))
        expected = (arrays[0].shape[0], int(units))
        if tuple(out.shape) != expected:  # a bug in the subclass, not in the user's data
            raise AssertionError(
                f"{type(self).__name__}.forward returned {out.shape}, not {expected}"
            )
        return out if activation is None else activation(out)

    def convert_input(self, layer: str, argument: str, value: Any) -> jax.Array:
        """Check and convert one input; default: a 2-D float matrix. Index layers override."""
        return layer_input(layer, argument, value)

    @abc.abstractmethod
    def forward(self, *inputs: jax.Array, units: int) -> jax.Array:
        """Sample this layer's parameters (already scoped) and return ``(n, units)``."""


def sample_adaptive(
    scale_site: str,
    coef_site: str,
    scale_prior: Distribution,
    coef_dist: type[Distribution],
    coef_loc: float,
    shape: tuple[int, ...],
) -> jax.Array:
    r"""The adaptive prior: one learned scale per output unit, coefficients drawn around it.

    .. math::
        \sigma_c \sim \text{scale\_prior} \;(u,), \qquad
        \theta_{\ldots c} \sim \text{coef\_dist}(\text{coef\_loc}, \sigma_c) \;(\text{shape})

    ``shape`` ends with the number of units ``u``. Returns the coefficients, of ``shape``.
    """
    scale = numpyro.sample(scale_site, scale_prior.expand([shape[-1]]).to_event(1))
    coef_prior = coef_dist(loc=coef_loc, scale=scale).expand(list(shape)).to_event(len(shape))
    return numpyro.sample(coef_site, coef_prior)  # type: ignore[no-any-return]
