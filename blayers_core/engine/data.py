"""Checks and splitting of the data handed to ``fit`` and ``predict``: the row rule, in one place.

Keyword arguments whose leading dimension is the number of rows ``n`` are *row data*: they are put
on the device once and cut into minibatches (or row chunks). Every other value (scalars, strings,
arrays with a different leading dimension, ``None``) is a *constant* passed unchanged to every
call of the model. Among the constants, arrays of at least one dimension are *array constants*
(arguments of the compiled programs); the rest are *static* (fixed when a program is traced, and
part of its cache key).

* :func:`is_array` and :func:`is_row_array` are the predicates;
* :func:`split_rows_and_constants` applies them to ``fit``'s data (``n``: the largest leading
  dimension, or ``num_obs``);
* :func:`split_prediction_data` to new rows for ``predict`` and ``to_arviz``, where every array is
  a row array (the constants come from the fit) and all must have the same length;
* :func:`split_constants` tells array constants from static ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import jax
import numpy as np

from blayers_core.contract.errors import DataError


def is_array(value: Any) -> bool:
    """A NumPy or JAX array, or an array-like with ``shape``, ``dtype`` and ``__array__``."""
    return isinstance(value, np.ndarray | jax.Array) or (
        hasattr(value, "__array__") and hasattr(value, "shape") and hasattr(value, "dtype")
    )


def leading_dimension(value: Any) -> int | None:
    """The length of an array's first axis; ``None`` for a scalar or a non-array."""
    if not is_array(value) or np.ndim(value) < 1:
        return None
    return int(np.shape(value)[0])


def is_row_array(value: Any, num_rows: int) -> bool:
    """Whether ``value`` is row data of a data set with ``num_rows`` rows."""
    return leading_dimension(value) == num_rows


def row_count(rows: Mapping[str, Any]) -> int:
    """The number of rows of split row data (0 when there is none)."""
    return len(next(iter(rows.values()))) if rows else 0


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
    lengths = {k: n for k, v in data.items() if (n := leading_dimension(v)) is not None}
    if num_rows is None:
        if not lengths:
            raise DataError(
                "no array argument was given, so there are no rows to fit: pass the data as "
                "keyword arrays, e.g. fit(model, x=x, y=y)"
            )
        num_rows = max(lengths.values())
    elif num_rows not in lengths.values():
        shapes = {k: tuple(np.shape(data[k])) for k in lengths}
        raise DataError(f"num_obs={num_rows} but no array argument has {num_rows} rows: {shapes}")
    rows = {k: v for k, v in data.items() if is_row_array(v, num_rows)}
    constants = {k: v for k, v in data.items() if k not in rows}
    for name, value in rows.items():
        check_row_array(name, value)
    return SplitData(rows=rows, constants=constants, num_rows=int(num_rows))


def split_prediction_data(data: Mapping[str, Any]) -> SplitData:
    """New rows for ``predict`` or ``to_arviz``: every array argument is row data.

    The fit's constants are passed again separately, so an array here of another length than the
    others is a mistake, not a constant; other values (numbers, strings) are constants.

    Raises:
        DataError: array arguments of different lengths, none at all, no rows, or unusable
            values (see :func:`check_row_array`).
    """
    lengths = {k: n for k, v in data.items() if (n := leading_dimension(v)) is not None}
    if len(set(lengths.values())) > 1:
        raise DataError(f"predict's array arguments have different numbers of rows: {lengths}")
    if not lengths:
        raise DataError(
            "predict needs the model's row data as keyword arrays, e.g. result.predict(x=x_new)"
        )
    num_rows = next(iter(lengths.values()))
    if num_rows == 0:
        raise DataError(f"predict's array arguments have no rows: {lengths}")
    rows = {k: data[k] for k in lengths}
    for name, value in rows.items():
        check_row_array(name, value)
    constants = {k: v for k, v in data.items() if k not in rows}
    return SplitData(rows=rows, constants=constants, num_rows=num_rows)


def split_constants(constants: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(array constants, static constants)``: arrays of at least one dimension are arguments of
    a compiled program; everything else (numbers, strings, ``None``, 0-d arrays) is fixed when
    the program is traced."""
    arrays = {k: v for k, v in constants.items() if leading_dimension(v) is not None}
    return arrays, {k: v for k, v in constants.items() if k not in arrays}


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
