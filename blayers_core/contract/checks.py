"""Checks on the values of a model's inputs, wherever the model runs.

A layer or link that must look at data values (codes within range, counts that are whole numbers,
a spline's domain) writes the check once, for NumPy arrays, and hands it to :func:`check_data`:

* called eagerly (outside ``jit``), the check runs at once;
* inside the compiled dry run that ``fit`` and ``predict`` make over every row before training
  (:mod:`blayers_core.engine.dry_run`), the values it needs become outputs of that program, and the dry
  run calls the check on them, in the order the model met them, once the program has run; the
  first exception a check raises is re-raised unchanged;
* inside a compiled training step it is left out: the dry run has already checked those rows.

So a bad value raises the layer's own error, naming its argument, before any training step, and
the check costs nothing in the training loop.

The checked values leave the program as outputs rather than through host callbacks
(``jax.debug.callback``): a callback copies its operands with the same thread pool that runs the
program, and on a machine with a single CPU the two wait for each other forever.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs
import jax
import numpy as np


@attrs.frozen
class _RecordedCheck:
    check: Callable[..., None]
    #: For each argument of ``check``: its position among the program's checked outputs, or
    #: ``None`` for an argument that was ``None``.
    positions: tuple[int | None, ...]


@attrs.define
class CheckCollector:
    """The checks one compiled dry run met while it was traced, and the traced values they need.

    The traced program returns :attr:`values` as extra outputs; :meth:`run` calls every check on
    the concrete outputs. The owner keeps the collector with the compiled program, whose output
    order it describes.
    """

    checks: list[_RecordedCheck] = attrs.field(factory=list)
    values: list[Any] = attrs.field(factory=list)
    #: A value traced by the program itself (not inside ``vmap`` or ``scan``), set by the owner
    #: when tracing starts: checked values must come from the same trace to leave as outputs.
    probe: Any = None

    def clear(self) -> None:
        self.checks.clear()
        self.values.clear()

    def record(self, check: Callable[..., None], values: Sequence[Any]) -> None:
        positions: list[int | None] = []
        for value in values:
            if value is None:
                positions.append(None)
                continue
            self._require_program_level(check, value)
            positions.append(len(self.values))
            self.values.append(value)
        self.checks.append(_RecordedCheck(check, tuple(positions)))

    def _require_program_level(self, check: Callable[..., None], value: Any) -> None:
        program_trace = getattr(self.probe, "_trace", None)
        value_trace = getattr(value, "_trace", program_trace)
        if _traced(value) and program_trace is not None and value_trace is not program_trace:
            name = getattr(check, "__qualname__", repr(check))
            raise RuntimeError(
                f"check_data({name}, ...) was called on a value inside a JAX transformation "
                "(jax.vmap, lax.scan, lax.map, ...) while the dry run was traced; its values "
                "must be outputs of the dry run's program. Call check_data on the values the "
                "layer or link receives, before transforming them."
            )

    def run(self, outputs: Sequence[Any]) -> None:
        """Call every recorded check on ``outputs`` (the program's checked values), in order;
        the first exception propagates."""
        arrays = [np.asarray(value) for value in outputs]
        for recorded in self.checks:
            recorded.check(*(None if i is None else arrays[i] for i in recorded.positions))


_COLLECTOR: contextvars.ContextVar[CheckCollector | None] = contextvars.ContextVar(
    "blayers_check_collector", default=None
)


@contextlib.contextmanager
def collecting_checks(collector: CheckCollector) -> Iterator[CheckCollector]:
    """While tracing, record the :func:`check_data` calls on traced values in ``collector``."""
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
    when no value is traced, after the compiled dry run when called while that program is traced
    (on the rows of that program's chunk), and never inside a compiled training step. Call it on
    the values a layer receives, not inside ``vmap`` or ``lax.scan``: the values leave the dry run
    as outputs of its program.
    """
    if not any(_traced(v) for v in values):
        check(*(None if v is None else np.asarray(v) for v in values))
        return
    collector = _COLLECTOR.get()
    if collector is None:
        return
    collector.record(check, values)
