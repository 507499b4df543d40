"""Fast initialisation of an SVI state: one compiled program instead of hundreds of eager ops.

``numpyro.infer.SVI.init`` runs the model and guide eagerly (finding valid initial values, building
the autoguide's prototype trace); on a CPU that is a few hundred tiny operations, each compiled on
first use: seconds before the first step. :func:`fast_init` runs the same ``svi.init`` under
``jax.jit`` instead. ``init`` also stores state on the guide (its prototype trace and initial
values) and on the SVI object (``constrain_fn``); under ``jit`` those would be tracers, so they are
returned from the compiled program as concrete arrays and put back in place. If anything of that
cannot be restored, it falls back to the eager ``svi.init`` on a reset guide, so the result is
always the state ``svi.init`` would give.

:func:`start_init` splits this in two so that the caller can work while XLA compiles: it traces
the initialisation (which tells the state's shapes), starts the compile on a background thread,
and returns; ``finish()`` waits for the compile and runs it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import attrs
import jax
from numpyro.distributions import Distribution
from numpyro.infer import autoguide
from numpyro.infer.svi import SVIState

from blayers_core.contract._typing import Array
from blayers_core.engine.compile_once import abstract, compile_ahead_traced, jit_once

#: Guides whose ``init`` state is known to carry out of ``jit`` intact (exact types, not
#: subclasses). Others (e.g. ``AutoLaplaceApproximation``, which keeps the model's arguments in a
#: closure) are initialised eagerly.
JIT_SAFE_GUIDES = (
    autoguide.AutoNormal,
    autoguide.AutoDiagonalNormal,
    autoguide.AutoMultivariateNormal,
    autoguide.AutoLowRankMultivariateNormal,
    autoguide.AutoDelta,
)


def _is_tracer(value: Any) -> bool:
    return isinstance(value, jax.core.Tracer)


def _stored_state(svi: Any) -> dict[str, Any]:
    """What ``svi.init`` leaves behind on the guide and the SVI object."""
    guide_vars = dict(vars(svi.guide)) if hasattr(svi.guide, "__dict__") else {}
    return {"guide": guide_vars, "constrain_fn": getattr(svi, "constrain_fn", None)}


def _restore(svi: Any, stored: dict[str, Any]) -> None:
    for name, value in stored["guide"].items():
        setattr(svi.guide, name, value)
    svi.constrain_fn = stored["constrain_fn"]


def _collect_tracers(tree: Any) -> list[Any]:
    found: list[Any] = []

    def keep(tracer: Any) -> Any:
        found.append(tracer)
        return tracer

    _map_tracers(tree, keep)
    return found


def _contains_tracer(tree: Any) -> bool:
    return bool(_collect_tracers(tree))


def _canonical(key: Any) -> tuple[str, str]:
    return type(key).__name__, repr(key)


def _map_tracers(obj: Any, fn: Any) -> Any:
    """``obj`` with every tracer ``t`` replaced by ``fn(t)``, in a fixed traversal order.

    Dicts are visited in a canonical key order but keep their own key order (``jax.tree_util``
    would sort plain dicts, and an autoguide's latent layout follows the order of its sites);
    lists and tuples keep theirs; NumPyro distributions are visited attribute by attribute, in
    name order, and copied; other pytrees are mapped leaf by leaf; anything else is kept as it is.
    """
    if _is_tracer(obj):
        return fn(obj)
    if isinstance(obj, dict):
        # Visit entries in a canonical order, so that the compiled program's outputs come in the
        # same order in every process (NumPyro fills some dicts by iterating over sets, whose
        # order follows the string-hash seed), and rebuild the dict in its own order.
        visited = {k: _map_tracers(obj[k], fn) for k in sorted(obj, key=_canonical)}
        mapped = {k: visited[k] for k in obj}
        if type(obj) is dict:
            return mapped
        rebuilt = type(obj)()
        rebuilt.update(mapped)
        return rebuilt
    if isinstance(obj, Distribution):
        # A NumPyro distribution flattens its parameters in an order that follows set iteration
        # (so the string-hash seed); visit its attributes by name instead.
        attributes = vars(obj)
        visited = {k: _map_tracers(attributes[k], fn) for k in sorted(attributes)}
        if all(visited[k] is attributes[k] for k in attributes):
            return obj
        clone = copy.copy(obj)
        for name, value in visited.items():
            if value is not attributes[name]:
                setattr(clone, name, value)
        return clone
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(_map_tracers(v, fn) for v in obj))
    if isinstance(obj, list | tuple):
        return type(obj)(_map_tracers(v, fn) for v in obj)
    leaves, treedef = jax.tree_util.tree_flatten(obj)
    if len(leaves) == 1 and leaves[0] is obj:
        return obj
    return jax.tree_util.tree_unflatten(treedef, [_map_tracers(v, fn) for v in leaves])


def eager_init(svi: Any, rng_key: Array, **kwargs: Any) -> SVIState:
    """``svi.init`` as NumPyro runs it, after resetting an autoguide's prototype."""
    if hasattr(svi.guide, "prototype_trace"):
        svi.guide.prototype_trace = None
    return svi.init(rng_key, **kwargs)


@attrs.frozen
class PendingInit:
    """An initialisation under way: :func:`start_init` traced it and started its compile.

    ``state_shapes`` is the abstract state (``jax.ShapeDtypeStruct`` leaves) the compiled
    initialisation will return, known before it has compiled, so that programs taking the state
    can be traced and compiled meanwhile; ``None`` when the state comes from the eager
    ``svi.init`` or the program was compiled by an earlier call.
    """

    state_shapes: Any
    finish: Callable[[], SVIState]  # waits for the compile, runs it, restores the guide's state


def fast_init(
    svi: Any,
    rng_key: Array,
    inputs: Any,
    make_arguments: Callable[[Any], dict[str, Any]],
    *,
    cache: dict[str, Any] | None = None,
    static_kwargs: dict[str, Any] | None = None,
) -> SVIState:
    """The state ``svi.init(rng_key, **make_arguments(inputs), **static_kwargs)``, in one compiled call.

    ``inputs`` is a pytree of arrays (traced); ``make_arguments`` turns it into the model's keyword
    arguments inside the compiled program (e.g. gathering the first minibatch), so building them
    costs no eager operations either. ``static_kwargs`` are other values (strings, numbers) fixed in
    the compiled program. ``cache`` (a dict owned by the caller, one per ``svi``,
    ``make_arguments`` and ``static_kwargs``) keeps the compiled program, so later calls with inputs
    of the same shapes compile nothing.
    """
    pending = start_init(
        svi, rng_key, inputs, make_arguments, cache=cache, static_kwargs=static_kwargs
    )
    return pending.finish()


def start_init(
    svi: Any,
    rng_key: Array,
    inputs: Any,
    make_arguments: Callable[[Any], dict[str, Any]],
    *,
    cache: dict[str, Any] | None = None,
    static_kwargs: dict[str, Any] | None = None,
) -> PendingInit:
    """:func:`fast_init` in two halves: trace and lower the initialisation here and start
    compiling it on a background thread (:func:`~blayers_core.engine.compile_once.compile_ahead`);
    ``finish()`` then waits for the compile and runs it. Between the two the caller may trace and
    compile programs that take the state (``state_shapes``) while XLA compiles this one."""
    static = dict(static_kwargs or {})

    def eager() -> SVIState:
        return eager_init(svi, rng_key, **make_arguments(inputs), **static)

    cache = {} if cache is None else cache
    if type(svi.guide) not in JIT_SAFE_GUIDES or cache.get("eager"):
        return PendingInit(None, eager)
    if "compiled" not in cache:

        def traced_init(key: Array, inputs: Any) -> Any:
            state = svi.init(key, **make_arguments(inputs), **static)
            stored = _stored_state(svi)
            traced = _collect_tracers(stored)
            cache["stored"] = stored
            return state, traced

        cache["compiled"] = jit_once(traced_init)
    compiled, shapes = cache["compiled"], None
    try:
        if "compiling" not in cache:  # the first call: trace here, compile on a thread
            traced = compiled.trace(rng_key, inputs)
            cache["compiling"] = compile_ahead_traced(traced)
            shapes = abstract(traced.out_avals[0])
    except Exception:  # tracing failed: NumPyro's eager init raises the error users expect
        return PendingInit(None, _fall_back(cache, eager))

    def finish() -> SVIState:
        try:
            cache["compiling"].result()
            state, concrete = compiled(rng_key, inputs)
            values = iter(concrete)
            stored = _map_tracers(cache["stored"], lambda _: next(values))
            prototype = stored["guide"].get("prototype_trace") or {}
            if any(site.get("type") == "deterministic" for site in prototype.values()):
                # NumPyro keeps deterministic values where they cannot be restored from outside.
                raise TypeError("deterministic sites")
            if next(values, None) is not None or _contains_tracer(stored):
                raise TypeError("guide state still holds tracers")
            _restore(svi, stored)
        except Exception:  # a guide whose state cannot be carried out of jit: do what NumPyro does
            return _fall_back(cache, eager)()
        return state  # type: ignore[no-any-return]

    return PendingInit(shapes, finish)


def _fall_back(cache: dict[str, Any], eager: Callable[[], SVIState]) -> Callable[[], SVIState]:
    """Mark ``cache``'s program as eager for good and return the eager initialisation."""
    cache.clear()
    cache["eager"] = True
    return eager
