"""Validators for prior arguments, so a bad prior fails when the layer or link is built."""

from __future__ import annotations

import inspect
import math
import numbers
from typing import Any

import attrs
import numpy as np
from numpyro.distributions import Distribution, constraints


def _positive_support(support: Any) -> bool:
    lower = getattr(support, "lower_bound", None)
    if isinstance(support, constraints._GreaterThan | constraints._GreaterThanEq):
        return bool(lower is not None and float(lower) >= 0.0)
    return support in (constraints.positive, constraints.nonnegative)


def _scalar(value: Distribution) -> bool:
    return tuple(value.batch_shape) == () and tuple(value.event_shape) == ()


def positive_prior(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A scalar NumPyro distribution on the positive reals (e.g. ``HalfNormal(1.0)``)."""
    if not isinstance(value, Distribution):
        raise TypeError(
            f"{attribute.name} must be a numpyro distribution instance such as "
            f"dist.HalfNormal(1.0), got {value!r}"
        )
    if not _scalar(value) or not _positive_support(value.support):
        raise ValueError(
            f"{attribute.name} must be a scalar distribution on the positive reals (it is a "
            f"scale), got {value!r} with support {value.support} and batch/event shape "
            f"{tuple(value.batch_shape)}/{tuple(value.event_shape)}"
        )


def real_prior(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A scalar NumPyro distribution on the real line (e.g. ``Normal(0, 1)``, ``Laplace(0, 1)``)."""
    if not isinstance(value, Distribution):
        raise TypeError(
            f"{attribute.name} must be a numpyro distribution instance such as "
            f"dist.Normal(0.0, 1.0), got {value!r}"
        )
    if not _scalar(value) or value.support is not constraints.real:
        raise ValueError(
            f"{attribute.name} must be a scalar distribution on the real line, got {value!r} "
            f"with support {value.support}"
        )


def loc_scale_family(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A NumPyro distribution class built as ``family(loc, scale)`` on the real line."""
    if not (isinstance(value, type) and issubclass(value, Distribution)):
        raise TypeError(
            f"{attribute.name} must be a numpyro distribution class such as dist.Normal "
            f"(not an instance), got {value!r}"
        )
    parameters = inspect.signature(value.__init__).parameters
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


def positive_int(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """An integer >= 1 (Python or NumPy)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{attribute.name} must be a positive int, got {value!r}")


def positive_number_or_none(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """``None`` or a finite number > 0 (Python, NumPy or a 0-d array)."""
    if value is None:
        return
    is_number = isinstance(value, numbers.Real) or (
        hasattr(value, "dtype") and np.ndim(value) == 0 and np.issubdtype(value.dtype, np.number)
    )
    if (
        isinstance(value, bool | np.bool_)
        or not is_number
        or not math.isfinite(float(value))
        or (float(value) <= 0)
    ):
        raise ValueError(f"{attribute.name} must be a positive number or None, got {value!r}")


def positive_number(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A finite number > 0 (Python, NumPy or a 0-d array); ``None`` is refused."""
    if value is None:
        raise ValueError(f"{attribute.name} must be a positive number (finite and > 0), got None")
    try:
        positive_number_or_none(instance, attribute, value)
    except ValueError:
        raise ValueError(
            f"{attribute.name} must be a positive number (finite and > 0), got {value!r}"
        ) from None


def boolean(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """``True`` or ``False`` (Python or NumPy)."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{attribute.name} must be True or False, got {value!r}")
