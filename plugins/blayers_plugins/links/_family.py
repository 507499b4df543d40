"""What the first-party likelihood families share: target checks, predictor layouts, validators.

:class:`FamilyLink` is :class:`~blayers_plugins.links._base.BaseLink` with three more hooks, because
``BaseLink.likelihood(mu)`` never sees the target:

* ``align(mu, y)`` checks and reshapes the predictor against the target. The default is
  :func:`blayers_core.align_to_target` (an ``(n, 1)`` predictor matches an ``(n,)`` target);
  links whose predictor has a column per parameter or per class override it, e.g. the categorical
  link's ``(n, K)`` logits against ``(n,)`` codes.
* ``check_target(y, mu)`` checks the observed values when they are concrete (eager calls and the
  dry run that ``fit`` and ``predict`` make before compiling): counts must be non-negative
  integers, class codes must be in range, and so on. A bad value raises a ``ValueError`` naming
  the link and what it allows, instead of becoming a ``-inf`` or ``NaN`` loss after compilation.
* ``target_dtype``: the dtype observed values are cast to after the check (``int32`` class codes,
  which NumPyro's categorical indexes with), concrete or traced; ``None`` leaves them as they are.

Otherwise ``__call__`` does exactly what ``BaseLink.__call__`` does: auxiliary sites inside
``scope(prefix=name)``, then the observed site ``name``.
"""

from __future__ import annotations

import numbers
from typing import Any, ClassVar

import attrs
import jax
import numpy as np
import numpyro
from numpyro.distributions import Distribution, constraints
from numpyro.handlers import scope

from blayers_core import align_to_target, check_data
from blayers_plugins.links._base import BaseLink

#: How many offending values an error message shows.
_SHOWN = 3


class FamilyLink(BaseLink):
    """A :class:`BaseLink` that also checks the predictor's layout and the target's values.

    Subclasses implement :meth:`likelihood` and, where needed, override :meth:`align`,
    :meth:`check_target` and :attr:`target_dtype`.
    """

    #: The dtype observed values are cast to after :meth:`check_target` (``None``: unchanged).
    target_dtype: ClassVar[Any] = None

    def __call__(self, mu: Any, y: Any | None = None) -> jax.Array:
        mu, y = self.align(mu, y)
        if y is not None:
            layout = jax.ShapeDtypeStruct(mu.shape, mu.dtype)
            check_data(lambda values: self.check_target(values, layout), y)
            if self.target_dtype is not None:
                y = y.astype(self.target_dtype)
        with scope(prefix=self.name):
            likelihood = self.likelihood(mu)
        return numpyro.sample(self.name, likelihood, obs=y)  # type: ignore[no-any-return]

    @property
    def label(self) -> str:
        """``link 'obs' (PoissonLink)``, the start of every error message."""
        return f"link {self.name!r} ({type(self).__name__})"

    def align(self, mu: Any, y: Any | None) -> tuple[jax.Array, jax.Array | None]:
        """``mu`` and ``y`` with matching shapes (default: :func:`blayers_core.align_to_target`)."""
        return align_to_target(self.name, mu, y)

    def check_target(self, y: jax.Array, mu: jax.Array) -> None:
        """Raise ``ValueError`` on observed values (NumPy) outside the family's support. ``mu`` gives
        the aligned predictor's shape and dtype only (e.g. the number of classes); it runs through
        :func:`blayers_core.check_data`. Default: any value is allowed."""


# ------------------------------------------------------------------------------ target checks
def _numeric(link: FamilyLink, y: Any, allowed: str) -> np.ndarray:
    values = np.asarray(y)
    if values.dtype.kind not in "biuf":
        raise ValueError(f"{link.label}: y must hold {allowed}, got dtype {values.dtype}")
    return values


def _raise_if_any(link: FamilyLink, values: np.ndarray, bad: np.ndarray, allowed: str) -> None:
    if not bad.any():
        return
    where = np.argwhere(bad)[:_SHOWN]
    shown = ", ".join(
        f"y[{', '.join(str(int(i)) for i in idx)}] = {values[tuple(idx)]:g}" for idx in where
    )
    more = ", ..." if bad.sum() > _SHOWN else ""
    raise ValueError(
        f"{link.label}: y must hold {allowed}; {int(bad.sum())} of {bad.size} values are outside "
        f"that ({shown}{more})"
    )


def check_values(link: FamilyLink, y: Any, allowed: str, ok: Any) -> None:
    """Raise unless ``ok(values)`` holds for every concrete value of ``y``.

    ``ok`` maps a float64 NumPy array to a bool array; ``allowed`` says in words what is valid.
    """
    values = _numeric(link, y, allowed).astype(np.float64)
    with np.errstate(invalid="ignore"):
        bad = ~(np.isfinite(values) & ok(values))
    _raise_if_any(link, values, bad, allowed)


def check_counts(link: FamilyLink, y: Any) -> None:
    """Non-negative integer counts (any numeric dtype: ``3.0`` is the count 3)."""
    check_values(
        link,
        y,
        "non-negative integer counts (0, 1, 2, ...)",
        lambda v: (v >= 0) & (v == np.floor(v)),
    )


def check_codes(link: FamilyLink, y: Any, num_classes: int) -> None:
    """Integer class codes ``0..num_classes-1`` (any numeric dtype: ``2.0`` is the code 2)."""
    allowed = f"integer class codes 0..{num_classes - 1}"
    check_values(link, y, allowed, lambda v: (v >= 0) & (v < num_classes) & (v == np.floor(v)))


# --------------------------------------------------------------------------------- validators
def unit_interval_prior(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A scalar NumPyro distribution on (a subset of) the unit interval (e.g. ``Beta(1, 1)``)."""
    if not isinstance(value, Distribution):
        raise TypeError(
            f"{attribute.name} must be a numpyro distribution instance such as "
            f"dist.Beta(1.0, 1.0), got {value!r}"
        )
    support = value.support
    lower = getattr(support, "lower_bound", None)
    upper = getattr(support, "upper_bound", None)
    in_unit = support is constraints.unit_interval or (
        isinstance(support, constraints._Interval)
        and lower is not None
        and upper is not None
        and float(lower) >= 0.0
        and float(upper) <= 1.0
    )
    scalar = tuple(value.batch_shape) == () and tuple(value.event_shape) == ()
    if not (scalar and in_unit):
        raise ValueError(
            f"{attribute.name} must be a scalar distribution on the unit interval (it is a "
            f"probability), such as dist.Beta(1.0, 1.0); got {value!r} with support {support} "
            f"and batch/event shape {tuple(value.batch_shape)}/{tuple(value.event_shape)}"
        )


def num_classes_validator(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """An int >= 2 (Python or NumPy)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral) or value < 2:
        raise ValueError(
            f"{attribute.name} must be an int >= 2 (the number of classes), got {value!r}"
        )
