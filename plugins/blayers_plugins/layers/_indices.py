"""Integer index inputs: categorical codes and padded multi-hot rows, checked before tracing.

A categorical input is an integer array of codes, ``(n,)`` for one field or ``(n, f)`` for ``f``
fields. With ``num_categories = (c_1, ..., c_f)`` field ``j`` takes codes in ``[0, c_j)`` and maps
to rows ``offset_j + code`` of one parameter table of ``sum(c_j)`` rows; with a single int ``c``
every column indexes the same vocabulary of ``c`` rows (multi-hot rows: pad with any valid code
and give the padding weight 0 in the matching values array).

Layers gather the rows they need from the table, ``O(n * f * width)``: no one-hot matrix is ever
built. Codes are range-checked whenever they are concrete arrays (eager calls, and the dry run that
``fit`` and ``predict`` make before compiling); out-of-range or negative codes raise instead of
being clamped or wrapped around. Traced codes cannot be checked: an out-of-range one gathers a row
of NaN (:func:`take_rows`), never another level's row.

The population level: inside :func:`blayers_core.plugin.allow_population_codes` (which
``predict(..., unseen="population")`` opens) the code ``-1`` is allowed and gathers a row of zeros,
so a level not seen in training contributes no effect. Outside it ``-1`` raises like any other
out-of-range code.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from blayers_core.plugin import POPULATION_CODE, check_data, population_codes_allowed


def total_categories(num_categories: int | Sequence[int]) -> int:
    """Rows of the parameter table: ``c`` or ``sum(c_j)``."""
    return (
        int(num_categories)
        if isinstance(num_categories, numbers.Integral)
        else int(sum(num_categories))
    )


def index_input(
    layer: str, argument: str, value: Any, num_categories: int | Sequence[int]
) -> jax.Array:
    """Codes ``(n,)`` or ``(n, f)`` as global ``int32`` row indices ``(n, f)`` into the table.

    A negative code stays negative (``-1``, the population code, is allowed only inside
    ``allow_population_codes()``); gather with :func:`take_rows`, which reads it as a zero row.

    Raises:
        TypeError: the codes are not integers.
        ValueError: wrong number of fields, or (for concrete codes) a code outside its range.
    """
    if not isinstance(value, jax.core.Tracer):
        value = np.asarray(value)
    if value.dtype == bool or not jnp.issubdtype(value.dtype, jnp.integer):
        raise TypeError(
            f"layer {layer!r}: {argument} must hold integer category codes, got dtype "
            f"{value.dtype}; encode categories as 0..C-1 (e.g. pandas .cat.codes)"
        )
    if value.ndim == 1:
        value = value[:, None]
    if value.ndim != 2:
        raise ValueError(
            f"layer {layer!r}: {argument} must be (rows,) or (rows, fields) codes, got shape "
            f"{tuple(value.shape)}"
        )
    fields = value.shape[1]
    if isinstance(num_categories, numbers.Integral):
        sizes = np.full(fields, int(num_categories))
    else:
        sizes = np.asarray(num_categories)
        if sizes.shape != (fields,):
            raise ValueError(
                f"layer {layer!r}: num_categories gives {sizes.size} field sizes but {argument} "
                f"has {fields} columns"
            )
    low = POPULATION_CODE if population_codes_allowed() else 0  # read now: checks may run later
    check_data(lambda codes: _check_range(layer, argument, codes, sizes, low), value)
    offsets = (
        np.concatenate([[0], np.cumsum(sizes)[:-1]])
        if not isinstance(num_categories, numbers.Integral)
        else np.zeros(fields)
    )
    codes = jnp.asarray(value, dtype=jnp.int32)
    return jnp.where(codes < 0, codes, codes + jnp.asarray(offsets, dtype=jnp.int32))


def take_rows(table: jax.Array, index: jax.Array, population: bool | None = None) -> jax.Array:
    """``table[index]`` along the first axis, for global indices from :func:`index_input`.

    With ``population`` (default: whether ``allow_population_codes()`` is active; jitted callers
    pass it as a static argument) the index ``-1`` gives a row of zeros, the population level.
    Any other index outside ``0..C-1`` (possible only for traced, unchecked codes) gives a row of
    NaN, never a clamped or wrapped-around row.
    """
    if population is None:
        population = population_codes_allowed()
    safe = jnp.where(index < 0, table.shape[0], index)  # jnp.take would wrap negative indices
    rows = jnp.take(table, safe, axis=0, mode="fill", fill_value=jnp.nan)
    if population:
        zero = (index == POPULATION_CODE).reshape(index.shape + (1,) * (table.ndim - 1))
        rows = jnp.where(zero, jnp.zeros((), rows.dtype), rows)
    return rows


def _check_range(layer: str, argument: str, codes: np.ndarray, sizes: np.ndarray, low: int) -> None:
    bad = (codes < low) | (codes >= sizes[None, :])
    if not bad.any():
        return
    rows, cols = np.nonzero(bad)
    shown = ", ".join(
        f"row {r} field {c}: {codes[r, c]} (valid 0..{sizes[c] - 1})"
        for r, c in zip(rows[:3], cols[:3], strict=True)
    )
    raise ValueError(
        f"layer {layer!r}: {argument} has {int(bad.sum())} codes outside their range ({shown}"
        f"{', ...' if bad.sum() > 3 else ''}). Codes must be 0..C-1 for a field of C categories; "
        "map unseen or missing levels to a valid code before fitting."
    )


def categories_validator(instance: Any, attribute: Any, value: Any) -> None:
    """attrs validator: a positive int, or a non-empty tuple of positive ints (one per field)."""
    values = (value,) if isinstance(value, int | np.integer) else value
    ok = (
        isinstance(values, tuple | list)
        and len(values) > 0
        and all(
            isinstance(v, int | np.integer) and not isinstance(v, bool) and v >= 1 for v in values
        )
    )
    if not ok:
        raise ValueError(
            f"{attribute.name} must be a positive int or a tuple of positive ints (one per "
            f"field), got {value!r}"
        )
