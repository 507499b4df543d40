"""The checks of a link: ``link(mu, y=None)`` samples the observed site (one value per row) and
auxiliary sites scoped under its name; ``y=None`` draws a target."""

from __future__ import annotations

import inspect
from typing import Any

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer.util import log_density

from blayers_core.testing._candidate import Candidate
from blayers_core.testing._config import require_bad_config_rejected
from blayers_core.testing._docs import require_generative_model
from blayers_core.testing._examples import link_target, predictor
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
    sites,
    traced,
)

#: Rows of the predictor the checks call a link with.
ROWS = 3
#: Columns of the features the predictor is built from in the short fit.
FEATURES = 2


def _example(candidate: Candidate, n: int = ROWS) -> tuple[Any, np.ndarray, Any]:
    """The built link, a predictor for ``n`` rows and a target it accepts."""
    link = candidate.build()
    mu = predictor(link, n)
    return link, mu, link_target(candidate, link, mu)


def _observed_site(trace: Any) -> tuple[str, Any]:
    observed = [
        (name, msg)
        for name, msg in trace.items()
        if msg["type"] == "sample" and msg.get("is_observed")
    ]
    if len(observed) != 1:
        raise AssertionError(
            f"link(mu, y) observed {len(observed)} sites ({[n for n, _ in observed]}); it must "
            "observe exactly one, the target"
        )
    return observed[0]


def _log_density(link: Any, mu: Any, y: Any, rng_key: jax.Array) -> Any:
    value, _ = log_density(numpyro.handlers.seed(link, rng_key), (mu, y), {}, {})
    return value


def check_link_accepts_mu_and_y(candidate: Candidate) -> None:
    """The built link is callable as ``link(mu, y)`` and ``link(mu)``."""
    link = candidate.build()
    if not callable(link):
        raise AssertionError(f"the factory built {link!r}, which is not callable")
    try:
        signature = inspect.signature(link)
    except (TypeError, ValueError):
        return
    for args in ((None, None), (None,)):
        try:
            signature.bind(*args)
        except TypeError as exc:
            raise AssertionError(
                f"__call__{signature} does not accept {'(mu, y)' if len(args) == 2 else '(mu)'}: "
                f"{exc}"
            ) from None


def check_link_observed_site_has_a_row_dimension(candidate: Candidate) -> None:
    """``link(mu, y)`` observes one site whose leading batch dimension is the rows."""
    link, mu, y = _example(candidate)
    _, trace = traced(link, key(), mu, y)
    name, msg = _observed_site(trace)
    batch = tuple(msg["fn"].batch_shape)
    if batch[:1] != (ROWS,):
        raise AssertionError(
            f"the observed site {name!r} has batch shape {batch} for {ROWS} rows; its leading "
            "batch dimension must be the rows (a minibatch loss rescales by it), so don't "
            "declare the rows an event dimension (.to_event)"
        )


def check_link_draws_targets_when_y_is_none(candidate: Candidate) -> None:
    """``link(mu)`` draws and returns ``(n,)`` values at a sampled, unobserved site."""
    link = candidate.build()
    mu = predictor(link, ROWS)
    try:
        drawn, trace = traced(link, key(), mu)
    except Exception as exc:
        raise AssertionError(
            f"link(mu) with y=None raised {type(exc).__name__}: {exc}; with no target the link "
            "must draw one (predict relies on it)"
        ) from exc
    shape = tuple(np.shape(drawn))
    if shape != (ROWS,):
        raise AssertionError(
            f"link(mu) returned shape {shape} for a predictor of shape {mu.shape}; "
            f"expected the target's shape ({ROWS},)"
        )
    observed = [n for n, m in trace.items() if m["type"] == "sample" and m.get("is_observed")]
    if observed:
        raise AssertionError(f"link(mu) with y=None observed the sites {observed}")
    matches = [
        n
        for n, m in sites(trace).items()
        if m["type"] == "sample" and same_values(m["value"], drawn)
    ]
    if not matches:
        raise AssertionError("link(mu) returned values that no sample site of the link drew")


def check_link_scopes_its_auxiliary_sites(candidate: Candidate) -> None:
    """Every site other than the observed one is named ``{observed}/...``."""
    link, mu, y = _example(candidate)
    for args in ((mu, y), (mu,)):
        _, trace = traced(link, key(), *args)
        names = list(sites(trace))
        if len(args) == 2:
            observed, _ = _observed_site(trace)
        else:
            observed = _observed_site(traced(link, key(), mu, y)[1])[0]
        leaked = [n for n in names if n != observed and not n.startswith(f"{observed}/")]
        if leaked:
            call = "link(mu, y)" if len(args) == 2 else "link(mu)"
            raise AssertionError(
                f"{call} sampled sites outside '{observed}/': {leaked}; open "
                "numpyro.handlers.scope(prefix=<observed name>) around the auxiliary sites"
            )


def check_link_rejects_mismatched_shapes(candidate: Candidate) -> None:
    """A target and a predictor with different row counts raise instead of being broadcast."""
    link, mu, y = _example(candidate)
    y_arr = np.asarray(y)
    for what, args in (
        (f"a predictor of shape {mu.shape} and a target of shape {y_arr[:1].shape}", (mu, y[:1])),
        (f"a predictor of shape {mu[:1].shape} and a target of shape {y_arr.shape}", (mu[:1], y)),
    ):
        expect_error(
            f"link(mu, y) with {what}",
            numpyro.handlers.seed(link, key()),
            *args,
        )


def check_link_runs_under_jit(candidate: Candidate) -> None:
    """Under ``jax.jit`` the draws and the log density equal the eager ones (same key)."""
    link, mu, y = _example(candidate)

    def draw(rng_key: jax.Array, mu: Any) -> Any:
        return numpyro.handlers.seed(link, rng_key)(mu)

    def density(rng_key: jax.Array, mu: Any, y: Any) -> Any:
        return _log_density(link, mu, y, rng_key)

    for what, fn, args in (
        ("draws of link(mu)", draw, (key(), mu)),
        ("the log density of link(mu, y)", density, (key(), mu, y)),
    ):
        eager = fn(*args)
        try:
            compiled = jax.jit(fn)(*args)
        except Exception as exc:
            raise AssertionError(
                f"the {what} fail under jax.jit: {type(exc).__name__}: {exc}. Links run inside "
                "compiled programs: branch with jnp.where / lax.cond, not Python `if` on values"
            ) from exc
        if not close(eager, compiled):
            raise AssertionError(f"under jax.jit the {what} differ from the eager ones")


def check_link_is_deterministic(candidate: Candidate) -> None:
    """Two calls under the same key give the same draws and the same log density."""
    link, mu, y = _example(candidate)
    first, first_trace = traced(candidate.build(), key(), mu)
    second, second_trace = traced(candidate.build(), key(), mu)
    differing = differing_sites(first_trace, second_trace)
    if differing or not same_values(first, second):
        raise AssertionError(
            f"two calls of link(mu) under the same PRNG key drew different values (sites "
            f"{differing}); draw randomness only through numpyro.sample"
        )
    if not same_values(_log_density(link, mu, y, key()), _log_density(link, mu, y, key())):
        raise AssertionError("two evaluations of link(mu, y) gave different log densities")


def check_link_fits_and_predicts(candidate: Candidate) -> None:
    """A short minibatch ``fit`` of a linear predictor through the link, then ``predict``."""
    link = candidate.build()
    units = predictor(link, 1).shape[1]
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.0, 1.0, size=(FIT_ROWS, FEATURES)).astype(np.float32)
    x_new = rng.uniform(-1.0, 1.0, size=(PREDICT_ROWS, FEATURES)).astype(np.float32)
    y = link_target(candidate, link, predictor(link, FIT_ROWS))

    def model(x: Any, y: Any = None) -> Any:
        prior = dist.Normal(0.0, 0.3).expand([FEATURES, units]).to_event(2)
        beta = numpyro.sample("predictor/beta", prior)
        return link(x @ beta, y)

    result = short_fit(model, {"x": x, "y": y})
    require_finite_predictions(result, {"x": x_new}, PREDICT_ROWS)


def check_link_documents_its_generative_model(candidate: Candidate) -> None:
    """The docstring states the generative model (see :mod:`blayers_core.testing`)."""
    require_generative_model(candidate)


def check_link_rejects_bad_config(candidate: Candidate) -> None:
    """Bad constructor arguments raise, naming the argument (attrs classes; see the kit)."""
    require_bad_config_rejected(candidate)
