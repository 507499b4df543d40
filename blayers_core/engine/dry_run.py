"""Run a model once over every row, compiled, before training starts.

Layers and links check their input values through :func:`blayers_core.plugin.check_data` (index
ranges, supports, domains). Inside a training step such a check could only show up as NaN or a
silently clamped index, so ``fit`` and ``predict`` first run the model over every row, in chunks,
under ``seed`` and ``trace``, as one compiled program that returns the values the checks need;
the checks then run on the host, in the order the model met them. A bad input raises the layer's
own error, naming the argument, before any training step. The trace also tells which sites are
observed and which are deterministic.

When training will use minibatches (``batch_size`` given), the model is also traced abstractly on
one batch of rows, and a latent site whose shape follows the number of rows (a per-row latent,
which minibatches would silently share between rows) raises before training
(:mod:`~blayers_core.engine.local_latents`). :func:`check_minibatch_latents` does that check alone
after ``fit``'s dry run, from what that run's program recorded, without running it again.

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
from blayers_core.engine.chunks import cached_program, evaluate_in_chunks
from blayers_core.engine.compile_once import jit_once
from blayers_core.engine.data import row_count, split_constants
from blayers_core.engine.local_latents import (
    ShapeProbe,
    SiteShape,
    check_no_local_latents,
    latent_shapes,
    probe_shapes,
)

#: Rows per chunk; bounded so the check's memory stays small for millions of rows. Every chunk has
#: this many rows (the last is topped up with rows from the start), so the program compiles for
#: one shape only.
DRY_RUN_CHUNK_ROWS = 1 << 18


@attrs.frozen
class DryRunResult:
    """What one run of the model showed."""

    observed_sites: tuple[str, ...]
    deterministic_sites: tuple[str, ...]
    latent_sites: tuple[SiteShape, ...] = ()  # shapes on one chunk of rows


@attrs.define
class _CompiledDryRun:
    run: Callable[..., Any]
    traced: list[DryRunResult]  # what tracing ``run`` found (filled on its first call)
    checks: CheckCollector  # the checks ``run`` met when traced; it returns their values
    probes: dict[int, ShapeProbe] = attrs.field(factory=dict)  # latent shapes by row count

    def __call__(self, operands: Any, key: Array, arrays: dict[str, Any]) -> Any:
        return self.run(arrays, key)

    def probe(
        self,
        model: ModelFn,
        rows: Mapping[str, Any],
        constants: Mapping[str, Any],
        num_rows: int,
        key: Array,
    ) -> ShapeProbe:
        """The model's latent shapes on ``num_rows`` rows (traced abstractly once, then kept)."""
        if num_rows not in self.probes:
            arrays, static = split_constants(constants)
            self.probes[num_rows] = probe_shapes(model, rows, arrays, static, num_rows, key)
        return self.probes[num_rows]


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
                latent_shapes(model_trace),
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
    batch_size: int | None = None,
) -> DryRunResult:
    """Run ``model(**rows, **constants)`` over every row; report its observed sites.

    ``batch_size``: rows per training step when training on minibatches; a latent site whose
    shape follows the number of rows then raises (see
    :func:`~blayers_core.engine.local_latents.check_no_local_latents`).

    Raises whatever the model's layers and links raise on bad input (at tracing for shapes and
    dtypes, after the compiled program has run for values), and ``ValueError`` for a per-row
    latent under minibatches.
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
    if batch_size is not None and batch_size < num_rows:
        _check_batches(compiled, model, rows, constants, key, min(chunk_rows, num_rows), batch_size)
    return compiled.traced[-1]


def check_minibatch_latents(
    model: ModelFn,
    rows: Mapping[str, Any],
    constants: Mapping[str, Any],
    *,
    batch_size: int,
    seed: int = 0,
    chunk_rows: int = DRY_RUN_CHUNK_ROWS,
) -> None:
    """``dry_run(..., batch_size=batch_size)``'s per-row latent check, reusing the latent shapes
    the dry run of these arguments recorded (``fit`` has just run it) instead of running the
    model over every row again; without such a dry run in the cache, the whole dry run.

    Raises:
        ValueError: a per-row latent (see
            :func:`~blayers_core.engine.local_latents.check_no_local_latents`).
    """
    num_rows = row_count(rows)
    compiled = cached_program(("dry_run", model), rows, constants, chunk_rows=chunk_rows)
    if not isinstance(compiled, _CompiledDryRun) or not compiled.traced:
        dry_run(model, rows, constants, seed=seed, chunk_rows=chunk_rows, batch_size=batch_size)
        return
    if batch_size < num_rows:
        key = jax.random.PRNGKey(seed)
        _check_batches(compiled, model, rows, constants, key, min(chunk_rows, num_rows), batch_size)


def _check_batches(
    compiled: _CompiledDryRun,
    model: ModelFn,
    rows: Mapping[str, Any],
    constants: Mapping[str, Any],
    key: Array,
    chunk_rows: int,
    batch_size: int,
) -> None:
    """Compare the latent shapes on a chunk of rows (or on every row, when the chunk is one
    batch) with those on one batch; raise for a latent that follows the number of rows."""
    num_rows = row_count(rows)
    whole = ShapeProbe(chunk_rows, compiled.traced[-1].latent_sites)
    if chunk_rows == batch_size:  # more rows than a dry-run chunk, in batches of one chunk
        whole = compiled.probe(model, rows, constants, num_rows, key)
    batch = compiled.probe(model, rows, constants, batch_size, key)
    check_no_local_latents(whole, batch, num_rows)
