"""Argument checks shared by the layer and the link (attrs validators and input checks)."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def positive_finite(instance: Any, attribute: Any, value: Any) -> None:
    """attrs validator: a positive, finite real number (``bool`` is refused)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float | np.integer | np.floating)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(
            f"{type(instance).__name__}: {attribute.name} must be a positive finite number, "
            f"got {value!r}"
        )


def positive_finite_or_none(instance: Any, attribute: Any, value: Any) -> None:
    """attrs validator: ``None`` or a positive, finite real number."""
    if value is not None:
        positive_finite(instance, attribute, value)


def site_name(instance: Any, attribute: Any, value: Any) -> None:
    """attrs validator: a non-empty NumPyro site name without the scope divider ``/``."""
    if not isinstance(value, str) or not value or "/" in value:
        raise ValueError(
            f"{type(instance).__name__}: {attribute.name} must be a non-empty str without '/', "
            f"got {value!r}"
        )


def as_matrix(layer: str, argument: str, value: Any) -> jax.Array:
    """``value`` as a 2-D float array ``(n, d)``; anything else raises naming the argument."""
    arr = jnp.asarray(value)
    if arr.ndim != 2:
        hint = f" For a single feature pass {argument}[:, None]." if arr.ndim == 1 else ""
        raise ValueError(
            f"layer {layer!r}: {argument} must be a 2-D array (rows, features), got shape "
            f"{tuple(arr.shape)}.{hint}"
        )
    if not (jnp.issubdtype(arr.dtype, jnp.number) or arr.dtype == jnp.bool_):
        raise ValueError(f"layer {layer!r}: {argument} must be numeric, got dtype {arr.dtype}")
    return arr.astype(jnp.result_type(float))


def align(link: str, mu: Any, y: Any | None) -> tuple[jax.Array, jax.Array | None]:
    """``mu`` and ``y`` with equal shapes: an ``(n, 1)`` predictor matches an ``(n,)`` target.

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
            f"shape {tuple(mu.shape)}; they must match row for row (an (n, 1) predictor matches "
            "an (n,) target)"
        )
    return mu, y_arr
