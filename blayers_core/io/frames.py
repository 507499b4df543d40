"""DataFrames as data: columns become model arguments, categories become integer codes.

``fit(model, data=df)`` takes a pandas or polars DataFrame (anything `narwhals
<https://narwhals-dev.github.io/narwhals/>`_ reads eagerly). Each model argument gets columns:

* by default, an argument whose name is a column gets that column as a 1-D array ``(n,)``;
* ``columns={"x": ["age", "bmi"], "y": "target", "g": "group"}`` maps an argument to a list of
  columns, stacked in that order into an ``(n, k)`` matrix, or to one column, ``(n,)``. Entries
  of ``columns`` take precedence; other arguments named like a column still get that column.

Column types:

* numbers and booleans become ``float32`` (booleans as 0/1). An integer column is a number: to
  use it as categories, cast it (``df.astype({"store": "category"})``, ``pl.col("store").cast(
  pl.String)``);
* categorical, enum and string columns become ``int32`` codes ``0..L-1``. The levels are the
  declared categories in their order (pandas ``Categorical``, polars ``Enum``), else the sorted
  distinct values; they are kept on the :class:`DataEncoder`, and so on the fitted result. A list
  of categorical columns gives an ``(n, k)`` matrix of codes, one field per column (for
  ``num_categories=encoder.num_categories("x")``); a list that mixes numbers and categories raises.

Nothing is dropped or guessed: an unknown column, a missing value (null or NaN) or a column of
another type raises a :class:`~blayers_core.contract.errors.DataError` naming the column.

A pandas or polars Series given as an argument (``fit(model, g=df["group"], y=y)``) is read
the same way: a categorical, enum or string Series becomes ``int32`` codes, its levels kept on the
encoder under the argument's name (``result.levels["g"]``), and ``predict(g=new_series)`` encodes
new values with those levels; a Series of numbers or booleans becomes a NumPy array of its own
dtype, as an array would be. A Series with missing values raises.

Levels seen at prediction but not in training follow an explicit policy, ``unseen=``:

* ``"error"`` (default): raise, naming the column and the unseen values;
* ``"population"``: give them the code ``-1``, which index layers read, only inside
  :func:`~blayers_core.allow_population_codes`, as "no level": a zero effect (the population mean of a
  zero-centred random effect) or a zero embedding row. Outside that block ``-1`` is out of range
  and raises, as any negative code does.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import attrs
import jax
import numpy as np

from blayers_core.contract.errors import DataError
from blayers_core.contract.population import POPULATION_CODE
from blayers_core.engine.data import check_not_empty

if TYPE_CHECKING:
    pass

#: A level of a categorical column, as stored (JSON-safe).
Level: TypeAlias = str | int | float | bool
#: Policy for levels not seen in training.
Unseen: TypeAlias = Literal["error", "population"]
#: Version of :meth:`DataEncoder.to_json_dict`'s layout.
ENCODER_FORMAT = 1


# ------------------------------------------------------------------------------ detection
def _narwhals() -> Any:
    import narwhals.stable.v2 as nw

    return nw


def is_dataframe(data: Any) -> bool:
    """Whether ``data`` is an eager DataFrame narwhals reads (pandas, polars, ...)."""
    if data is None or isinstance(data, Mapping):
        return False
    try:
        _narwhals().from_native(data, eager_only=True)
    except TypeError:
        return False
    return True


def _frame(data: Any) -> Any:
    return _narwhals().from_native(data, eager_only=True)


def as_series(value: Any) -> Any | None:
    """``value`` as a narwhals Series when it is a pandas or polars Series, else ``None``."""
    if value is None or isinstance(value, np.ndarray | jax.Array | str | int | float | Mapping):
        return None
    try:
        return _narwhals().from_native(value, series_only=True)
    except TypeError:
        return None


# ------------------------------------------------------------------------------ the encoder
def _to_level(value: Any) -> Level:
    item = value.item() if isinstance(value, np.generic) else value
    if not isinstance(item, str | int | float | bool):
        raise DataError(
            f"categorical level {value!r} ({type(value).__name__}) is not a string or a number; "
            "cast the column to strings first"
        )
    return item


@attrs.frozen
class ArgumentColumns:
    """The columns of one model argument and how they are encoded.

    Attributes:
        argument: the model argument.
        columns: its columns, in order.
        stacked: ``True`` when the columns were given as a list (an ``(n, k)`` matrix), ``False``
            for a single column (an ``(n,)`` array).
        kind: ``"numeric"`` (``float32``) or ``"categorical"`` (``int32`` codes).
        levels: for categorical columns, the levels of each column (code ``i`` is level ``i``).
        series: the argument was given to ``fit`` as a categorical Series, not read from a
            DataFrame; its one column is named after the argument.
    """

    argument: str
    columns: tuple[str, ...]
    stacked: bool
    kind: Literal["numeric", "categorical"]
    levels: tuple[tuple[Level, ...], ...] = ()
    series: bool = False

    def __attrs_post_init__(self) -> None:
        if not self.stacked and len(self.columns) != 1:
            raise ValueError(f"argument {self.argument!r}: a single column, got {self.columns}")
        if (self.kind == "categorical") != bool(self.levels):
            raise ValueError(f"argument {self.argument!r}: levels go with categorical columns")
        if self.levels and len(self.levels) != len(self.columns):
            raise ValueError(f"argument {self.argument!r}: one tuple of levels per column")


@attrs.frozen
class DataEncoder:
    """How a DataFrame becomes model arguments: columns per argument and the level maps.

    Build it from the training frame with :meth:`from_frame` (``fit`` does this), then
    :meth:`encode` any frame with those columns, e.g. new data at prediction time.

    Attributes:
        arguments: one :class:`ArgumentColumns` per model argument.
    """

    arguments: tuple[ArgumentColumns, ...]

    @classmethod
    def from_frame(cls, frame: Any, columns: Mapping[str, str | Sequence[str]]) -> DataEncoder:
        """The encoder of ``frame`` for ``columns`` (argument -> column or list of columns).

        Levels of categorical columns are read from ``frame``.

        Raises:
            DataError: an unknown column, a column of an unsupported type, or a list that mixes
                numeric and categorical columns.
        """
        df = _frame(frame)
        if len(df) == 0:
            raise DataError(
                f"the DataFrame is empty (0 rows, columns {list(df.columns)}): there are no "
                "levels to read or rows to fit; pass at least one row"
            )
        specs = []
        for argument, spec in columns.items():
            if not isinstance(argument, str):
                raise TypeError(f"columns= keys are model argument names, got {argument!r}")
            stacked = not isinstance(spec, str)
            names = (spec,) if isinstance(spec, str) else tuple(spec)
            if not names or not all(isinstance(c, str) for c in names):
                raise TypeError(
                    f"columns[{argument!r}] must be a column name or a non-empty list of column "
                    f"names, got {spec!r}"
                )
            _check_columns_exist(df, names, argument)
            for name in names:
                _check_no_missing(df, name)
            kinds = {name: _column_kind(df, name) for name in names}
            if len(set(kinds.values())) > 1:
                categorical = [c for c, k in kinds.items() if k == "categorical"]
                raise DataError(
                    f"argument {argument!r} stacks numeric columns with categorical ones "
                    f"{categorical}: give the categorical columns their own argument (codes for "
                    f"an index layer), e.g. columns={{'{argument}_codes': {categorical!r}}}, or "
                    "one-hot encode them yourself"
                )
            kind = next(iter(kinds.values()))
            levels = tuple(_levels(df, name) for name in names) if kind == "categorical" else ()
            specs.append(ArgumentColumns(argument, names, stacked, kind, levels))
        return cls(tuple(specs))

    @property
    def levels(self) -> dict[str, tuple[Level, ...]]:
        """Levels of every categorical column, by column name: ``{"group": ("a", "b")}``."""
        return {
            column: levels
            for spec in self.arguments
            for column, levels in zip(spec.columns, spec.levels, strict=False)
        }

    def num_categories(self, argument: str) -> int | tuple[int, ...]:
        """Levels of a categorical argument: an int for one column, a tuple for a list of them.

        Pass it as a layer's ``num_categories``.
        """
        spec = self._spec(argument)
        if spec.kind != "categorical":
            raise ValueError(f"argument {argument!r} is numeric, it has no categories")
        counts = tuple(len(levels) for levels in spec.levels)
        return counts if spec.stacked else counts[0]

    def _spec(self, argument: str) -> ArgumentColumns:
        spec = self.spec_of(argument)
        if spec is None:
            raise KeyError(
                f"no argument {argument!r}; encoded: {[s.argument for s in self.arguments]}"
            )
        return spec

    def spec_of(self, argument: str) -> ArgumentColumns | None:
        """The :class:`ArgumentColumns` of ``argument``; ``None`` when it has none."""
        return next((spec for spec in self.arguments if spec.argument == argument), None)

    def with_arguments(self, specs: Sequence[ArgumentColumns]) -> DataEncoder:
        """This encoder with ``specs`` (e.g. of categorical Series arguments) added."""
        return attrs.evolve(self, arguments=(*self.arguments, *specs))

    def encode(
        self, frame: Any, unseen: Unseen = "error", *, skip: Sequence[str] = ()
    ) -> dict[str, np.ndarray]:
        """The arrays of ``frame``, by argument: ``float32`` numbers, ``int32`` codes.

        Args:
            frame: a pandas or polars DataFrame with the encoder's columns (others are ignored).
            unseen: what a categorical value without a level gets: ``"error"`` raises,
                ``"population"`` gives it the code ``-1`` (see :func:`~blayers_core.allow_population_codes`).
            skip: arguments to leave out (and whose columns may be absent).

        Raises:
            DataError: a missing column, a missing value, a column of another type than in
                training, or (with ``unseen="error"``) an unseen level.
        """
        if unseen not in ("error", "population"):
            raise ValueError(f"unseen must be 'error' or 'population', got {unseen!r}")
        df = _frame(frame)
        out = {}
        for spec in self.arguments:
            if spec.argument in skip:
                continue
            if spec.series and spec.columns[0] not in df.columns:
                raise DataError(
                    f"argument {spec.argument!r} was given to fit as a categorical Series, and "
                    f"the DataFrame has no column {spec.columns[0]!r}: pass it again as a "
                    f"keyword, e.g. predict(data=df, {spec.argument}=series)"
                )
            _check_columns_exist(df, spec.columns, spec.argument)
            if spec.kind == "numeric":
                arrays = [_numeric(df, c) for c in spec.columns]
            else:
                arrays = [
                    _codes(df, c, levels, unseen)
                    for c, levels in zip(spec.columns, spec.levels, strict=True)
                ]
            out[spec.argument] = np.stack(arrays, axis=1) if spec.stacked else arrays[0]
        return out

    def to_json_dict(self) -> dict[str, Any]:
        """A JSON-safe dict; :meth:`from_json_dict` rebuilds the encoder from it."""
        return {
            "format": ENCODER_FORMAT,
            "arguments": [
                {
                    "argument": s.argument,
                    "columns": list(s.columns),
                    "stacked": s.stacked,
                    "kind": s.kind,
                    "levels": [list(levels) for levels in s.levels],
                    "series": s.series,
                }
                for s in self.arguments
            ],
        }

    @classmethod
    def from_json_dict(cls, d: Mapping[str, Any]) -> DataEncoder:
        """The encoder written by :meth:`to_json_dict`.

        Raises:
            ValueError: the dict has another format version or is not an encoder's.
        """
        if d.get("format") != ENCODER_FORMAT:
            raise ValueError(
                f"data encoder format {d.get('format')!r} is not supported (this version of "
                f"blayers reads format {ENCODER_FORMAT})"
            )
        try:
            return cls(
                tuple(
                    ArgumentColumns(
                        argument=a["argument"],
                        columns=tuple(a["columns"]),
                        stacked=bool(a["stacked"]),
                        kind=a["kind"],
                        levels=tuple(tuple(levels) for levels in a["levels"]),
                        series=bool(a.get("series", False)),
                    )
                    for a in d["arguments"]
                )
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a data encoder's dict: {exc!r}") from exc


# ------------------------------------------------------------------------------ columns
def _check_columns_exist(df: Any, names: Sequence[str], argument: str) -> None:
    available = list(df.columns)
    missing = [c for c in names if c not in available]
    if missing:
        raise DataError(
            f"argument {argument!r}: the DataFrame has no column {missing[0]!r}"
            f"{f' (nor {missing[1:]})' if len(missing) > 1 else ''}; columns: {available}"
        )


def _column_kind(df: Any, name: str) -> Literal["numeric", "categorical"]:
    return _dtype_kind(df.schema[name], f"column {name!r}")


def _dtype_kind(dtype: Any, label: str) -> Literal["numeric", "categorical"]:
    """``"numeric"`` or ``"categorical"`` for a narwhals dtype; ``label`` names the data."""
    nw = _narwhals()
    if dtype.is_numeric() or dtype == nw.Boolean:
        return "numeric"
    if isinstance(dtype, nw.Enum) or dtype in (nw.Categorical, nw.String):
        return "categorical"
    raise DataError(
        f"{label} has type {dtype}, which is neither numeric nor categorical: convert it "
        "to numbers or to strings/categories first"
    )


def _check_no_missing(df: Any, name: str) -> None:
    _check_series_complete(df[name], f"column {name!r}")


def _check_series_complete(series: Any, label: str) -> None:
    if series.dtype.is_float():  # polars keeps NaN apart from null; pandas counts NaN as null
        missing = int((series.is_null() | series.is_nan()).sum())
    else:
        missing = int(series.null_count())
    if missing:
        raise DataError(
            f"{label} has {missing} missing values (null or NaN); drop or impute those "
            "rows first: blayers does not drop rows for you"
        )


def _numeric(df: Any, name: str) -> np.ndarray:
    if _column_kind(df, name) != "numeric":
        raise DataError(
            f"column {name!r} was numeric when the encoder was built but is now "
            f"{df.schema[name]}; give it numbers"
        )
    _check_no_missing(df, name)
    return np.asarray(df[name].to_numpy(), dtype=np.float32)


def _levels(df: Any, name: str) -> tuple[Level, ...]:
    return _series_levels(df[name], f"column {name!r}")


def _series_levels(series: Any, label: str) -> tuple[Level, ...]:
    """The levels of a categorical narwhals Series: declared order, else sorted values."""
    nw = _narwhals()
    if isinstance(series.dtype, nw.Enum):
        return tuple(_to_level(v) for v in series.dtype.categories)
    native = nw.to_native(series)
    if series.dtype == nw.Categorical and nw.dependencies.is_pandas_like_series(native):
        return tuple(_to_level(v) for v in native.cat.categories)  # declared order
    values = series.unique().to_list()
    try:
        return tuple(_to_level(v) for v in sorted(values))
    except TypeError as exc:
        raise DataError(f"{label} mixes values that cannot be sorted: {exc}") from exc


def _codes(df: Any, name: str, levels: tuple[Level, ...], unseen: Unseen) -> np.ndarray:
    return _series_codes(df[name], f"column {name!r}", levels, unseen)


def _series_codes(series: Any, label: str, levels: tuple[Level, ...], unseen: Unseen) -> np.ndarray:
    """``int32`` codes of a categorical narwhals Series for the training ``levels``."""
    if _dtype_kind(series.dtype, label) != "categorical":
        raise DataError(
            f"{label} was categorical in training but is now {series.dtype}; give it the "
            f"levels {list(levels)[:10]}"
        )
    _check_series_complete(series, label)
    values = np.asarray(series.to_numpy(), dtype=object)
    distinct, inverse = np.unique(values, return_inverse=True)
    index = {level: code for code, level in enumerate(levels)}
    lookup = np.array([index.get(_to_level(v), -2) for v in distinct], dtype=np.int32)
    codes = lookup[inverse.reshape(-1)]
    new = [v for v, code in zip(distinct, lookup, strict=True) if code == -2]
    if new:
        if unseen == "error":
            shown = ", ".join(repr(_to_level(v)) for v in new[:5])
            raise DataError(
                f"{label} has {len(new)} level{'s' if len(new) > 1 else ''} not seen in "
                f"training ({shown}"
                f"{', ...' if len(new) > 5 else ''}); known levels: {list(levels)[:10]}"
                f"{' ...' if len(levels) > 10 else ''}. Pass unseen='population' to predict "
                "them at the population level (a zero effect), or drop those rows"
            )
        codes = np.where(codes == -2, POPULATION_CODE, codes).astype(np.int32)
    return codes


# ------------------------------------------------------------------------------ series
def _series_label(argument: str) -> str:
    return f"argument {argument!r} (a Series)"


def _series_numbers(series: Any, label: str) -> np.ndarray:
    """A numeric or boolean narwhals Series as a NumPy array of its own dtype."""
    _check_series_complete(series, label)
    return np.asarray(series.to_numpy())


def encode_series(
    arguments: Mapping[str, Any],
) -> tuple[dict[str, Any], tuple[ArgumentColumns, ...]]:
    """``fit``'s arguments with every pandas or polars Series made an array.

    A categorical, enum or string Series becomes ``int32`` codes; its :class:`ArgumentColumns`
    (one column named after the argument, ``series=True``) is returned to join the result's
    encoder. A numeric or boolean Series becomes an array of its dtype. Other values pass
    unchanged.

    Raises:
        DataError: a Series with missing values or of another type (dates, ...).
    """
    out: dict[str, Any] = {}
    specs: list[ArgumentColumns] = []
    for argument, value in arguments.items():
        series = as_series(value)
        if series is None:
            out[argument] = value
            continue
        label = _series_label(argument)
        if _dtype_kind(series.dtype, label) == "numeric":
            out[argument] = _series_numbers(series, label)
            continue
        _check_series_complete(series, label)
        levels = _series_levels(series, label)
        out[argument] = _series_codes(series, label, levels, "error")
        specs.append(
            ArgumentColumns(argument, (argument,), False, "categorical", (levels,), series=True)
        )
    return out, tuple(specs)


def encode_prediction_series(
    encoder: DataEncoder | None, arguments: Mapping[str, Any], unseen: Unseen
) -> dict[str, Any]:
    """``predict``'s keyword arguments with every Series made an array, as in training.

    A categorical Series is encoded with the levels the argument had in training (given as a
    categorical Series or a single categorical column), levels not seen then following
    ``unseen``; a numeric Series becomes an array of its dtype.

    Raises:
        DataError: a categorical Series for an argument fitted on numbers or arrays (its levels
            are unknown), a numeric Series for one fitted on categories, missing values, or an
            unseen level with ``unseen="error"``.
    """
    out: dict[str, Any] = {}
    for argument, value in arguments.items():
        series = as_series(value)
        if series is None:
            out[argument] = value
            continue
        label = _series_label(argument)
        spec = None if encoder is None else encoder.spec_of(argument)
        categorical = spec is not None and spec.kind == "categorical"
        if _dtype_kind(series.dtype, label) == "numeric" and not categorical:
            out[argument] = _series_numbers(series, label)
        elif spec is not None and categorical and not spec.stacked:
            out[argument] = _series_codes(series, label, spec.levels[0], unseen)
        elif spec is not None and categorical:
            raise DataError(
                f"{label}: the model was fitted on {len(spec.columns)} categorical columns "
                f"{list(spec.columns)} for it, (n, {len(spec.columns)}) codes; pass a DataFrame "
                "with those columns as data="
            )
        else:
            raise DataError(
                f"{label} is categorical, but {argument!r} was fitted on numbers or codes, so its "
                "levels are unknown: pass the integer codes used in training, or fit with the "
                "categorical Series (or DataFrame column) to have its levels recorded"
            )
    return out


# ------------------------------------------------------------------------------ fit / predict
def check_fit_data_not_empty(data: Any, keywords: Mapping[str, Any]) -> None:
    """Raise :class:`DataError` when ``fit``'s data have no rows at all (a DataFrame, Series or
    arrays with 0 rows), before anything reads them."""
    arguments = dict(keywords)
    if is_dataframe(data):
        arguments = {"data=": data, **arguments}
    elif isinstance(data, Mapping):
        arguments = {**data, **arguments}
    check_not_empty(arguments)


def _model_parameters(model: Any) -> dict[str, inspect.Parameter] | None:
    """The model's keyword-capable parameters; ``None`` when it takes ``**kwargs``."""
    try:
        params = inspect.signature(model).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return {
        name: p
        for name, p in params.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }


def encode_fit_data(
    model: Any,
    data: Any,
    columns: Mapping[str, str | Sequence[str]] | DataEncoder | None,
    keywords: Mapping[str, Any],
) -> tuple[Mapping[str, Any] | None, DataEncoder | None]:
    """``fit``'s ``data=``: a DataFrame becomes arrays by argument and its encoder.

    Any other ``data`` (a mapping or ``None``) passes through unchanged with no encoder.
    """
    if not is_dataframe(data):
        if columns is not None:
            raise DataError(
                "columns= picks DataFrame columns, but data= is not a DataFrame (pass a pandas "
                f"or polars DataFrame, or leave columns= out); got {type(data).__name__}"
            )
        return data, None
    if not isinstance(columns, DataEncoder):
        encoder = DataEncoder.from_frame(data, _resolve_columns(model, data, columns, keywords))
        return encoder.encode(data), encoder
    try:
        return columns.encode(data), columns
    except DataError as exc:
        exc.add_note(
            "columns= is a DataEncoder built beforehand: build it from the training frame "
            "(DataEncoder.from_frame(df, ...)) so that it knows every level"
        )
        raise


def _resolve_columns(
    model: Any,
    frame: Any,
    columns: Mapping[str, str | Sequence[str]] | None,
    keywords: Mapping[str, Any],
) -> dict[str, str | Sequence[str]]:
    explicit = dict(columns or {})
    params = _model_parameters(model)
    available = list(_frame(frame).columns)
    if params is not None:
        unknown = sorted(set(explicit) - set(params))
        if unknown:
            raise DataError(
                f"columns= names {unknown}, which the model does not take; its arguments: "
                f"{list(params)}"
            )
    clash = sorted(set(explicit) & set(keywords))
    if clash:
        raise DataError(
            f"arguments {clash} are given both in columns= and as keywords; give each once"
        )
    matched = {
        name: name
        for name in (params or {})
        if name in available and name not in explicit and name not in keywords
    }
    chosen = {**matched, **explicit}
    if not chosen:
        args = list(params) if params is not None else "(**kwargs)"
        raise DataError(
            f"no model argument names a column of the DataFrame (arguments: {args}; columns: "
            f"{available}); map them with columns=, e.g. columns={{'x': [...], 'y': 'target'}}"
        )
    return chosen


def encode_prediction_data(
    model: Any,
    encoder: DataEncoder | None,
    data: Any,
    unseen: Unseen,
    keywords: Mapping[str, Any],
) -> dict[str, Any]:
    """``predict``'s ``data=``: a DataFrame or a mapping as the model's arguments.

    A DataFrame is encoded with the training ``encoder``; arguments the model gives a default of
    ``None`` (the target, ``y=None``) and those in ``keywords`` are not read from it, so the link
    draws the target. A mapping is used as it is. An argument given both in ``data`` and in
    ``keywords`` raises.

    Raises:
        DataError: a DataFrame for a result fitted on arrays, a column the encoder cannot read, or
            an argument given twice.
        TypeError: ``data`` is neither a DataFrame nor a mapping.
    """
    if unseen not in ("error", "population"):
        raise ValueError(f"unseen must be 'error' or 'population', got {unseen!r}")
    arrays: dict[str, Any] = {}
    if is_dataframe(data):
        if encoder is None:
            raise DataError(
                "this result was fitted on arrays, so it has no column encoder; pass the new data "
                "as arrays (predict(x=...)), or fit on a DataFrame"
            )
        params = _model_parameters(model) or {}
        skip = [n for n, p in params.items() if p.default is None] + list(keywords)
        arrays = encoder.encode(data, unseen=unseen, skip=skip)
    elif isinstance(data, Mapping):
        arrays = dict(data)
    elif data is not None:
        raise TypeError(
            f"data must be a pandas or polars DataFrame or a mapping, got {type(data).__name__}"
        )
    clash = sorted(set(arrays) & set(keywords))
    if clash:
        raise DataError(
            f"arguments {clash} are given both in data= and as keywords; give each once"
        )
    return arrays
