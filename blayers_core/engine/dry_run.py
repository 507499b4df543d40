"""Run a model once over every row, compiled, before training starts.

Layers and links check their input values through :func:`blayers_core.plugin.check_data` (index
ranges, supports, domains). Inside a training step such a check could only show up as NaN or a
silently clamped index, so ``fit`` and ``predict`` first run the model over every row, in chunks,
under ``seed`` and ``trace``, as one compiled program that returns the values the checks need;
the checks then run on the host, in the order the model met them. A bad input raises the layer's
own error, naming the argument, before any training step. The trace also tells which sites are
observed and which are deterministic.

The chunks, and the cache that keeps the program for the process (keyed by model, data layout,
constants and trace settings; it is also in JAX's persistent cache), are those of
:func:`~blayers_core.engine.chunks.evaluate_in_chunks`, so a second ``fit`` or ``predict`` of the
same shapes compiles nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs
import jax
from numpyro import handlers

from blayers_core.contract._typing import Array, ModelFn
from blayers_core.contract.checks import CheckCollector, collecting_checks
from blayers_core.engine.chunks import evaluate_in_chunks
from blayers_core.engine.compile_once import jit_once
from blayers_core.engine.data import row_count

#: Rows per chunk; bounded so the check's memory stays small for millions of rows. Every chunk has
#: this many rows (the last is topped up with rows from the start), so the program compiles for
#: one shape only.
DRY_RUN_CHUNK_ROWS = 1 << 18


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

    def __call__(self, operands: Any, key: Array, arrays: dict[str, Any]) -> Any:
        return self.run(arrays, key)


def _compile(model: ModelFn, static: dict[str, Any]) -> _CompiledDryRun:
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

    return _CompiledDryRun(run=jit_once(run), traced=traced, checks=checks)


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
    num_rows = row_count(rows)
    key = jax.random.PRNGKey(seed)
    compiled: _CompiledDryRun | None = None
    for chunk in evaluate_in_chunks(
        ("dry_run", model),
        lambda static: _compile(model, static),
        rows,
        constants,
        chunk_rows=chunk_rows,
        chunk_key=lambda _: key,
    ):
        compiled = chunk.program
        try:
            compiled.checks.run(chunk.value)
        except Exception as error:
            if num_rows > chunk_rows:
                error.add_note(
                    f"(checked in chunks of {chunk_rows} rows: row numbers in this message count "
                    f"from row {chunk.start} of the data)"
                )
            raise
    assert compiled is not None and compiled.traced
    return compiled.traced[-1]
