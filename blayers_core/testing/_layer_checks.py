"""The checks of a layer: ``layer(name, *inputs, units=1)`` samples sites scoped ``name/...`` and
returns ``(n, units)``."""

from __future__ import annotations

import inspect
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from blayers_core.testing._candidate import Candidate
from blayers_core.testing._config import require_bad_config_rejected
from blayers_core.testing._docs import require_generative_model
from blayers_core.testing._examples import layer_inputs
from blayers_core.testing._fitting import (
    FIT_ROWS,
    PREDICT_ROWS,
    require_finite_predictions,
    short_fit,
)
from blayers_core.testing._harness import (
    close,
    differing_sites,
    expect_error,
    key,
    same_values,
    shapes,
    sites,
    traced,
)

#: The site name the checks call a layer under.
NAME = "probe"
#: Rows and units the output shape is checked for: each ``n`` once, each ``units`` more than once.
SHAPES = ((1, 2), (3, 1), (7, 2))


def _call(layer: Any, inputs: tuple[Any, ...], units: int = 1, name: str = NAME) -> Any:
    return layer(name, *inputs, units=units)


def check_layer_accepts_name_and_inputs(candidate: Candidate) -> None:
    """The built layer is callable as ``layer(name, *inputs, units=...)``."""
    layer = candidate.build()
    if not callable(layer):
        raise AssertionError(f"the factory built {layer!r}, which is not callable")
    inputs = layer_inputs(candidate, layer, 3)
    try:
        signature = inspect.signature(layer)
    except (TypeError, ValueError):
        return  # a builtin without a signature: the other checks call it
    try:
        signature.bind(NAME, *inputs, units=1)
    except TypeError as exc:
        raise AssertionError(
            f"__call__{signature} does not accept (name, {len(inputs)} input(s), units=1): {exc}"
        ) from None


def check_layer_scopes_its_sites(candidate: Candidate) -> None:
    """Every site is named ``{name}/...``; called under two names in one model, nothing clashes."""
    layer = candidate.build()
    inputs = layer_inputs(candidate, layer, 3)
    _, trace = traced(_call, key(), layer, inputs)
    leaked = [s for s in sites(trace) if not s.startswith(f"{NAME}/")]
    if leaked:
        raise AssertionError(
            f"layer({NAME!r}, ...) sampled sites outside '{NAME}/': {leaked}; open "
            f"numpyro.handlers.scope(prefix=name) around the layer's sites"
        )

    def twice() -> None:
        _call(layer, inputs, name="first")
        _call(layer, inputs, name="second")

    try:
        _, both = traced(twice, key())
    except Exception as exc:
        raise AssertionError(
            f"calling the layer under two names in one model raised {type(exc).__name__}: {exc}"
        ) from exc
    first = sorted(s.removeprefix("first/") for s in sites(both) if s.startswith("first/"))
    second = sorted(s.removeprefix("second/") for s in sites(both) if s.startswith("second/"))
    if first != second or len(first) + len(second) != len(sites(both)):
        raise AssertionError(
            f"under the names 'first' and 'second' the layer sampled {sorted(sites(both))}; "
            "each call should sample the same sites under its own name"
        )


def check_layer_output_shape(candidate: Candidate) -> None:
    """The output is a finite ``(n, units)`` array for ``(n, units)`` = (1, 2), (3, 1), (7, 2)."""
    layer = candidate.build()
    for n, units in SHAPES:
        inputs = layer_inputs(candidate, layer, n)
        out = jnp.asarray(numpyro.handlers.seed(_call, key())(layer, inputs, units))
        if tuple(out.shape) != (n, units):
            raise AssertionError(
                f"layer({NAME!r}, inputs of shapes {shapes(inputs)}, units={units}) returned "
                f"shape {tuple(out.shape)}, expected {(n, units)}"
            )
        if not np.isfinite(np.asarray(out)).all():
            raise AssertionError(
                f"layer({NAME!r}, inputs of shapes {shapes(inputs)}, units={units}) returned "
                "non-finite values"
            )


def check_layer_runs_under_jit(candidate: Candidate) -> None:
    """Under ``jax.jit`` the layer gives what it gives eagerly (same key)."""
    layer = candidate.build()
    inputs = layer_inputs(candidate, layer, 3)

    def run(rng_key: jax.Array, *arrays: Any) -> Any:
        return numpyro.handlers.seed(_call, rng_key)(layer, arrays, 2)

    eager = run(key(), *inputs)
    try:
        compiled = jax.jit(run)(key(), *inputs)
    except Exception as exc:
        raise AssertionError(
            f"the layer fails under jax.jit: {type(exc).__name__}: {exc}. Layers run inside "
            "compiled programs: branch with jnp.where / lax.cond, not Python `if` on values"
        ) from exc
    if not close(eager, compiled):
        raise AssertionError("under jax.jit the layer returned other values than eagerly")


def check_layer_rejects_misshapen_inputs(candidate: Candidate) -> None:
    """A scalar input, or inputs whose row counts differ, raise instead of being broadcast."""
    layer = candidate.build()
    inputs = layer_inputs(candidate, layer, 3)
    for i, value in enumerate(inputs):
        scalar = np.asarray(np.reshape(value, -1)[0])
        changed = (*inputs[:i], scalar, *inputs[i + 1 :])
        expect_error(
            f"layer({NAME!r}, ...) with input {i} a scalar (shapes {shapes(changed)})",
            numpyro.handlers.seed(_call, key()),
            layer,
            changed,
        )
    if len(inputs) < 2:
        return
    for i, value in enumerate(inputs):
        one_row = (*inputs[:i], np.asarray(value)[:1], *inputs[i + 1 :])
        expect_error(
            f"layer({NAME!r}, ...) with inputs of different row counts (shapes {shapes(one_row)})",
            numpyro.handlers.seed(_call, key()),
            layer,
            one_row,
        )


def check_layer_is_deterministic(candidate: Candidate) -> None:
    """Two calls under the same key (on two builds) give the same sites and output."""
    inputs = layer_inputs(candidate, candidate.build(), 3)
    first, first_trace = traced(_call, key(), candidate.build(), inputs, 2)
    second, second_trace = traced(_call, key(), candidate.build(), inputs, 2)
    differing = differing_sites(first_trace, second_trace)
    if differing or not same_values(first, second):
        raise AssertionError(
            "two calls under the same PRNG key gave different "
            + (f"sites {differing}" if differing else "outputs")
            + "; draw randomness only through numpyro.sample (never NumPy's or Python's RNG)"
        )


def check_layer_fits_and_predicts(candidate: Candidate) -> None:
    """A short minibatch ``fit`` with a Gaussian likelihood, then ``predict`` on new rows."""
    layer = candidate.build()
    train = layer_inputs(candidate, layer, FIT_ROWS)
    new = layer_inputs(candidate, layer, PREDICT_ROWS, salt=1)
    names = [f"input_{i}" for i in range(len(train))]

    def model(y: Any = None, **inputs: Any) -> Any:
        mu = layer(NAME, *(inputs[name] for name in names))
        return numpyro.sample("obs", dist.Normal(mu[:, 0], 1.0), obs=y)

    y = np.random.default_rng(0).normal(size=FIT_ROWS).astype(np.float32)
    result = short_fit(model, {"y": y, **dict(zip(names, train, strict=True))})
    require_finite_predictions(result, dict(zip(names, new, strict=True)), PREDICT_ROWS)


def check_layer_documents_its_generative_model(candidate: Candidate) -> None:
    """The docstring states the generative model (see :mod:`blayers_core.testing`)."""
    require_generative_model(candidate)


def check_layer_rejects_bad_config(candidate: Candidate) -> None:
    """Bad constructor arguments raise, naming the argument (attrs classes; see the kit)."""
    require_bad_config_rejected(candidate)
