"""Checks on the values of a model's inputs, wherever the model runs.

A layer or link that must look at data values (codes within range, counts that are whole numbers,
a spline's domain) writes the check once, for NumPy arrays, and hands it to :func:`check_data`:

* called eagerly (outside ``jit``), the check runs at once;
* inside the compiled dry run that ``fit`` and ``predict`` make over every row before training
  (:mod:`blayers_core.dry_run`), it runs on the host when the compiled program runs, through
  ``jax.debug.callback``; the first exception it raises is re-raised by the dry run, unchanged;
* inside a compiled training step it is left out: the dry run has already checked those rows.

So a bad value raises the layer's own error, naming its argument, before any training step, and
the check costs nothing in the training loop.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import jax
import numpy as np


@attrs.define
class CheckCollector:
    """Where the host callbacks of one compiled dry run put the first error a check raises.

    The callbacks are bound to the collector when the program is traced; the owner of the
    compiled program keeps the collector with it and clears :attr:`error` before each run.
    """

    error: BaseException | None = None


_COLLECTOR: contextvars.ContextVar[CheckCollector | None] = contextvars.ContextVar(
    "blayers_check_collector", default=None
)


@contextlib.contextmanager
def collecting_checks(collector: CheckCollector) -> Iterator[CheckCollector]:
    """While tracing, turn :func:`check_data` calls on traced values into host callbacks that
    record the first error in ``collector``."""
    token = _COLLECTOR.set(collector)
    try:
        yield collector
    finally:
        _COLLECTOR.reset(token)


def _traced(value: Any) -> bool:
    return isinstance(value, jax.core.Tracer)


def check_data(check: Callable[..., None], *values: Any) -> None:
    """Run ``check(*values)`` on the concrete values of ``values`` (NumPy arrays; ``None`` stays).

    ``check`` raises (e.g. ``ValueError`` naming the argument) when the values are bad. It runs now
    when no value is traced, at the compiled dry run's execution when called while that program is
    traced, and never inside a compiled training step.
    """
    if not any(_traced(v) for v in values):
        check(*(None if v is None else np.asarray(v) for v in values))
        return
    collector = _COLLECTOR.get()
    if collector is None:
        return
    present = [i for i, v in enumerate(values) if v is not None]

    def on_host(*arrays: Any) -> None:
        if collector.error is not None:
            return
        concrete: list[Any] = [None] * len(values)
        for i, array in zip(present, arrays, strict=True):
            concrete[i] = np.asarray(array)
        try:
            check(*concrete)
        except Exception as error:  # re-raised by the dry run, after the program has run
            collector.error = error

    jax.debug.callback(on_host, *(values[i] for i in present))
