"""Type aliases shared across blayers_core."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeAlias

import jax
import numpy as np

Array: TypeAlias = jax.Array
#: Anything ``jnp.asarray`` accepts: JAX and NumPy arrays, Python scalars and sequences.
ArrayLike: TypeAlias = jax.Array | np.ndarray | float | int | bool
ModelFn: TypeAlias = Callable[..., Any]
GuideFn: TypeAlias = Callable[..., Any]
Params: TypeAlias = dict[str, Any]
DataDict: TypeAlias = Mapping[str, Any]
ComponentKind: TypeAlias = Literal["layer", "link", "loss", "guide", "optimizer", "method"]

COMPONENT_KINDS: tuple[ComponentKind, ...] = (
    "layer",
    "link",
    "loss",
    "guide",
    "optimizer",
    "method",
)
