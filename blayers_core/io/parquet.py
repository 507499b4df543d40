r"""Parquet data larger than memory: row groups read from disk in shuffled batches.

``fit(model, data="data.parquet" | "folder/" | pyarrow_dataset, columns=..., batch_size=B)``
reads the rows with `pyarrow <https://arrow.apache.org/docs/python/>`_ (an optional dependency:
``pip install "blayers-core[parquet]"``) instead of loading them: :func:`open_parquet` lists the
row groups of every file from the files' metadata (no rows are read) and returns a
:class:`ParquetStream`, the :class:`~blayers_core.contract.inference.RowStream` the ``svi``
method trains on.

Columns
-------
``columns=`` maps model arguments to columns exactly as for a DataFrame
(:mod:`blayers_core.io.frames`): ``{"x": ["a", "b"], "y": "target"}`` gives ``x`` an ``(n, 2)``
matrix and ``y`` an ``(n,)`` array, and an argument named like a column gets that column.
Numbers and booleans become ``float32``. Categorical (dictionary) and string columns need their
levels before the first row is read, so they are read only through a
:class:`~blayers_core.io.frames.DataEncoder` built beforehand from a frame that has every level
(``columns=DataEncoder.from_frame(sample, {...})``). A missing value or a non-finite number
raises a :class:`~blayers_core.contract.errors.DataError` naming the file and the row group, when
that row group is read.

Batches and the shuffle
-----------------------
An epoch has ``S = ceil(N / B)`` steps. With ``G`` row groups of ``n_g`` rows, epoch ``e``:

1. draws a permutation ``sigma_e`` of the ``G`` row groups (a new one every epoch);
2. cuts that order, greedily, into *windows*: consecutive row groups holding together at least
   ``shuffle_rows`` rows (the last window may hold fewer);
3. reads one window at a time, permutes its rows uniformly at random, and appends them to the
   epoch's sequence of ``N`` rows;
4. cuts the sequence into batches of ``B`` consecutive rows; the last batch, short when ``B``
   does not divide ``N``, is padded with copies of its own rows, masked out of the loss, and every
   real row of every batch weighs ``S B / N`` on top of the loss's ``N / B``
   (:class:`~blayers_core.engine.minibatch.padded_rows`), so the mean loss over an epoch is the
   full-data loss.

So every row is in exactly one batch per epoch; two rows of the same window are equally likely
to be in any order, and the windows (so the row groups that share batches) change every epoch.
Rows of row groups far apart in an epoch's order do not share a batch: with data sorted on disk
(by date, by customer) keep row groups small against ``shuffle_rows`` so that each window mixes
many of them. ``shuffle=False`` reads row groups and rows in file order.

Everything is drawn from ``(seed, epoch, window)`` alone, and the windows follow from the row
counts in the metadata, so the batches of step ``s`` are found without reading the row groups
before it: a resumed run reads from the window that holds step ``s``'s first row and gets the
same batches, bit for bit, as a run that never stopped.

Memory
------
At most one window (``shuffle_rows`` plus one row group's rows) and one batch being filled are
decoded at a time, besides the chunks of batches the trainer holds
(``blayers_core.engine.streamed``): the memory a fit needs does not grow with the file.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from blayers_core.contract.errors import DataError
from blayers_core.contract.inference import HostBatch, RowStream
from blayers_core.io.frames import ArgumentColumns, DataEncoder, _resolve_columns

#: Rows a window of row groups holds at least (before its rows are shuffled), unless chosen.
DEFAULT_SHUFFLE_ROWS = 65536

#: How to install what reading Parquet needs.
PARQUET_INSTALL = 'pip install "blayers-core[parquet]"'

_SUFFIXES = (".parquet", ".pq", ".parq")


def _pyarrow_dataset() -> Any:
    """``pyarrow.dataset``, or an ImportError that says how to install it."""
    try:
        import pyarrow.dataset as ds
    except ImportError as error:  # pragma: no cover - pyarrow is installed with the tests
        raise ImportError(f"reading Parquet data needs pyarrow: {PARQUET_INSTALL}") from error
    return ds


def is_parquet_source(data: Any) -> bool:
    """Whether ``data`` is a path (``str`` or ``os.PathLike``) or a ``pyarrow.dataset.Dataset``:
    what :func:`open_parquet` reads. pyarrow is not imported for the check."""
    if isinstance(data, str | os.PathLike):
        return True
    module = sys.modules.get("pyarrow.dataset")
    return module is not None and isinstance(data, module.Dataset)


@attrs.frozen
class RowGroup:
    """One row group: its fragment, file, index in the file, rows, and first row's index."""

    fragment: Any = attrs.field(repr=False)
    path: str
    index: int
    num_rows: int
    offset: int

    def where(self) -> str:
        return f"row group {self.index} of {self.path}"


def open_parquet(
    data: Any,
    *,
    model: Any,
    columns: Mapping[str, str | Sequence[str]] | DataEncoder | None,
    constants: Mapping[str, Any],
    shuffle_rows: int = DEFAULT_SHUFFLE_ROWS,
) -> ParquetStream:
    """The stream of ``data``: a ``.parquet`` file, a folder of them, or a
    ``pyarrow.dataset.Dataset`` of Parquet files.

    Args:
        data: where the rows are.
        model: the model, whose arguments named like a column get that column.
        columns: argument -> column or list of columns (as for a DataFrame), or a
            :class:`~blayers_core.io.frames.DataEncoder` built beforehand (needed for
            categorical columns).
        constants: the model's other arguments (given as keywords).
        shuffle_rows: rows a window of row groups holds at least before its rows are shuffled.

    Raises:
        DataError: a path that is not a Parquet file or a folder, no rows, an unknown column
            (naming it and listing the columns), a column that is neither numeric nor (without
            an encoder) usable.
        ImportError: pyarrow is not installed.
    """
    if not isinstance(shuffle_rows, int) or shuffle_rows < 1:
        raise ValueError(f"shuffle_rows must be a positive int, got {shuffle_rows!r}")
    dataset, label = _dataset(data)
    groups = _row_groups(dataset)
    num_rows = sum(g.num_rows for g in groups)
    if num_rows == 0:
        raise DataError(f"{label} has no rows; pass data with at least one row")
    schema = dataset.schema
    available = list(schema.names)
    if isinstance(columns, DataEncoder):
        encoder = columns
        for spec in encoder.arguments:
            _check_columns(spec, available, label)
    else:
        chosen = _resolve_columns(model, schema.empty_table(), columns, constants)
        encoder = DataEncoder(tuple(_numeric_spec(a, c, schema, label) for a, c in chosen.items()))
    return ParquetStream(
        dataset=dataset,
        label=label,
        num_rows=num_rows,
        groups=tuple(groups),
        encoder=encoder,
        constants=dict(constants),
        shuffle_rows=shuffle_rows,
    )


def _dataset(data: Any) -> tuple[Any, str]:
    """``(pyarrow Dataset, label)`` of ``data``."""
    ds = _pyarrow_dataset()
    if isinstance(data, ds.Dataset):
        if not isinstance(data, ds.FileSystemDataset) or not isinstance(
            data.format, ds.ParquetFileFormat
        ):
            raise DataError(
                f"data= is a {type(data).__name__} that is not a dataset of Parquet files; "
                "stream Parquet files (pyarrow.dataset.dataset(path, format='parquet')), or pass "
                "a DataFrame or arrays"
            )
        return data, f"the pyarrow Dataset of {len(data.files)} Parquet files"
    path = Path(os.fspath(data))
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in _SUFFIXES)
        if not files:
            raise DataError(
                f"data= is the folder {str(path)!r}, which holds no Parquet files "
                f"({', '.join(_SUFFIXES)}); pass a folder of Parquet files"
            )
        label = f"the folder {str(path)!r} ({len(files)} Parquet files)"
        return ds.dataset([str(f) for f in files], format="parquet"), label
    if not path.exists():
        raise DataError(f"data= is the path {str(path)!r}, which does not exist")
    if path.suffix not in _SUFFIXES:
        raise DataError(
            f"data= is the file {str(path)!r}, which is not a Parquet file ({', '.join(_SUFFIXES)}); "
            "read other formats into a DataFrame first, or convert them to Parquet"
        )
    return ds.dataset(str(path), format="parquet"), f"the Parquet file {str(path)!r}"


def _row_groups(dataset: Any) -> list[RowGroup]:
    """Every row group of every file, in file order, from the files' metadata."""
    groups: list[RowGroup] = []
    offset = 0
    for fragment in dataset.get_fragments():
        for piece in fragment.split_by_row_group():
            (info,) = piece.row_groups
            groups.append(RowGroup(piece, fragment.path, int(info.id), info.num_rows, offset))
            offset += info.num_rows
    return groups


def _check_columns(spec: ArgumentColumns, available: list[str], label: str) -> None:
    missing = [c for c in spec.columns if c not in available]
    if missing:
        raise DataError(
            f"argument {spec.argument!r}: {label} has no column {missing[0]!r}"
            f"{f' (nor {missing[1:]})' if len(missing) > 1 else ''}; columns: {available}"
        )


def _numeric_spec(argument: str, spec: str | Sequence[str], schema: Any, label: str) -> Any:
    """The :class:`ArgumentColumns` of numeric columns read as ``float32``."""
    import pyarrow as pa

    names = (spec,) if isinstance(spec, str) else tuple(spec)
    columns = ArgumentColumns(argument, names, not isinstance(spec, str), "numeric")
    _check_columns(columns, list(schema.names), label)
    for name in names:
        kind = schema.field(name).type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
            continue
        if (
            pa.types.is_dictionary(kind)
            or pa.types.is_string(kind)
            or pa.types.is_large_string(kind)
        ):
            raise DataError(
                f"column {name!r} of {label} holds categories ({kind}), whose levels cannot be "
                "known before every row is read: build the encoder beforehand from a frame with "
                "every level and pass it, columns=DataEncoder.from_frame(sample_df, "
                f"{{{argument!r}: {spec!r}, ...}}), or store integer codes in a numeric column"
            )
        raise DataError(
            f"column {name!r} of {label} has type {kind}, which is neither numeric nor "
            "categorical: convert it to numbers first"
        )
    return columns


def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng([k % 2**63 for k in keys])


def windows(counts: np.ndarray, shuffle_rows: int) -> list[tuple[int, int]]:
    """Cut row groups with ``counts`` rows (in reading order) into windows ``[start, stop)`` of
    consecutive row groups holding at least ``shuffle_rows`` rows each (the last may hold
    fewer)."""
    out, start, rows = [], 0, 0
    for i, count in enumerate(counts):
        rows += int(count)
        if rows >= shuffle_rows:
            out.append((start, i + 1))
            start, rows = i + 1, 0
    if start < len(counts):
        out.append((start, len(counts)))
    return out


@attrs.frozen(kw_only=True, eq=False)
class ParquetStream(RowStream):
    """The rows of Parquet files, in shuffled batches (see the module docstring).

    Attributes:
        dataset: the ``pyarrow.dataset.Dataset``.
        label: what it is, for messages.
        num_rows: the rows of every file together.
        groups: every row group, in file order.
        encoder: how columns become model arguments.
        constants: the model's other arguments.
        shuffle_rows: rows a window holds at least before its rows are shuffled.
    """

    dataset: Any = attrs.field(repr=False)
    label: str
    num_rows: int
    groups: tuple[RowGroup, ...] = attrs.field(repr=False)
    encoder: DataEncoder
    constants: dict[str, Any] = attrs.field(repr=False)
    shuffle_rows: int = DEFAULT_SHUFFLE_ROWS
    _files: _OpenFiles = attrs.field(init=False, factory=lambda: _OpenFiles(), repr=False)

    @property
    def columns_read(self) -> list[str]:
        return list(dict.fromkeys(c for spec in self.encoder.arguments for c in spec.columns))

    @property
    def row_layout(self) -> dict[str, tuple[tuple[int, ...], np.dtype[Any]]]:
        first = self.first_rows(1)
        return {k: (tuple(v.shape[1:]), v.dtype) for k, v in first.items()}

    def describe(self) -> str:
        return self.label

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for group in self.groups:
            digest.update(f"{Path(group.path).name}:{group.index}:{group.num_rows};".encode())
        digest.update(repr(self.encoder.to_json_dict()).encode())
        digest.update(f"shuffle_rows={self.shuffle_rows}".encode())
        for name, value in sorted(self.first_rows(256).items()):
            digest.update(name.encode() + np.ascontiguousarray(value).tobytes())
        return digest.hexdigest()

    # ------------------------------------------------------------------ reading
    def read_group(self, group: RowGroup) -> dict[str, np.ndarray]:
        """The model's arrays from one row group (checked: no missing or non-finite values)."""
        table = self._files.read(group, self.columns_read)
        try:
            arrays = decode(table, self.encoder)
        except DataError as error:
            error.add_note(f"(in {group.where()})")
            raise
        for name, value in arrays.items():
            if value.dtype.kind == "f":
                finite = np.isfinite(value)
                if not finite.all():
                    bad = np.unique(np.nonzero(~finite)[0])
                    raise DataError(
                        f"argument {name!r} has {int((~finite).sum())} non-finite values (NaN or "
                        f"inf) in {len(bad)} rows of {group.where()} (rows "
                        f"{', '.join(str(r) for r in bad[:5])}{', ...' if len(bad) > 5 else ''} "
                        "of that row group); drop or impute those rows before fitting"
                    )
        return arrays

    def _read_window(self, groups: Sequence[RowGroup]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        parts = [self.read_group(g) for g in groups]
        ids = np.concatenate([np.arange(g.offset, g.offset + g.num_rows) for g in groups])
        if len(parts) == 1:
            return parts[0], ids
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}, ids

    def first_rows(self, count: int) -> dict[str, np.ndarray]:
        count = min(count, self.num_rows)
        chosen, rows = [], 0
        for group in self.groups:
            if rows >= count:
                break
            chosen.append(group)
            rows += group.num_rows
        arrays, _ = self._read_window(chosen)
        return {k: v[:count] for k, v in arrays.items()}

    def in_order(self) -> Iterator[tuple[RowGroup, Any]]:
        """Every row group and its table (the columns of the file, all of them), in file order."""
        for group in self.groups:
            yield group, group.fragment.to_table(use_threads=True)

    # ------------------------------------------------------------------ batches
    def batches(
        self,
        *,
        batch_size: int,
        seed: int,
        shuffle: bool,
        first_step: int = 0,
        steps_per_epoch: int | None = None,
    ) -> Iterator[HostBatch]:
        real = math.ceil(self.num_rows / batch_size)
        steps = real if steps_per_epoch is None else steps_per_epoch
        if steps < real:
            raise ValueError(
                f"steps_per_epoch={steps_per_epoch} cannot hold {self.num_rows} rows in batches "
                f"of {batch_size}; it must be at least {real}"
            )
        epoch, within = divmod(first_step, steps)
        empty = None
        while True:
            if within < real:
                yield from self._epoch(epoch, within, batch_size, seed, shuffle)
            for _ in range(max(within, real), steps):  # padding only, masked out
                empty = self._empty(batch_size) if empty is None else empty
                yield empty
            epoch, within = epoch + 1, 0

    def _empty(self, batch_size: int) -> HostBatch:
        """A batch of padding: copies of the first row, all masked."""
        first = self.first_rows(1)
        return HostBatch(
            rows={k: np.repeat(v, batch_size, axis=0) for k, v in first.items()},
            mask=np.zeros(batch_size, dtype=bool),
            row_ids=np.full(batch_size, self.groups[0].offset, dtype=np.int64),
        )

    def part(self, index: int, count: int) -> ParquetStream:
        """The row groups ``index, index + count, index + 2 count, ...`` (in file order)."""
        groups = self.groups[index::count]
        if not groups:
            raise DataError(
                f"{self.label} has {len(self.groups)} row groups, fewer than the {count} "
                "processes that each read their own: write it with more, smaller row groups"
            )
        return attrs.evolve(self, groups=groups, num_rows=sum(g.num_rows for g in groups))

    def epoch_order(self, epoch: int, seed: int, shuffle: bool) -> np.ndarray:
        """The row groups of ``epoch`` in reading order (indices into :attr:`groups`)."""
        count = len(self.groups)
        return _rng(seed, epoch).permutation(count) if shuffle else np.arange(count)

    def _epoch(
        self, epoch: int, within: int, batch_size: int, seed: int, shuffle: bool
    ) -> Iterator[HostBatch]:
        order = self.epoch_order(epoch, seed, shuffle)
        counts = np.array([self.groups[i].num_rows for i in order], dtype=np.int64)
        cuts = (
            windows(counts, self.shuffle_rows)
            if shuffle
            else [(i, i + 1) for i in range(len(order))]
        )
        ends = np.cumsum([counts[a:b].sum() for a, b in cuts])
        position = within * batch_size  # the epoch's first row to hand out
        first = int(np.searchsorted(ends, position, side="right"))
        skip = position - (int(ends[first - 1]) if first else 0)
        # Rows not handed out yet: (window's arrays, their row ids, positions still to hand out,
        # in the shuffled order). A batch gathers its rows from one window, or two at a seam.
        pending: list[tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]] = []
        waiting = 0
        for w in range(first, len(cuts)):
            a, b = cuts[w]
            arrays, ids = self._read_window([self.groups[i] for i in order[a:b]])
            if shuffle:
                positions = _rng(seed, epoch, w, 1).permutation(len(ids))
            else:
                positions = np.arange(len(ids))
            pending.append((arrays, ids, positions[skip:]))
            waiting += len(ids) - skip
            skip = 0
            while waiting >= batch_size:
                rows, row_ids = _take(pending, batch_size)
                waiting -= batch_size
                yield HostBatch(rows=rows, mask=np.ones(batch_size, dtype=bool), row_ids=row_ids)
        if waiting:
            rows, row_ids = _take(pending, waiting)
            fill = np.arange(batch_size) % waiting  # padding slots repeat the batch's own rows
            yield HostBatch(
                rows={k: v[fill] for k, v in rows.items()},
                mask=np.arange(batch_size) < waiting,
                row_ids=row_ids[fill],
            )


def _take(
    pending: list[tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]], count: int
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The next ``count`` rows of ``pending`` (gathered, in order), removed from it."""
    pieces = []
    while count:
        arrays, ids, positions = pending[0]
        take = positions[:count]
        pieces.append(({k: np.take(v, take, axis=0) for k, v in arrays.items()}, ids[take]))
        if len(take) == len(positions):
            pending.pop(0)
        else:
            pending[0] = (arrays, ids, positions[count:])
        count -= len(take)
    if len(pieces) == 1:
        return pieces[0]
    rows = {k: np.concatenate([p[0][k] for p in pieces]) for k in pieces[0][0]}
    return rows, np.concatenate([p[1] for p in pieces])


class _OpenFiles:
    """The Parquet files last read, kept open (a few at a time) so that reading a row group does
    not open its file and parse its footer again; safe to share between threads."""

    def __init__(self, keep: int = 8) -> None:
        self.keep = keep
        self._open: dict[str, Any] = {}
        self._lock = threading.Lock()

    def read(self, group: RowGroup, columns: list[str]) -> Any:
        """The ``columns`` of ``group`` as a pyarrow Table."""
        import pyarrow.parquet as pq

        with self._lock:
            handle = self._open.pop(group.path, None)
            if handle is None:
                source = group.fragment.filesystem.open_input_file(group.path)
                handle = pq.ParquetFile(source)
            self._open[group.path] = handle  # the most recent last
            while len(self._open) > self.keep:
                self._open.pop(next(iter(self._open))).close()
            return handle.read_row_group(group.index, columns=columns, use_threads=False)


def decode(table: Any, encoder: DataEncoder) -> dict[str, np.ndarray]:
    """The model's arrays from a pyarrow Table: numbers as ``float32`` (read straight from
    Arrow), categories as ``int32`` codes through ``encoder``."""
    if any(spec.kind != "numeric" for spec in encoder.arguments):
        return encoder.encode(table)
    out = {}
    for spec in encoder.arguments:
        if not spec.stacked:
            out[spec.argument] = _column(table, spec.columns[0])
            continue
        matrix = np.empty((table.num_rows, len(spec.columns)), dtype=np.float32)
        for i, name in enumerate(spec.columns):
            matrix[:, i] = _column(table, name)
        out[spec.argument] = matrix
    return out


def _column(table: Any, name: str) -> np.ndarray:
    column = table.column(name)
    if column.null_count:
        raise DataError(
            f"column {name!r} has {column.null_count} missing values (null); drop or impute those "
            "rows first: blayers does not drop rows for you"
        )
    return np.asarray(column.to_numpy(), dtype=np.float32)


#: Rows of whole row groups that ``predict`` reads and predicts at a time, unless chosen.
PREDICT_PIECE_ROWS = 65536


def open_for_prediction(data: Any) -> tuple[Any, str]:
    """``(pyarrow Dataset, label)`` of a Parquet path or dataset that ``predict`` reads."""
    return _dataset(data)


def pieces_in_order(dataset: Any, piece_rows: int = PREDICT_PIECE_ROWS) -> Iterator[Any]:
    """The rows of ``dataset`` in file order, as pyarrow Tables of whole row groups holding at
    least ``piece_rows`` rows each (the last may hold fewer); one is read at a time."""
    import pyarrow as pa

    tables: list[Any] = []
    rows = 0
    for group in _row_groups(dataset):
        tables.append(group.fragment.to_table(use_threads=True))
        rows += group.num_rows
        if rows >= piece_rows:
            yield pa.concat_tables(tables)
            tables, rows = [], 0
    if tables:
        yield pa.concat_tables(tables)


def prediction_table(
    mean: np.ndarray, sd: np.ndarray, levels: Sequence[float], quantiles: Any
) -> Any:
    """A pyarrow Table of predictions: ``mean``, ``sd`` and one column per quantile level
    (``q0.05``, ...); rows with several values are fixed-size lists."""
    import pyarrow as pa

    def column(values: np.ndarray) -> Any:
        if values.ndim == 1:
            return pa.array(values)
        flat = pa.array(np.ascontiguousarray(values).reshape(-1))
        return pa.FixedSizeListArray.from_arrays(flat, int(np.prod(values.shape[1:])))

    columns = {"mean": column(mean), "sd": column(sd)}
    for i, level in enumerate(levels):
        columns[f"q{level:g}"] = column(np.asarray(quantiles[i]))
    return pa.table(columns)


def write_predictions(
    pieces: Iterator[tuple[np.ndarray, np.ndarray, Sequence[float], Any]],
    output: str | os.PathLike[str],
) -> Path:
    """Write each piece's predictions (mean, sd, quantile levels, quantiles) to the Parquet
    file ``output``, one row group per piece, in order; returns its path."""
    import pyarrow.parquet as pq

    path = Path(os.fspath(output))
    writer = None
    try:
        for mean, sd, levels, quantiles in pieces:
            table = prediction_table(mean, sd, levels, quantiles)
            if writer is None:
                writer = pq.ParquetWriter(str(path), table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    return path
