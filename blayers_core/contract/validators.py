"""attrs validators for the arguments of layers and links, so bad ones fail at construction.

Each has attrs' validator signature ``validator(instance, attribute, value)`` and raises a
``TypeError`` or ``ValueError`` that names the argument (``attribute.name``)::

    @attrs.frozen(kw_only=True)
    class MyLayer(BaseLayer):
        scale_prior: Distribution = attrs.field(validator=positive_prior)
        df: float = attrs.field(default=3.0, validator=positive_number)

A bad prior or number then fails when the layer is built (``layer("my_layer", df=-1)``), not deep
inside a JAX trace.
"""

from __future__ import annotations

import inspect
import math
import numbers
from typing import Any, cast

import attrs
import numpy as np
from numpyro.distributions import Distribution, constraints


# ------------------------------------------------------------------------------------- priors
def _scalar(value: Any) -> bool:
    return tuple(value.batch_shape) == () and tuple(value.event_shape) == ()


def _positive_support(support: Any) -> bool:
    lower = getattr(support, "lower_bound", None)
    if isinstance(support, constraints._GreaterThan | constraints._GreaterThanEq):
        return bool(lower is not None and float(lower) >= 0.0)
    return support in (constraints.positive, constraints.nonnegative)


def _unit_support(support: Any) -> bool:
    lower = getattr(support, "lower_bound", None)
    upper = getattr(support, "upper_bound", None)
    return bool(
        support is constraints.unit_interval
        or (
            isinstance(support, constraints._Interval)
            and lower is not None
            and upper is not None
            and float(lower) >= 0.0
            and float(upper) <= 1.0
        )
    )


def _require_distribution(attribute: attrs.Attribute[Any], value: Any, example: str) -> None:
    if not isinstance(value, Distribution):
        raise TypeError(
            f"{attribute.name} must be a numpyro distribution instance such as {example}, "
            f"got {value!r}"
        )


def positive_prior(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A scalar NumPyro distribution on the positive reals (e.g. ``HalfNormal(1.0)``), a scale."""
    _require_distribution(attribute, value, "dist.HalfNormal(1.0)")
    if not _scalar(value) or not _positive_support(value.support):
        raise ValueError(
            f"{attribute.name} must be a scalar distribution on the positive reals (it is a "
            f"scale), got {value!r} with support {value.support} and batch/event shape "
            f"{tuple(value.batch_shape)}/{tuple(value.event_shape)}"
        )


def real_prior(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A scalar NumPyro distribution on the real line (e.g. ``Normal(0, 1)``, ``Laplace(0, 1)``)."""
    _require_distribution(attribute, value, "dist.Normal(0.0, 1.0)")
    if not _scalar(value) or value.support is not constraints.real:
        raise ValueError(
            f"{attribute.name} must be a scalar distribution on the real line, got {value!r} "
            f"with support {value.support}"
        )


def unit_interval_prior(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A scalar NumPyro distribution on (a subset of) the unit interval (e.g. ``Beta(1, 1)``)."""
    _require_distribution(attribute, value, "dist.Beta(1.0, 1.0)")
    if not (_scalar(value) and _unit_support(value.support)):
        raise ValueError(
            f"{attribute.name} must be a scalar distribution on the unit interval (it is a "
            f"probability), such as dist.Beta(1.0, 1.0); got {value!r} with support "
            f"{value.support} and batch/event shape "
            f"{tuple(value.batch_shape)}/{tuple(value.event_shape)}"
        )


def loc_scale_family(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A NumPyro distribution *class* built as ``family(loc=..., scale=...)`` (Normal, Laplace,
    Cauchy, ...)."""
    if not (isinstance(value, type) and issubclass(value, Distribution)):
        raise TypeError(
            f"{attribute.name} must be a numpyro distribution class such as dist.Normal "
            f"(not an instance), got {value!r}"
        )
    parameters = inspect.signature(cast(Any, value).__init__).parameters
    others = [
        p.name
        for p in parameters.values()
        if p.name not in ("self", "loc", "scale", "validate_args")
        and p.default is inspect.Parameter.empty
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if not {"loc", "scale"} <= set(parameters) or others:
        raise ValueError(
            f"{attribute.name} must be a location-scale family built from loc= and scale= alone "
            f"(Normal, Laplace, Cauchy, ...), got {value.__name__} with parameters "
            f"{[p for p in parameters if p != 'self']}; for a family with more parameters, "
            "write a layer that samples them"
        )


# ------------------------------------------------------------------------------------ numbers
def positive_int(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """An integer >= 1 (Python or NumPy; ``bool`` is refused)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{attribute.name} must be a positive int, got {value!r}")


def positive_int_or_none(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """``None`` or an integer >= 1."""
    if value is not None and (
        isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral) or value < 1
    ):
        raise ValueError(f"{attribute.name} must be a positive int or None, got {value!r}")


def non_negative_int(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """An integer >= 0 (Python or NumPy; ``bool`` is refused)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{attribute.name} must be a non-negative int, got {value!r}")


def plain_int(value: Any) -> Any:
    """attrs converter: a NumPy integer as a Python int (so it can be written to JSON)."""
    return int(value) if isinstance(value, np.integer) else value


def probability(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A number strictly between 0 and 1."""
    is_number = isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)
    if not is_number or not 0 < value < 1:
        raise ValueError(f"{attribute.name} must be a probability in (0, 1), got {value!r}")


def _positive_finite(value: Any) -> bool:
    is_number = isinstance(value, numbers.Real) or (
        hasattr(value, "dtype") and np.ndim(value) == 0 and np.issubdtype(value.dtype, np.number)
    )
    return bool(
        not isinstance(value, bool | np.bool_)
        and is_number
        and math.isfinite(float(value))
        and float(value) > 0
    )


def positive_number(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A finite number > 0 (Python, NumPy or a 0-d array; ``bool`` and ``None`` are refused)."""
    if not _positive_finite(value):
        raise ValueError(
            f"{attribute.name} must be a positive number (finite and > 0), got {value!r}"
        )


def positive_number_or_none(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """``None`` or a finite number > 0 (Python, NumPy or a 0-d array)."""
    if value is not None and not _positive_finite(value):
        raise ValueError(f"{attribute.name} must be a positive number or None, got {value!r}")


def boolean(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """``True`` or ``False`` (Python or NumPy)."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{attribute.name} must be True or False, got {value!r}")


# -------------------------------------------------------------------------------------- names
#: The divider NumPyro's ``scope`` puts between a prefix and a site name.
SCOPE_DIVIDER = "/"


def site_name(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A NumPyro site name: a non-empty str without the scope divider ``/`` (e.g. a link's
    ``name``, whose auxiliary sites are ``name/...``)."""
    if not isinstance(value, str) or not value or SCOPE_DIVIDER in value:
        raise ValueError(f"{attribute.name} must be a non-empty str without '/', got {value!r}")
