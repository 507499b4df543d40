"""Argument checks shared by the layer and the link (attrs validators and input checks)."""

from __future__ import annotations

import math
from typing import Any

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
