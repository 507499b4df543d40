"""What the first-party likelihood families share: checks on observed values, and a validator.

The links subclass :class:`blayers_core.plugin.BaseLink`, whose ``check_target(y, mu_shape)``
hook runs on concrete observed values (eager calls and the dry run that ``fit`` and ``predict``
make before compiling). The helpers here write those checks once: counts must be non-negative
integers, class codes must be in range, and so on. A bad value raises a ``ValueError`` naming the
link and what it allows, with a few of the offending values, instead of becoming a ``-inf`` or
``NaN`` loss after compilation.
"""

from __future__ import annotations

import numbers
from typing import Any

import attrs
import numpy as np

from blayers_core.plugin import BaseLink

#: How many offending values an error message shows.
_SHOWN = 3


# ------------------------------------------------------------------------------ target checks
def _numeric(link: BaseLink, y: Any, allowed: str) -> np.ndarray:
    values = np.asarray(y)
    if values.dtype.kind not in "biuf":
        raise ValueError(f"{link.label}: y must hold {allowed}, got dtype {values.dtype}")
    return values


def _raise_if_any(link: BaseLink, values: np.ndarray, bad: np.ndarray, allowed: str) -> None:
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


def check_values(link: BaseLink, y: Any, allowed: str, ok: Any) -> None:
    """Raise unless ``ok(values)`` holds for every concrete value of ``y``.

    ``ok`` maps a float64 NumPy array to a bool array; ``allowed`` says in words what is valid.
    """
    values = _numeric(link, y, allowed).astype(np.float64)
    with np.errstate(invalid="ignore"):
        bad = ~(np.isfinite(values) & ok(values))
    _raise_if_any(link, values, bad, allowed)


def check_counts(link: BaseLink, y: Any) -> None:
    """Non-negative integer counts (any numeric dtype: ``3.0`` is the count 3)."""
    check_values(
        link,
        y,
        "non-negative integer counts (0, 1, 2, ...)",
        lambda v: (v >= 0) & (v == np.floor(v)),
    )


def check_codes(link: BaseLink, y: Any, num_classes: int) -> None:
    """Integer class codes ``0..num_classes-1`` (any numeric dtype: ``2.0`` is the code 2)."""
    allowed = f"integer class codes 0..{num_classes - 1}"
    check_values(link, y, allowed, lambda v: (v >= 0) & (v < num_classes) & (v == np.floor(v)))


# --------------------------------------------------------------------------------- validators
def num_classes_validator(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """An int >= 2 (Python or NumPy)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral) or value < 2:
        raise ValueError(
            f"{attribute.name} must be an int >= 2 (the number of classes), got {value!r}"
        )
