"""Compiling programs: the ones that run once fast to build, and compiling ahead on a thread.

XLA spends most of its compile time optimising the machine code. That pays off for the training
chunk, which runs thousands of steps, but not for the programs a fit runs once: the dry run over
the data, the initialisation and the posterior draws. :func:`jit_once` compiles those with the
backend's optimisation level at 0, which roughly halves their compile time on a CPU (the README
model: initialisation 2.8 s -> 1.4 s on a loaded 2-core machine) while their single run stays
well under a second.

:func:`compile_ahead` overlaps compiling with other work. It traces and lowers a jitted function
for abstract arguments on the calling thread, then hands XLA's compile (or the read from the
persistent cache) to a background thread; XLA releases the GIL while it compiles, so the calling
thread goes on (tracing the next program, initialising) meanwhile. The executable lands in the
jitted function's own cache: a later call with arguments of the same shapes, dtypes and weak types
runs it and compiles nothing. Tracing stays on the calling thread on purpose: NumPyro's handler
stack is a module global, and two threads tracing models at once would mix their handlers.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import jax

#: XLA options for a program that runs once (see the module docstring).
RUN_ONCE_COMPILER_OPTIONS: dict[str, Any] = {"xla_backend_optimization_level": 0}

#: Threads compiling ahead. Two: a fit compiles at most its initialisation, its training chunk
#: and its posterior draws at the same time, and the main thread does one of them.
_COMPILER = ThreadPoolExecutor(max_workers=2, thread_name_prefix="blayers-compile")


def jit_once(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``jax.jit(fn)`` compiled for build speed rather than run speed."""
    jit: Any = jax.jit
    return jit(fn, compiler_options=RUN_ONCE_COMPILER_OPTIONS)  # type: ignore[no-any-return]


def compile_ahead(jitted: Any, *args: Any) -> Future[Any]:
    """Trace and lower ``jitted`` for ``args`` here, compile it on a background thread.

    ``args`` may be arrays or ``jax.ShapeDtypeStruct``s (with the weak types of the real
    arguments, or the later call traces and compiles again). Returns the future of the compile:
    its ``result()`` re-raises what compiling raised; wait for it before calling ``jitted``, or
    the call compiles the same program a second time. Tracing errors raise here.
    """
    return compile_ahead_traced(jitted.trace(*args))


def compile_ahead_traced(traced: Any) -> Future[Any]:
    """:func:`compile_ahead` for a function already traced (``jitted.trace(...)``): lower it
    here, compile it on a background thread."""
    return _COMPILER.submit(traced.lower().compile)


def abstract(tree: Any) -> Any:
    """``tree`` with every array (or abstract value, e.g. from ``Traced.out_avals``) replaced by
    its ``jax.ShapeDtypeStruct``, weak type kept and no sharding, as a plain argument has."""

    def shape_of(leaf: Any) -> Any:
        aval = leaf if isinstance(leaf, jax.core.ShapedArray) else jax.typeof(leaf)
        struct: Any = jax.ShapeDtypeStruct
        return struct(aval.shape, aval.dtype, weak_type=aval.weak_type)

    return jax.tree_util.tree_map(shape_of, tree)
