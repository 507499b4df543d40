"""Row-chunked evaluation of a compiled program: the dry run, predictions and the ArviZ export.

A program is run over ``n`` rows ``size = min(chunk_rows, n)`` rows at a time. The last chunk is
topped up with rows from the start (:func:`padded_chunk`), so every chunk has the same shape and
the program compiles once however many rows there are; the padding is dropped from the outputs.
Memory on the device stays that of one chunk.

The program for a chunk is ``program(operands, key, arrays)``: ``operands`` are the same for every
chunk (posterior draws, say), ``key`` is the chunk's random key and ``arrays`` its rows with the
array constants. It is built by the caller from the static constants and kept in one process-wide
:class:`~blayers_core.engine.program_cache.ProgramCache`, keyed by what the caller says it computes,
the layout of ``arrays``, the static constants and the trace settings (so a program traced under
``allow_population_codes()`` serves only calls under it).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

import attrs
import jax
import jax.numpy as jnp
import numpy as np

from blayers_core.contract._typing import Array
from blayers_core.engine.data import row_count, split_constants
from blayers_core.engine.program_cache import ProgramCache, data_signature, static_key

#: Compiled chunk programs kept per process (dry runs, predictions, pointwise evaluations).
CHUNK_PROGRAM_CACHE_SIZE = 48


class ChunkProgram(Protocol):
    """What runs on one chunk: ``(operands, key, arrays) -> outputs``."""

    def __call__(self, operands: Any, key: Array, arrays: dict[str, Any]) -> Any: ...


P = TypeVar("P", bound=ChunkProgram)

_PROGRAMS: ProgramCache[Any] = ProgramCache(CHUNK_PROGRAM_CACHE_SIZE)


@attrs.frozen
class ChunkOutput(Generic[P]):
    """What one chunk gave.

    Attributes:
        start: the chunk's first row in the data.
        num_valid: rows of data in the chunk (the rest is padding, already dropped from ``value``
            when ``row_axes`` was given).
        value: the program's outputs.
        program: the program that ran.
    """

    start: int
    num_valid: int
    value: Any
    program: P


def padded_chunk(values: np.ndarray, start: int, size: int) -> np.ndarray:
    """Rows ``start .. start + size`` of ``values``; past the end, rows from the start again, so
    every chunk has the same shape (and the program compiles once)."""
    if start + size <= len(values):
        return values[start : start + size]
    return np.take(values, np.arange(start, start + size), axis=0, mode="wrap")


def evaluate_in_chunks(
    what: Hashable,
    build: Callable[[dict[str, Any]], P],
    rows: Mapping[str, Any],
    constants: Mapping[str, Any],
    *,
    chunk_rows: int,
    chunk_key: Callable[[int], Array],
    operands: Any = None,
    row_axes: Any = None,
) -> Iterator[ChunkOutput[P]]:
    """Run a compiled program over ``rows`` in chunks of at most ``chunk_rows`` rows.

    Args:
        what: identifies what the program computes (e.g. ``("predict", model, site, ...)``).
        build: the static constants -> the compiled :class:`ChunkProgram` (called on a cache miss).
        rows: row arrays, all ``(n, ...)``; with no rows, one chunk runs on the constants alone.
        constants: the other arguments, split by :func:`~blayers_core.engine.data.split_constants`.
        chunk_rows: rows per chunk.
        chunk_key: the random key of chunk ``i``.
        operands: passed unchanged to every chunk.
        row_axes: a pytree like the outputs giving each output's row axis; the padding rows are
            then dropped and the outputs come back as NumPy arrays. ``None``: outputs as they are.

    Yields:
        One :class:`ChunkOutput` per chunk, in row order.
    """
    num_rows = row_count(rows)
    size = min(chunk_rows, num_rows)
    array_constants, static = split_constants(constants)
    device_constants = {k: jnp.asarray(v) for k, v in array_constants.items()}
    whole = size == num_rows
    host = {} if whole else {k: np.asarray(v) for k, v in rows.items()}
    for index, start in enumerate(range(0, max(num_rows, 1), max(size, 1))):
        chunk = dict(rows) if whole else {k: padded_chunk(v, start, size) for k, v in host.items()}
        arrays = {**chunk, **device_constants}
        key = (what, data_signature(arrays), static_key(static))
        program: P = _PROGRAMS.get(key, lambda: build(dict(static)))
        value = program(operands, chunk_key(index), arrays)
        num_valid = min(size, num_rows - start)
        if row_axes is not None:
            value = keep_rows(value, row_axes, num_valid)
        yield ChunkOutput(start, num_valid, value, program)


def cached_program(
    what: Hashable, rows: Mapping[str, Any], constants: Mapping[str, Any], *, chunk_rows: int
) -> Any | None:
    """The program :func:`evaluate_in_chunks` would run for these arguments, if it has one in the
    cache already (``None`` otherwise); runs and builds nothing."""
    size = min(chunk_rows, row_count(rows))
    array_constants, static = split_constants(constants)
    chunk = (
        dict(rows)
        if size == row_count(rows)
        else {k: np.asarray(v)[:size] for k, v in rows.items()}
    )
    arrays = {**chunk, **array_constants}
    return _PROGRAMS.find((what, data_signature(arrays), static_key(static)))


def keep_rows(value: Any, row_axes: Any, num_rows: int) -> Any:
    """The first ``num_rows`` rows (along each output's row axis) of the outputs, in NumPy."""

    def keep(axis: int, leaf: Any) -> Any:
        if leaf is None:
            return None
        index = (slice(None),) * axis + (slice(0, num_rows),)
        return np.asarray(leaf)[index]

    return jax.tree_util.tree_map(keep, row_axes, value)


def join_chunks(parts: Sequence[Any], row_axes: Any) -> Any:
    """The outputs of consecutive chunks joined along each output's row axis."""

    def join(axis: int, *leaves: Any) -> Any:
        return None if leaves[0] is None else np.concatenate(leaves, axis=axis)

    return jax.tree_util.tree_map(join, row_axes, *parts)
