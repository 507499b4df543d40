"""Shape checks every layer and link shares, so that nothing is silently broadcast.

Plugin authors use them too: ``layer_input`` for a layer's array inputs and ``align_to_target``
for a link's predictor and target.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


def layer_input(layer: str, argument: str, value: Any) -> jax.Array:
    """``value`` as a 2-D float array ``(n, d)``.

    Raises:
        ValueError: naming the layer and the argument, when ``value`` is not 2-D (with the fix
            ``x[:, None]`` for a 1-D array).
        TypeError: when ``value`` is not numeric.
    """
    arr = jnp.asarray(value)
    if arr.ndim != 2:
        hint = f" For one feature pass {argument}[:, None]." if arr.ndim == 1 else ""
        raise ValueError(
            f"layer {layer!r}: {argument} must be a 2-D array (rows, features), got shape "
            f"{tuple(arr.shape)}.{hint}"
        )
    if not (jnp.issubdtype(arr.dtype, jnp.number) or arr.dtype == jnp.bool_):
        raise TypeError(f"layer {layer!r}: {argument} must be numeric, got dtype {arr.dtype}")
    return arr.astype(jnp.result_type(float))


def align_to_target(link: str, mu: Any, y: Any | None) -> tuple[jax.Array, jax.Array | None]:
    """``mu`` and ``y`` with equal shapes: an ``(n, 1)`` predictor loses its unit axis to match an
    ``(n,)`` target (or, with ``y=None``, to draw ``(n,)`` predictions).

    Raises:
        ValueError: when the shapes differ in any other way; they are never broadcast, since an
            ``(n, 1)`` predictor against an ``(n,)`` target would silently make an ``(n, n)``
            likelihood.
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
