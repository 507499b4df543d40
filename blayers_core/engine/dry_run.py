"""Run a model once over every row, compiled, before training starts.

Layers and links check their input values through :func:`blayers_core.contract.checks.check_data` (index
ranges, supports, domains). Inside a training step such a check could only show up as NaN or a
silently clamped index, so ``fit`` and ``predict`` first run the model over every row, in chunks,
under ``seed`` and ``trace``, as one compiled program that returns the values the checks need;
the checks then run on the host, in the order the model met them. A bad input raises the layer's
own error, naming the argument, before any training step. The trace also tells which sites are
observed and which are deterministic.

The program is compiled once per model, data layout and constants, and kept for the process
(and in JAX's persistent cache), so a second ``fit`` or ``predict`` of the same shapes compiles
nothing.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import attrs
import jax
import numpy as np
from numpyro import handlers

from blayers_core.contract._typing import ModelFn
from blayers_core.contract.checks import CheckCollector, collecting_checks
from blayers_core.contract.population import population_codes_allowed
from blayers_core.engine.compile_once import jit_once
from blayers_core.engine.data import padded_chunk
from blayers_core.engine.program import data_signature, static_key

#: Rows per chunk; bounded so the check's memory stays small for millions of rows. Every chunk has
#: this many rows (the last is topped up with rows from the start), so the program compiles for
#: one shape only.
DRY_RUN_CHUNK_ROWS = 1 << 18

#: Compiled dry runs kept per process.
DRY_RUN_CACHE_SIZE = 16


@attrs.frozen
class DryRunResult:
    """What one run of the model showed."""

    observed_sites: tuple[str, ...]
    deterministic_sites: tuple[str, ...]


@attrs.define
class _CompiledDryRun:
    run: Callable[..., Any]
    traced: list[DryRunResult]  # what tracing ``run`` found (filled on its first call)
    checks: CheckCollector  # the checks ``run`` met when traced; it returns their values


_COMPILED: OrderedDict[Hashable, _CompiledDryRun] = OrderedDict()


def _is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray | jax.Array)


def _compiled(
    model: ModelFn, arrays: Mapping[str, Any], static: Mapping[str, Any]
) -> _CompiledDryRun:
    # Layers read the population-code flag when traced, so it is part of what was compiled.
    key = (model, data_signature(arrays), static_key(static), population_codes_allowed())
    cached = _COMPILED.get(key)
    if cached is not None:
        _COMPILED.move_to_end(key)
        return cached
    static = dict(static)
    traced: list[DryRunResult] = []
    checks = CheckCollector()

    def run(arrays: dict[str, Any], rng_key: Any) -> list[Any]:
        checks.clear()  # (runs when traced, which happens once)
        checks.probe = rng_key
        with collecting_checks(checks):
            model_trace = handlers.trace(handlers.seed(model, rng_seed=rng_key)).get_trace(
                **arrays, **static
            )
        traced.append(
            DryRunResult(
                tuple(
                    name
                    for name, site in model_trace.items()
                    if site["type"] == "sample" and site["is_observed"] and not name.startswith("_")
                ),
                tuple(n for n, site in model_trace.items() if site["type"] == "deterministic"),
            )
        )
        checks.probe = None
        return list(checks.values)  # what the checks need, run on the host afterwards

    entry = _CompiledDryRun(run=jit_once(run), traced=traced, checks=checks)
    _COMPILED[key] = entry
    while len(_COMPILED) > DRY_RUN_CACHE_SIZE:
        _COMPILED.popitem(last=False)
    return entry


def dry_run(
    model: ModelFn,
    rows: Mapping[str, Any],
    constants: Mapping[str, Any],
    *,
    seed: int = 0,
    chunk_rows: int = DRY_RUN_CHUNK_ROWS,
) -> DryRunResult:
    """Run ``model(**rows, **constants)`` over every row; report its observed sites.

    Raises whatever the model's layers and links raise on bad input (at tracing for shapes and
    dtypes, after the compiled program has run for values).
    """
    num_rows = len(next(iter(rows.values()))) if rows else 0
    array_constants = {k: v for k, v in constants.items() if _is_array(v)}
    static = {k: v for k, v in constants.items() if k not in array_constants}
    starts = range(0, max(num_rows, 1), chunk_rows)
    compiled: _CompiledDryRun | None = None
    for start in starts:
        if num_rows <= chunk_rows:
            chunk = dict(rows)
        else:
            chunk = {k: padded_chunk(np.asarray(v), start, chunk_rows) for k, v in rows.items()}
        arrays = {**chunk, **array_constants}
        compiled = _compiled(model, arrays, static)
        checked_values = compiled.run(arrays, jax.random.PRNGKey(seed))
        try:
            compiled.checks.run(checked_values)
        except Exception as error:
            if num_rows > chunk_rows:
                error.add_note(
                    f"(checked in chunks of {chunk_rows} rows: row numbers in this message count "
                    f"from row {start} of the data)"
                )
            raise
    assert compiled is not None and compiled.traced
    return compiled.traced[-1]
