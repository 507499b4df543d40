"""Checks and splitting of the data handed to ``fit`` and ``predict``.

Keyword arguments whose leading dimension is the number of rows ``n`` are *row data*: they are put
on the device once and cut into minibatches. Every other value (scalars, strings, arrays with a
different leading dimension, ``None``) is a *constant* passed unchanged to every call of the model.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import attrs
import jax
import jax.numpy as jnp
import numpy as np

from blayers_core.contract.errors import DataError


def _is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray | jax.Array) or (
        hasattr(value, "__array__") and hasattr(value, "shape") and hasattr(value, "dtype")
    )


@attrs.frozen
class SplitData:
    """Row data (leading dimension ``num_rows``) and constants, each by argument name."""

    rows: dict[str, Any]
    constants: dict[str, Any]
    num_rows: int


def split_rows_and_constants(data: Mapping[str, Any], num_rows: int | None = None) -> SplitData:
    """Split keyword data into row arrays and constants, checking every row array.

    ``num_rows`` defaults to the largest leading dimension among the array arguments. Row arrays
    must be numeric (bool, integer or floating) and finite.

    Raises:
        DataError: naming the argument, when a row array is not numeric or holds NaN/inf, or when
            there is no array with ``num_rows`` rows.
    """
    arrays = {k: v for k, v in data.items() if _is_array(v) and np.ndim(v) >= 1}
    if num_rows is None:
        if not arrays:
            raise DataError(
                "no array argument was given, so there are no rows to fit: pass the data as "
                "keyword arrays, e.g. fit(model, x=x, y=y)"
            )
        counts = Counter(np.shape(v)[0] for v in arrays.values())
        num_rows = max(counts)
    elif not any(np.shape(v)[0] == num_rows for v in arrays.values()):
        shapes = {k: tuple(np.shape(v)) for k, v in arrays.items()}
        raise DataError(f"num_obs={num_rows} but no array argument has {num_rows} rows: {shapes}")
    rows = {k: v for k, v in arrays.items() if np.shape(v)[0] == num_rows}
    constants = {k: v for k, v in data.items() if k not in rows}
    for name, value in rows.items():
        check_row_array(name, value)
    return SplitData(rows=rows, constants=constants, num_rows=int(num_rows))


def check_row_array(name: str, value: Any) -> None:
    """Raise :class:`DataError` unless ``value`` is a numeric, finite array."""
    dtype = np.dtype(value.dtype)
    if not (np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.bool_)):
        raise DataError(
            f"argument {name!r} has dtype {dtype}, which is not numeric: encode categories as "
            "integer codes and pass numbers"
        )
    if np.issubdtype(dtype, np.inexact):
        finite = np.isfinite(np.asarray(value))
        if not finite.all():
            bad_rows = np.unique(np.nonzero(~finite)[0])
            shown = ", ".join(str(r) for r in bad_rows[:5]) + (", ..." if len(bad_rows) > 5 else "")
            raise DataError(
                f"argument {name!r} has {int((~finite).sum())} non-finite values (NaN or inf) in "
                f"{len(bad_rows)} rows ({shown}); drop or impute those rows before fitting"
            )


def to_device(rows: Mapping[str, Any]) -> dict[str, jax.Array]:
    """Put every row array on the default device once."""
    return {k: jnp.asarray(v) for k, v in rows.items()}


def padded_chunk(values: np.ndarray, start: int, size: int) -> np.ndarray:
    """Rows ``start .. start + size`` of ``values``; past the end, rows from the start again, so
    every chunk has the same shape (and the program compiles once)."""
    if start + size <= len(values):
        return values[start : start + size]
    return np.take(values, np.arange(start, start + size), axis=0, mode="wrap")
