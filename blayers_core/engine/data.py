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
* :func:`split_constants` tells array constants from static ones;
* :func:`data_signature` records the trailing shapes and dtype kinds of the training rows, and
  :func:`check_data_signature` compares new rows with them before ``predict`` traces anything.

Integer arrays are checked in their own dtype, on the host, before they reach the device: JAX
computes with 32-bit integers unless ``jax_enable_x64`` is on, and casting an ``int64`` array
there wraps values outside ``int32`` around (``2**32 + 1`` becomes ``1``), so such a value raises
here, with its row and value, instead of being read as another category code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

import jax
import numpy as np

from blayers_core.contract.errors import DataError
from blayers_core.contract.inference import SplitData


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


#: ``{argument: (trailing shape, dtype kind)}`` of the training rows: the shape after the row axis
#: and NumPy's one-letter kind (``"f"`` float, ``"i"``/``"u"`` integer, ``"b"`` bool).
DataSignature: TypeAlias = dict[str, tuple[tuple[int, ...], str]]


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
    if num_rows == 0:
        check_not_empty({k: data[k] for k in lengths})
    rows = {k: v for k, v in data.items() if is_row_array(v, num_rows)}
    constants = {k: v for k, v in data.items() if k not in rows}
    for name, value in rows.items():
        check_row_array(name, value)
    check_array_constants(constants)
    return SplitData(rows=rows, constants=constants, num_rows=int(num_rows))


def check_not_empty(arrays: Mapping[str, Any], what: str = "fit") -> None:
    """Raise :class:`DataError` when every array in ``arrays`` has no rows.

    ``arrays`` maps an argument (or ``"data="`` for a DataFrame) to something with a length.
    """
    lengths = {k: n for k, v in arrays.items() if (n := _length(v)) is not None}
    if lengths and not any(lengths.values()):
        shapes = ", ".join(f"{k} {_shape(arrays[k])}" for k in lengths)
        raise DataError(
            f"the data are empty: the arguments {list(lengths)} have 0 rows ({shapes}); "
            f"{what} needs at least one row"
        )


def _length(value: Any) -> int | None:
    if is_array(value):
        return leading_dimension(value)
    try:
        return len(value) if hasattr(value, "columns") or hasattr(value, "dtype") else None
    except TypeError:
        return None


def _shape(value: Any) -> tuple[int, ...]:
    shape = getattr(value, "shape", None)
    return tuple(int(d) for d in shape) if shape is not None else (len(value),)


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
        check_not_empty({k: data[k] for k in lengths}, "predict")
    rows = {k: data[k] for k in lengths}
    for name, value in rows.items():
        check_row_array(name, value)
    constants = {k: v for k, v in data.items() if k not in rows}
    check_array_constants(constants)
    return SplitData(rows=rows, constants=constants, num_rows=num_rows)


def split_constants(constants: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(array constants, static constants)``: arrays of at least one dimension are arguments of
    a compiled program; everything else (numbers, strings, ``None``, 0-d arrays) is fixed when
    the program is traced."""
    arrays = {k: v for k, v in constants.items() if leading_dimension(v) is not None}
    return arrays, {k: v for k, v in constants.items() if k not in arrays}


def check_array_constants(constants: Mapping[str, Any]) -> None:
    """Check the integer array constants as :func:`check_integers_fit` does (the others pass
    unchanged)."""
    for name, value in constants.items():
        if leading_dimension(value) is not None:
            check_integers_fit(name, value)


def check_row_array(name: str, value: Any) -> None:
    """Raise :class:`DataError` unless ``value`` is a numeric, finite array whose integers fit
    the device's integer dtype (:func:`check_integers_fit`)."""
    check_integers_fit(name, value)
    dtype = _numpy_dtype(value)
    if dtype is None:
        raise DataError(
            f"argument {name!r} has dtype {value.dtype}, which is not a NumPy dtype: pass a "
            "NumPy array of numbers (a pandas or polars Series is read as such only by fit and "
            "predict)"
        )
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


def _numpy_dtype(value: Any) -> np.dtype[Any] | None:
    """``value``'s dtype as a NumPy dtype; ``None`` for another library's (a pandas extension
    dtype, a polars dtype)."""
    try:
        dtype: np.dtype[Any] = np.dtype(value.dtype)
    except TypeError:
        return None
    return dtype


def device_dtype(dtype: Any) -> np.dtype[Any]:
    """The dtype an array of ``dtype`` has on the device: ``int64`` becomes ``int32`` and
    ``float64`` ``float32`` unless ``jax_enable_x64`` is on."""
    return np.dtype(jax.dtypes.canonicalize_dtype(dtype))


def check_integers_fit(name: str, value: Any) -> None:
    """Raise :class:`DataError` when an integer array holds values its device dtype cannot.

    The values are compared in their own dtype, on the host, before any cast, so the message
    gives the real values and their rows.
    """
    dtype = _numpy_dtype(value)
    if dtype is None or not np.issubdtype(dtype, np.integer):
        return
    target = device_dtype(dtype)
    if target == dtype:
        return
    info = np.iinfo(target)
    values = np.asarray(value)
    bad = (values < info.min) | (values > info.max)
    if not bad.any():
        return
    where = np.argwhere(bad)
    shown = ", ".join(_position(index) + f": {values[tuple(index)]}" for index in where[:3])
    raise DataError(
        f"argument {name!r} ({dtype}) has {int(bad.sum())} values outside {info.min}..{info.max}, "
        f"the range of {target}, the integers JAX computes with here ({shown}"
        f"{', ...' if len(where) > 3 else ''}); cast to {target} they would wrap around into other "
        "values. Category codes must be 0..C-1 for C categories: re-encode them (e.g. pandas "
        ".cat.codes); for integers this large, pass floats or enable 64-bit integers with "
        "jax.config.update('jax_enable_x64', True)"
    )


def _position(index: np.ndarray) -> str:
    """``row 3``, ``row 3, column 1`` or ``row 3, position (1, 0)`` for an ``np.argwhere`` row."""
    rest = tuple(int(i) for i in index[1:])
    if not rest:
        return f"row {index[0]}"
    return f"row {index[0]}, " + (f"column {rest[0]}" if len(rest) == 1 else f"position {rest}")


def data_signature(rows: Mapping[str, Any]) -> DataSignature:
    """``{argument: (trailing shape, dtype kind)}`` of row data, as predictions must match it."""
    return {
        name: (tuple(int(d) for d in np.shape(value)[1:]), np.dtype(value.dtype).kind)
        for name, value in rows.items()
    }


_INTEGER_KINDS = ("i", "u")
_NUMERIC_KINDS = ("b", "i", "u", "f")


def check_data_signature(
    signature: Mapping[str, tuple[tuple[int, ...], str]], rows: Mapping[str, Any]
) -> None:
    """Raise :class:`DataError` when a row array differs from the training rows of the same
    argument in its trailing shape (e.g. another number of columns) or holds another kind of
    values (floats where the model was fitted on integer codes).

    Axes of length 1 are ignored (codes ``(n,)`` match ``(n, 1)``, as the layers read them).
    Arguments absent from ``signature`` (or from ``rows``) are not checked.
    """
    for name, value in rows.items():
        if name not in signature:
            continue
        shape, kind = signature[name]
        got_shape = tuple(int(d) for d in np.shape(value)[1:])
        got = np.dtype(value.dtype)
        if _squeezed(got_shape) != _squeezed(tuple(shape)):
            raise DataError(
                f"argument {name!r} has shape {_rows_shape(np.shape(value)[0], got_shape)} but "
                f"the model was fitted on {_rows_shape('n', tuple(shape))} ({_kind_name(kind)}): "
                "predict needs the columns of the training data, in the same order"
            )
        expected = _INTEGER_KINDS if kind in _INTEGER_KINDS else _NUMERIC_KINDS
        if got.kind not in expected:
            raise DataError(
                f"argument {name!r} holds {got} values but the model was fitted on "
                f"{_kind_name(kind)} values, shape {_rows_shape('n', tuple(shape))}: pass "
                f"{_kind_name(kind)} values, as in training"
            )


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(d for d in shape if d != 1)


def _rows_shape(rows: Any, trailing: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(d) for d in (rows, *trailing)) + ("," if not trailing else "") + ")"


def _kind_name(kind: str) -> str:
    return {"f": "float", "i": "integer", "u": "integer", "b": "boolean"}.get(
        kind, f"{kind!r}-kind"
    )
