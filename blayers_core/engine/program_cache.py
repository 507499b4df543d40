"""Process-wide caches of compiled programs, and the keys they are looked up by.

A compiled program fixes everything its Python code read while JAX traced it. A cache key must
therefore hold all of it:

* what is computed: the model, the SVI or the site, given by the caller;
* the layout of the array arguments: names, shapes and dtypes (:func:`data_signature`), not the
  values, so new data of the same shapes reuse the program;
* the static constants, by value (:func:`static_key`);
* the context settings the model reads while traced (:func:`trace_settings`): today the
  population-code flag of :func:`~blayers_core.contract.population.allow_population_codes`, which
  index layers read to decide whether the code ``-1`` is the population level or out of range.

:class:`ProgramCache` adds the trace settings to every key itself, so no cache can forget them: a
program traced inside ``allow_population_codes()`` never serves a call outside it, nor the other
way round. A new context setting read while tracing is added to :func:`trace_settings`, once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Generic, TypeVar

import jax.numpy as jnp
import numpy as np

from blayers_core.contract.population import population_codes_allowed

T = TypeVar("T")


def trace_settings() -> tuple[tuple[str, Any], ...]:
    """The context settings a model reads while traced, as they are now."""
    return (("population_codes", population_codes_allowed()),)


def data_signature(arrays: Mapping[str, Any]) -> tuple[tuple[str, tuple[int, ...], str], ...]:
    """Names, shapes and dtypes (as JAX will see them; no copy is made): what a compiled program
    depends on, not the values."""
    return tuple(
        sorted((k, tuple(np.shape(v)), str(jnp.result_type(v))) for k, v in arrays.items())
    )


def static_key(values: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """A hashable key for static constants: by type and value when hashable, 0-d arrays by dtype
    and value, anything else by identity (safe while the cached program, which holds the value,
    keeps that identity from being reused)."""
    items: list[tuple[str, Any]] = []
    for name, value in sorted(values.items()):
        if isinstance(value, np.ndarray) and value.ndim == 0:
            items.append((name, ("array", str(value.dtype), value.item())))
            continue
        try:
            hash(value)
            items.append((name, (type(value).__qualname__, value)))
        except TypeError:
            items.append((name, ("id", id(value))))
    return tuple(items)


class ProgramCache(Generic[T]):
    """Programs by key, the least recently used dropped beyond ``max_size``.

    :meth:`get` appends :func:`trace_settings` to every key.
    """

    def __init__(self, max_size: int) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, got {max_size}")
        self.max_size = max_size
        self._programs: OrderedDict[Hashable, T] = OrderedDict()

    def get(self, key: Hashable, build: Callable[[], T]) -> T:
        """The program for ``key`` under the current trace settings, built on a miss."""
        full_key = (key, trace_settings())
        program = self._programs.get(full_key)
        if program is None:
            program = build()
            self._programs[full_key] = program
            while len(self._programs) > self.max_size:
                self._programs.popitem(last=False)
        else:
            self._programs.move_to_end(full_key)
        return program

    def find(self, key: Hashable) -> T | None:
        """The program for ``key`` under the current trace settings, or ``None``; builds nothing."""
        return self._programs.get((key, trace_settings()))

    def clear(self) -> None:
        """Forget every program (their compiled code is freed with them)."""
        self._programs.clear()

    def __len__(self) -> int:
        return len(self._programs)
