"""The checks of an optimizer factory: ``factory(learning_rate, **config)`` is an optax
transformation (``init``, ``update``) that minimises."""

from __future__ import annotations

from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np

from blayers_core.testing._candidate import Candidate
from blayers_core.testing._docs import require_docstring

#: The learning rate optimizers are built with.
LEARNING_RATE = 0.05
#: Steps of the descent on the quadratic.
STEPS = 20
#: The final loss must be below this fraction of the first.
DECREASE = 0.9


def _params() -> dict[str, jax.Array]:
    return {"w": jnp.asarray([1.0, -2.0]), "b": jnp.asarray(0.5)}


def _quadratic(params: Any) -> jax.Array:
    return sum(jnp.sum(p**2) for p in jax.tree_util.tree_leaves(params))  # type: ignore[return-value]


def _transformation(candidate: Candidate) -> Any:
    built = candidate.build(LEARNING_RATE)
    missing = [m for m in ("init", "update") if not callable(getattr(built, m, None))]
    if missing:
        raise AssertionError(
            f"factory(learning_rate) built {built!r}, which lacks {', '.join(missing)}(); it "
            "must be an optax.GradientTransformation"
        )
    return built


def check_optimizer_builds_a_gradient_transformation(candidate: Candidate) -> None:
    """``factory(learning_rate)`` has ``init`` and ``update``."""
    _transformation(candidate)


def check_optimizer_updates_a_pytree(candidate: Candidate) -> None:
    """``update(grads, state, params)`` returns finite updates shaped like the parameters."""
    optimizer = _transformation(candidate)
    params = _params()
    state = optimizer.init(params)
    grads = jax.grad(_quadratic)(params)
    updates, _ = optimizer.update(grads, state, params)
    expected = jax.tree_util.tree_structure(params)
    if cast(Any, jax.tree_util.tree_structure(updates)) != expected:
        raise AssertionError(
            f"update returned updates with structure {jax.tree_util.tree_structure(updates)}, "
            f"not that of the parameters, {expected}"
        )
    for name, value in updates.items():
        if np.shape(value) != np.shape(params[name]) or not np.isfinite(value).all():
            raise AssertionError(
                f"update returned {value!r} for parameter {name!r} of shape "
                f"{np.shape(params[name])}; expected finite values of that shape"
            )


def check_optimizer_decreases_a_quadratic(candidate: Candidate) -> None:
    """A few jitted steps on ``sum(p**2)`` lower it by at least 10%."""
    optimizer = _transformation(candidate)

    @jax.jit
    def step(params: Any, state: Any) -> tuple[Any, Any]:
        grads = jax.grad(_quadratic)(params)
        updates, state = optimizer.update(grads, state, params)
        params = jax.tree_util.tree_map(lambda p, u: p + u, params, updates)
        return params, state

    params = _params()
    state = optimizer.init(params)
    start = float(_quadratic(params))
    for _ in range(STEPS):
        params, state = step(params, state)
    end = float(_quadratic(params))
    if not (np.isfinite(end) and end < DECREASE * start):
        raise AssertionError(
            f"{STEPS} steps at learning rate {LEARNING_RATE} took sum(p**2) from {start:.4g} to "
            f"{end:.4g}; an optimizer must lower it (apply updates as params + updates)"
        )


def check_optimizer_has_a_docstring(candidate: Candidate) -> None:
    """The factory has a docstring (its first line is the registry's description)."""
    require_docstring(candidate)
