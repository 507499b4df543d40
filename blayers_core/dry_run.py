"""Run a model once, eagerly, on concrete data before anything is compiled.

Layers and links check their inputs when they see concrete arrays (not JAX tracers): index ranges,
shapes, dtypes. Inside a compiled training step those checks could only fail as NaN or a silently
clamped index, so ``fit`` and ``predict`` first run the model eagerly over every row, in chunks,
under ``seed`` and ``trace``. A bad input then raises a clear error naming the argument, before
tracing; the run also tells which sites are observed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np
from numpyro import handlers

from blayers_core._typing import ModelFn

#: Rows per eager chunk; bounded so the check's memory stays small for millions of rows. Every
#: chunk has this many rows (the last is topped up with rows from the start), so each eager
#: operation compiles for one shape only.
DRY_RUN_CHUNK_ROWS = 1 << 18


@attrs.frozen
class DryRunResult:
    """What one eager run of the model showed."""

    observed_sites: tuple[str, ...]
    deterministic_sites: tuple[str, ...]


def dry_run(
    model: ModelFn,
    rows: Mapping[str, Any],
    constants: Mapping[str, Any],
    *,
    seed: int = 0,
    chunk_rows: int = DRY_RUN_CHUNK_ROWS,
) -> DryRunResult:
    """Run ``model(**rows, **constants)`` eagerly over every row; report its observed sites.

    Raises whatever the model's layers and links raise on bad concrete input.
    """
    num_rows = len(next(iter(rows.values()))) if rows else 0
    observed: tuple[str, ...] = ()
    deterministic: tuple[str, ...] = ()
    for start in range(0, max(num_rows, 1), chunk_rows):
        if num_rows <= chunk_rows:
            chunk = dict(rows)
        else:
            positions = np.arange(start, start + chunk_rows)
            chunk = {
                k: np.take(np.asarray(v), positions, axis=0, mode="wrap") for k, v in rows.items()
            }
        model_trace = handlers.trace(handlers.seed(model, rng_seed=seed)).get_trace(
            **chunk, **constants
        )
        observed = tuple(
            name
            for name, site in model_trace.items()
            if site["type"] == "sample" and site["is_observed"] and not name.startswith("_")
        )
        deterministic = tuple(
            n for n, site in model_trace.items() if site["type"] == "deterministic"
        )
    return DryRunResult(observed, deterministic)
