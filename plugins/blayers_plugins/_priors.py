"""Validators for prior arguments, so a bad prior fails when the layer or link is built."""

from __future__ import annotations

from typing import Any

import attrs
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
    if not {"loc", "scale"} <= set(value.arg_constraints):
        raise ValueError(
            f"{attribute.name} must be a location-scale family taking loc= and scale= "
            f"(Normal, Laplace, Cauchy, ...), got {value.__name__} with arguments "
            f"{sorted(value.arg_constraints)}"
        )


def positive_int(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name} must be a positive int, got {value!r}")


def finite_float(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    import math

    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{attribute.name} must be a finite number, got {value!r}")
