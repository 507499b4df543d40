"""Index layers (intercept, embedding, random/fixed effects, random slopes, random walk, AR(1)).

Each is checked against a hand-written NumPyro model, a naive loop over rows, scipy where a closed
form exists, and (slow) recovery of simulated parameters with ``fit``. Shapes are tiny.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
import pytest
from helpers import assert_same_log_joint, site_summary, trace
from helpers import positive as _positive
from helpers import real as _real
from helpers import run_with as _run
from numpyro import handlers
from numpyro.infer import Predictive
from numpyro.infer.util import log_density
from scipy import stats

import blayers_core
from blayers_plugins import GaussianLink, gaussian_link_exp
from blayers_plugins.layers.index import (
    AR1Layer,
    EmbeddingLayer,
    FixedEffectsLayer,
    InterceptLayer,
    RandomEffectsLayer,
    RandomSlopesLayer,
    RandomWalkLayer,
    StationaryAR1,
    ar1_path,
)

N, C, D = 7, 4, 2


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _codes(seed: int = 0, n: int = N, c: int = C, fields: int | None = None) -> np.ndarray:
    shape = (n,) if fields is None else (n, fields)
    return _rng(seed).integers(0, c, size=shape)


def _x(seed: int = 0, n: int = N, d: int = D) -> np.ndarray:
    return _rng(seed).normal(size=(n, d)).astype(np.float32)


def _table_sum_naive(table: np.ndarray, codes: np.ndarray, offsets: list[int]) -> np.ndarray:
    """``out[n] = sum_f table[offset_f + code[n, f]]``, by loops."""
    codes = codes.reshape(codes.shape[0], -1)
    out = np.zeros((codes.shape[0], table.shape[1]))
    for n in range(codes.shape[0]):
        for f in range(codes.shape[1]):
            out[n] += table[offsets[f] + codes[n, f]]
    return out


# ---------------------------------------------------------------------------------- intercept
@pytest.mark.parametrize("units", [1, 3])
def test_intercept_log_joint_and_output(units):
    layer = InterceptLayer(coef_prior=dist.Normal(0.5, 2.0))
    x = _x()
    params = {"b0/beta": _real(_rng(1), (units,))}

    def model(x):
        return layer("b0", x, units=units)

    def reference(x):
        numpyro.sample("b0/beta", dist.Normal(0.5, 2.0).expand([units]).to_event(1))

    lp = assert_same_log_joint(model, reference, params, x)
    np.testing.assert_allclose(lp, stats.norm.logpdf(params["b0/beta"], 0.5, 2.0).sum(), rtol=1e-5)
    out = _run(lambda: model(x), data=params)
    expected = np.array([[params["b0/beta"][c] for c in range(units)] for _ in range(N)])
    assert out.shape == (N, units)
    np.testing.assert_allclose(out, expected)


def test_intercept_only_uses_the_row_count_of_x():
    params = {"b0/beta": np.array([1.5], np.float32)}
    for x in (np.zeros(N), np.ones((N, 5), bool), np.array(["a"] * N), _codes(), _x()[:, :1]):
        out = _run(lambda x=x: InterceptLayer()("b0", x), data=params)
        np.testing.assert_allclose(out, np.full((N, 1), 1.5))
    with pytest.raises(ValueError, match=r"x gives the number of rows.*scalar"):
        _run(lambda: InterceptLayer()("b0", 3.0))
    with pytest.raises(ValueError, match=r"coef_prior.*real line"):
        InterceptLayer(coef_prior=dist.HalfNormal(1.0))


# ------------------------------------------------------------------ embedding / effects tables
@pytest.mark.parametrize(
    ("num_categories", "fields", "offsets"),
    [(C, None, [0]), (C, 3, [0, 0, 0]), ((3, 5), 2, [0, 3])],
    ids=["one_field", "multi_hot_shared", "two_fields"],
)
@pytest.mark.parametrize("units", [1, 3])
def test_embedding_log_joint_and_output(num_categories, fields, offsets, units):
    layer = EmbeddingLayer(num_categories=num_categories)
    rows = int(np.sum(num_categories))
    if isinstance(num_categories, tuple):
        codes = np.stack([_codes(2 + j, c=c) for j, c in enumerate(num_categories)], axis=1)
    else:
        codes = _codes(2, fields=fields)
    rng = _rng(3)
    params = {"e/scale": _positive(rng, (units,)), "e/theta": _real(rng, (rows, units))}

    def model(codes):
        return layer("e", codes, units=units)

    def reference(codes):
        scale = numpyro.sample("e/scale", dist.HalfNormal(1.0).expand([units]).to_event(1))
        numpyro.sample("e/theta", dist.Normal(0.0, scale).expand([rows, units]).to_event(2))

    assert_same_log_joint(model, reference, params, codes)
    out = _run(lambda: model(codes), data=params)
    assert out.shape == (N, units)
    np.testing.assert_allclose(
        out, _table_sum_naive(params["e/theta"], codes, offsets), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("units", [1, 2])
def test_random_effects_centred_log_joint_matches_scipy_and_numpyro(units):
    layer = RandomEffectsLayer(num_categories=C, scale_prior=dist.Gamma(2.0, 2.0))
    codes = _codes(4)
    rng = _rng(5)
    params = {"re/scale": _positive(rng, (units,)), "re/theta": _real(rng, (C, units))}

    def model(codes):
        return layer("re", codes, units=units)

    def reference(codes):
        scale = numpyro.sample("re/scale", dist.Gamma(2.0, 2.0).expand([units]).to_event(1))
        numpyro.sample("re/theta", dist.Normal(0.0, scale).expand([C, units]).to_event(2))

    lp = assert_same_log_joint(model, reference, params, codes)
    scale, theta = params["re/scale"].astype(float), params["re/theta"].astype(float)
    expected = (
        stats.gamma.logpdf(scale, 2.0, scale=0.5).sum() + stats.norm.logpdf(theta, 0, scale).sum()
    )
    np.testing.assert_allclose(lp, expected, rtol=1e-5)
    out = _run(lambda: model(codes), data=params)
    np.testing.assert_allclose(out, _table_sum_naive(theta, codes, [0]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("units", [1, 2])
def test_random_effects_noncentred_log_joint_and_theta(units):
    layer = RandomEffectsLayer(num_categories=(2, 3), noncentered=True)
    codes = np.stack([_codes(6, c=2), _codes(7, c=3)], axis=1)
    rng = _rng(8)
    params = {"re/scale": _positive(rng, (units,)), "re/z": _real(rng, (5, units))}

    def model(codes):
        return layer("re", codes, units=units)

    def reference(codes):
        numpyro.sample("re/scale", dist.HalfNormal(1.0).expand([units]).to_event(1))
        numpyro.sample("re/z", dist.Normal(0.0, 1.0).expand([5, units]).to_event(2))

    assert_same_log_joint(model, reference, params, codes)
    tr = handlers.trace(handlers.substitute(handlers.seed(model, 0), data=params)).get_trace(codes)
    assert tr["re/theta"]["type"] == "deterministic"
    theta = np.asarray(tr["re/theta"]["value"])
    np.testing.assert_allclose(theta, params["re/scale"] * params["re/z"], rtol=1e-6)
    out = _run(lambda: model(codes), data=params)
    np.testing.assert_allclose(out, _table_sum_naive(theta, codes, [0, 2]), rtol=1e-5, atol=1e-6)


def test_random_effects_centred_and_noncentred_imply_the_same_prior():
    codes = _codes(9)

    def draws(noncentered: bool) -> np.ndarray:
        layer = RandomEffectsLayer(num_categories=C, noncentered=noncentered)
        predictive = Predictive(lambda: layer("re", codes), num_samples=4000)
        samples = predictive(jax.random.PRNGKey(int(noncentered)))
        return np.asarray(samples["re/theta"])  # (4000, C, 1)

    centred, noncentred = draws(False), draws(True)
    assert centred.shape == noncentred.shape == (4000, C, 1)
    for theta in (centred, noncentred):  # theta = scale * z: mean 0, variance E[scale^2] = 1
        np.testing.assert_allclose(theta.mean(), 0.0, atol=0.05)
        np.testing.assert_allclose(theta.var(), 1.0, atol=0.1)
    # Same marginal law (a heavy-tailed scale mixture), and same dependence between levels.
    assert stats.ks_2samp(centred[:, 0, 0], noncentred[:, 0, 0]).pvalue > 1e-3
    np.testing.assert_allclose(
        np.mean(np.abs(centred[:, 0, 0] * centred[:, 1, 0])),
        np.mean(np.abs(noncentred[:, 0, 0] * noncentred[:, 1, 0])),
        rtol=0.15,
    )


@pytest.mark.parametrize("units", [1, 2])
def test_random_slopes_log_joint_and_output(units):
    layer = RandomSlopesLayer(num_categories=C)
    x, groups = _x(10), _codes(11)
    rng = _rng(12)
    params = {"rs/scale": _positive(rng, (D, units)), "rs/beta": _real(rng, (C, D, units))}

    def model(x, groups):
        return layer("rs", x, groups, units=units)

    def reference(x, groups):
        scale = numpyro.sample("rs/scale", dist.HalfNormal(1.0).expand([D, units]).to_event(2))
        numpyro.sample("rs/beta", dist.Normal(0.0, scale).expand([C, D, units]).to_event(3))

    assert_same_log_joint(model, reference, params, x, groups)
    out = _run(lambda: model(x, groups), data=params)
    beta = params["rs/beta"]
    expected = np.zeros((N, units))
    for n in range(N):
        for u in range(units):
            for j in range(D):
                expected[n, u] += x[n, j] * beta[groups[n], j, u]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    # A column of group codes is the same as a vector of them.
    np.testing.assert_allclose(_run(lambda: model(x, groups[:, None]), data=params), out)


@pytest.mark.parametrize(
    "prior", [dist.Normal(0.0, 0.7), dist.Laplace(0.2, 0.3)], ids=["normal", "laplace"]
)
def test_fixed_effects_log_joint_and_output(prior):
    layer = FixedEffectsLayer(num_categories=C, coef_prior=prior)
    codes = _codes(13, fields=2)
    params = {"fe/theta": _real(_rng(14), (C, 2))}

    def model(codes):
        return layer("fe", codes, units=2)

    def reference(codes):
        numpyro.sample("fe/theta", prior.expand([C, 2]).to_event(2))

    lp = assert_same_log_joint(model, reference, params, codes)
    theta = params["fe/theta"].astype(float)
    if isinstance(prior, dist.Normal):
        expected = stats.norm.logpdf(theta, 0.0, 0.7).sum()
    else:
        expected = stats.laplace.logpdf(theta, 0.2, 0.3).sum()
    np.testing.assert_allclose(lp, expected, rtol=1e-5)
    out = _run(lambda: model(codes), data=params)
    np.testing.assert_allclose(out, _table_sum_naive(theta, codes, [0, 0]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("units", [1, 2])
def test_random_walk_log_joint_and_path(units):
    layer = RandomWalkLayer(num_categories=C)
    codes = _codes(15)
    rng = _rng(16)
    params = {"rw/scale": _positive(rng, (units,)), "rw/increments": _real(rng, (C, units))}

    def model(codes):
        return layer("rw", codes, units=units)

    def reference(codes):
        scale = numpyro.sample("rw/scale", dist.HalfNormal(1.0).expand([units]).to_event(1))
        numpyro.sample("rw/increments", dist.Normal(0.0, scale).expand([C, units]).to_event(2))

    assert_same_log_joint(model, reference, params, codes)
    # The walk's density is the increments' density: theta_t | theta_{t-1} ~ N(theta_{t-1}, s).
    inc, scale = params["rw/increments"].astype(float), params["rw/scale"].astype(float)
    path = np.zeros((C, units))
    for t in range(C):
        path[t] = inc[t] + (path[t - 1] if t else 0.0)
    lp, _ = log_density(model, (codes,), {}, params)
    expected = (
        stats.halfnorm.logpdf(scale).sum()
        + stats.norm.logpdf(path[0], 0.0, scale).sum()
        + sum(stats.norm.logpdf(path[t], path[t - 1], scale).sum() for t in range(1, C))
    )
    np.testing.assert_allclose(float(lp), expected, rtol=1e-5)
    tr = handlers.trace(handlers.substitute(handlers.seed(model, 0), data=params)).get_trace(codes)
    np.testing.assert_allclose(tr["rw/theta"]["value"], path, rtol=1e-5, atol=1e-6)
    out = _run(lambda: model(codes), data=params)
    np.testing.assert_allclose(out, path[codes], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------- AR(1)
def _ar1_covariance(rho: float, sigma: float, steps: int) -> np.ndarray:
    lags = np.abs(np.subtract.outer(np.arange(steps), np.arange(steps)))
    return sigma**2 / (1.0 - rho**2) * rho**lags


def _ar1_precision(rho, sigma, steps: int):
    """The tridiagonal AR(1) precision matrix, per unit: ``(u, T, T)``."""
    inner = jnp.zeros(steps).at[1:-1].set(1.0)
    rho, sigma = jnp.asarray(rho)[:, None, None], jnp.asarray(sigma)[:, None, None]
    main = jnp.eye(steps)[None] + rho**2 * jnp.diag(inner)[None]  # 1, 1+rho^2, ..., 1+rho^2, 1
    off = jnp.diag(jnp.ones(steps - 1), 1) + jnp.diag(jnp.ones(steps - 1), -1)
    return (main - rho * off[None]) / sigma**2


def test_ar1_centred_log_joint_matches_tridiagonal_precision_and_scipy():
    steps, units = 5, 2
    layer = AR1Layer(num_categories=steps, rho_concentration=1.5)
    codes = _codes(17, c=steps)
    rng = _rng(18)
    params = {
        "ar/rho_raw": rng.uniform(0.1, 0.9, size=(units,)).astype(np.float32),
        "ar/sigma": _positive(rng, (units,)),
        "ar/theta": _real(rng, (steps, units)),
    }

    def model(codes):
        return layer("ar", codes, units=units)

    def reference(codes):
        rho_raw = numpyro.sample("ar/rho_raw", dist.Beta(1.5, 1.5).expand([units]).to_event(1))
        sigma = numpyro.sample("ar/sigma", dist.HalfNormal(1.0).expand([units]).to_event(1))
        theta = numpyro.sample(
            "ar/theta", dist.ImproperUniform(dist.constraints.real_matrix, (), (steps, units))
        )
        precision = _ar1_precision(2.0 * rho_raw - 1.0, sigma, steps)
        mvn = dist.MultivariateNormal(jnp.zeros(steps), precision_matrix=precision)
        numpyro.factor("ar1", jnp.sum(mvn.log_prob(theta.T)))

    lp = assert_same_log_joint(model, reference, params, codes)
    rho = 2.0 * params["ar/rho_raw"].astype(float) - 1.0
    sigma, theta = params["ar/sigma"].astype(float), params["ar/theta"].astype(float)
    expected = sum(
        stats.beta.logpdf(params["ar/rho_raw"][u], 1.5, 1.5)
        + stats.halfnorm.logpdf(sigma[u])
        + stats.multivariate_normal.logpdf(
            theta[:, u], np.zeros(steps), _ar1_covariance(rho[u], sigma[u], steps)
        )
        for u in range(units)
    )
    np.testing.assert_allclose(lp, expected, rtol=1e-5)
    tr = handlers.trace(handlers.substitute(handlers.seed(model, 0), data=params)).get_trace(codes)
    np.testing.assert_allclose(tr["ar/rho"]["value"], rho, rtol=1e-5)
    out = _run(lambda: model(codes), data=params)
    np.testing.assert_allclose(out, theta[codes], rtol=1e-6)


@pytest.mark.parametrize("units", [1, 2])
def test_ar1_noncentred_log_joint_and_recursion(units):
    steps = 6
    layer = AR1Layer(num_categories=steps, noncentered=True)
    codes = _codes(19, c=steps)
    rng = _rng(20)
    params = {
        "ar/rho_raw": rng.uniform(0.1, 0.9, size=(units,)).astype(np.float32),
        "ar/sigma": _positive(rng, (units,)),
        "ar/eps": _real(rng, (steps, units)),
    }

    def model(codes):
        return layer("ar", codes, units=units)

    def reference(codes):
        numpyro.sample("ar/rho_raw", dist.Beta(2.0, 2.0).expand([units]).to_event(1))
        numpyro.sample("ar/sigma", dist.HalfNormal(1.0).expand([units]).to_event(1))
        numpyro.sample("ar/eps", dist.Normal(0.0, 1.0).expand([steps, units]).to_event(2))

    assert_same_log_joint(model, reference, params, codes)
    rho = 2.0 * params["ar/rho_raw"].astype(float) - 1.0
    sigma, eps = params["ar/sigma"].astype(float), params["ar/eps"].astype(float)
    theta = np.zeros((steps, units))
    for u in range(units):
        theta[0, u] = sigma[u] / np.sqrt(1.0 - rho[u] ** 2) * eps[0, u]
        for t in range(1, steps):
            theta[t, u] = rho[u] * theta[t - 1, u] + sigma[u] * eps[t, u]
    tr = handlers.trace(handlers.substitute(handlers.seed(model, 0), data=params)).get_trace(codes)
    assert tr["ar/theta"]["type"] == "deterministic"
    np.testing.assert_allclose(tr["ar/theta"]["value"], theta, rtol=1e-5, atol=1e-6)
    out = _run(lambda: model(codes), data=params)
    np.testing.assert_allclose(out, theta[codes], rtol=1e-5, atol=1e-6)


def test_stationary_ar1_draws_have_the_ar1_covariance():
    rho, sigma, steps = np.array([0.7, -0.5]), np.array([0.5, 1.2]), 4
    d = StationaryAR1(rho, sigma, steps)
    assert d.event_shape == (steps, 2) and d.batch_shape == ()
    draws = np.asarray(d.sample(jax.random.PRNGKey(0), (20000,)))
    assert draws.shape == (20000, steps, 2)
    for u in range(2):
        cov = _ar1_covariance(rho[u], sigma[u], steps)
        np.testing.assert_allclose(np.cov(draws[:, :, u].T), cov, atol=0.06 * cov[0, 0])
    # The centred and the non-centred layers have the same prior on theta.
    codes = np.arange(steps)
    for noncentered in (False, True):
        layer = AR1Layer(num_categories=steps, noncentered=noncentered)
        fixed = {"ar/rho_raw": np.float32([0.85]), "ar/sigma": np.float32([0.5])}
        predictive = Predictive(
            handlers.substitute(lambda layer=layer: layer("ar", codes), data=fixed),
            num_samples=20000,
        )
        theta = np.asarray(predictive(jax.random.PRNGKey(1))["ar/theta"])[:, :, 0]
        cov = _ar1_covariance(0.7, 0.5, steps)
        np.testing.assert_allclose(np.cov(theta.T), cov, atol=0.06 * cov[0, 0])
    # Exact log density against scipy with a batch dimension.
    batched = StationaryAR1(np.array([[0.3], [0.6]]), np.array([[1.0], [0.4]]), 3)
    assert batched.batch_shape == (2,) and batched.event_shape == (3, 1)
    value = _real(_rng(21), (2, 3, 1))
    expected = [
        stats.multivariate_normal.logpdf(value[b, :, 0], np.zeros(3), _ar1_covariance(r, s, 3))
        for b, (r, s) in enumerate([(0.3, 1.0), (0.6, 0.4)])
    ]
    np.testing.assert_allclose(batched.log_prob(value), expected, rtol=1e-5)


def test_ar1_path_of_one_step_is_the_stationary_draw():
    out = ar1_path(jnp.array([0.6]), jnp.array([0.8]), jnp.array([[2.0]]))
    np.testing.assert_allclose(out, [[0.8 / np.sqrt(1 - 0.36) * 2.0]], rtol=1e-6)


# ------------------------------------------------------------------------ shapes and sites
def _factories():
    return {
        "intercept": (lambda: InterceptLayer(), lambda: (_x(),)),
        "embedding": (lambda: EmbeddingLayer(num_categories=C), lambda: (_codes(),)),
        "random_effects": (lambda: RandomEffectsLayer(num_categories=C), lambda: (_codes(),)),
        "random_effects_nc": (
            lambda: RandomEffectsLayer(num_categories=C, noncentered=True),
            lambda: (_codes(),),
        ),
        "random_slopes": (
            lambda: RandomSlopesLayer(num_categories=C),
            lambda: (_x(), _codes()),
        ),
        "fixed_effects": (lambda: FixedEffectsLayer(num_categories=C), lambda: (_codes(),)),
        "random_walk": (lambda: RandomWalkLayer(num_categories=C), lambda: (_codes(),)),
        "ar1": (lambda: AR1Layer(num_categories=C), lambda: (_codes(),)),
        "ar1_nc": (lambda: AR1Layer(num_categories=C, noncentered=True), lambda: (_codes(),)),
    }


SITES = {
    "intercept": {"l/beta"},
    "embedding": {"l/scale", "l/theta"},
    "random_effects": {"l/scale", "l/theta"},
    "random_effects_nc": {"l/scale", "l/z", "l/theta"},
    "random_slopes": {"l/scale", "l/beta"},
    "fixed_effects": {"l/theta"},
    "random_walk": {"l/scale", "l/increments", "l/theta"},
    "ar1": {"l/rho_raw", "l/rho", "l/sigma", "l/theta"},
    "ar1_nc": {"l/rho_raw", "l/rho", "l/sigma", "l/eps", "l/theta"},
}


@pytest.mark.parametrize("units", [1, 3])
@pytest.mark.parametrize("key", list(SITES))
def test_output_shape_and_scoped_sites(key, units):
    make, inputs = _factories()[key]
    layer = make()
    tr = trace(lambda: layer("l", *inputs(), units=units))
    assert set(tr) == SITES[key]
    out = _run(lambda: layer("l", *inputs(), units=units, activation=jnp.tanh))
    assert out.shape == (N, units)
    assert jnp.all(jnp.isfinite(out)) and jnp.all(jnp.abs(out) <= 1.0)
    for name, site in tr.items():  # every parameter site is one event: no stray batch dims
        if site["type"] == "sample":
            assert site["fn"].batch_shape == (), name


def test_index_layers_run_under_jit_with_traced_codes():
    layer = RandomSlopesLayer(num_categories=C)
    fn = jax.jit(lambda x, g: handlers.seed(lambda: layer("rs", x, g, units=2), 0)())
    out = fn(_x(), _codes())
    eager = _run(lambda: layer("rs", _x(), _codes(), units=2))
    np.testing.assert_allclose(out, eager, rtol=1e-5, atol=1e-6)


def test_registry_builds_the_index_layers():
    expected = {
        "intercept": InterceptLayer,
        "embedding": EmbeddingLayer,
        "random_effects": RandomEffectsLayer,
        "random_slopes": RandomSlopesLayer,
        "fixed_effects": FixedEffectsLayer,
        "random_walk": RandomWalkLayer,
        "ar1": AR1Layer,
    }
    listed = {c.name: c.description for c in blayers_core.components("layer")}
    for name, cls in expected.items():
        config = {} if name == "intercept" else {"num_categories": 3}
        built = blayers_core.layer(name, **config)
        assert type(built) is cls
        assert listed[name] == cls.__doc__.strip().splitlines()[0]
    with pytest.raises(ValueError, match="num_categories"):
        blayers_core.layer("random_effects", num_categories=0)


# ---------------------------------------------------------------------------- bad input
INDEX_KEYS = [k for k in SITES if k != "intercept"]


def _call_with_codes(key: str, codes) -> None:
    make, _ = _factories()[key]
    layer = make()
    inputs = (_x(n=len(codes)), codes) if key == "random_slopes" else (codes,)
    _run(lambda: layer("l", *inputs))


@pytest.mark.parametrize("bad", [C, -1], ids=["C", "minus_one"])
@pytest.mark.parametrize("key", INDEX_KEYS)
def test_out_of_range_codes_raise_before_anything_is_sampled(key, bad):
    codes = _codes()
    codes[3] = bad
    argument = "groups" if key == "random_slopes" else "x"
    with pytest.raises(ValueError, match=rf"{argument} has 1 codes outside.*row 3 field 0"):
        _call_with_codes(key, codes)


@pytest.mark.parametrize("key", ["random_effects", "random_walk", "random_slopes"])
def test_non_integer_codes_are_rejected(key):
    with pytest.raises(TypeError, match="integer category codes"):
        _call_with_codes(key, _codes().astype(np.float32))
    with pytest.raises(TypeError, match="integer category codes"):
        _call_with_codes(key, _codes() > 1)


@pytest.mark.parametrize("key", ["random_slopes", "random_walk", "ar1"])
def test_single_index_layers_reject_several_fields(key):
    argument = "groups" if key == "random_slopes" else "x"
    with pytest.raises(ValueError, match=rf"{argument} must be one column of codes.*got 2"):
        _call_with_codes(key, _codes(fields=2))
    cls = {"random_slopes": RandomSlopesLayer, "random_walk": RandomWalkLayer, "ar1": AR1Layer}
    with pytest.raises(ValueError, match=r"num_categories must be a single positive int"):
        cls[key](num_categories=(3, 4))


def test_field_count_must_match_num_categories():
    with pytest.raises(ValueError, match=r"num_categories gives 2 field sizes but x has 3"):
        _run(lambda: EmbeddingLayer(num_categories=(3, 4))("e", _codes(c=3, fields=3)))


@pytest.mark.parametrize("value", [0, -2, 1.5, True, (), (3, 0), "4", None])
@pytest.mark.parametrize(
    "cls",
    [EmbeddingLayer, RandomEffectsLayer, FixedEffectsLayer, RandomSlopesLayer, AR1Layer],
    ids=lambda c: c.__name__,
)
def test_num_categories_is_validated(cls, value):
    with pytest.raises(ValueError, match="num_categories must be a"):
        cls(num_categories=value)


def test_constructor_options_are_validated():
    with pytest.raises(ValueError, match=r"scale_prior.*positive reals"):
        RandomEffectsLayer(num_categories=3, scale_prior=dist.Normal(0.0, 1.0))
    with pytest.raises(ValueError, match=r"scale_prior.*positive reals"):
        RandomSlopesLayer(num_categories=3, scale_prior=dist.Normal(0.0, 1.0))
    with pytest.raises(ValueError, match=r"sigma_prior.*positive reals"):
        AR1Layer(num_categories=3, sigma_prior=dist.Laplace(0.0, 1.0))
    with pytest.raises(ValueError, match=r"coef_prior.*real line"):
        FixedEffectsLayer(num_categories=3, coef_prior=dist.Exponential(1.0))
    with pytest.raises(TypeError, match="noncentered"):
        RandomEffectsLayer(num_categories=3, noncentered="yes")
    for bad in (0.0, -1.0, float("inf"), True, "2"):
        with pytest.raises(
            ValueError, match=r"rho_concentration must be a positive number \(finite and > 0\)"
        ):
            AR1Layer(num_categories=3, rho_concentration=bad)
    with pytest.raises(TypeError, match=r"missing.*num_categories"):
        RandomEffectsLayer()


def test_fit_refuses_out_of_range_codes_before_training(monkeypatch):
    from blayers_core.engine.program import TrainingProgram

    layer = RandomEffectsLayer(num_categories=C)
    started = []
    monkeypatch.setattr(TrainingProgram, "init", lambda *a, **k: started.append(1))

    def model(g, y=None):
        return gaussian_link_exp(layer("re", g), y)

    g = _codes(22, n=40)
    y = _rng(23).normal(size=40).astype(np.float32)
    for bad in (C, -1):
        codes = g.copy()
        codes[31] = bad
        with pytest.raises(ValueError, match=r"layer 're': x has 1 codes outside.*row 31"):
            blayers_core.fit(model, g=codes, y=y, batch_size=8, num_steps=5, progress_bar=False)
        # Raised by the dry run over every row: training never started.
        assert not started


# ------------------------------------------------------------------------ recovery with fit
def _fit(model, steps: int = 1500, **data):
    return blayers_core.fit(
        model,
        num_steps=steps,
        lr=optax.cosine_decay_schedule(0.03, steps),
        num_samples=400,
        progress_bar=False,
        **data,
    )


@pytest.mark.slow
def test_fit_recovers_group_means_and_scale_of_random_effects():
    rng = _rng(30)
    groups, rows, true_scale, noise = 20, 400, 1.0, 0.5
    effects = rng.normal(0.0, true_scale, groups)
    g = np.repeat(np.arange(groups), rows // groups)
    rng.shuffle(g)
    y = (0.5 + effects[g] + noise * rng.normal(size=rows)).astype(np.float32)
    intercept, random_effects = InterceptLayer(), RandomEffectsLayer(num_categories=groups)

    def model(g, y=None):
        return gaussian_link_exp(intercept("b0", g) + random_effects("re", g), y)

    result = _fit(model, g=g, y=y)
    draws = result.posterior_samples
    means = np.asarray(draws["b0/beta"][:, None, :] + draws["re/theta"]).mean(0)[:, 0]
    # 20 rows per group: the group means are known to about 0.5 / sqrt(20) = 0.11.
    empirical = np.array([y[g == k].mean() for k in range(groups)])
    np.testing.assert_allclose(means, empirical, atol=0.08)  # little shrinkage at this scale
    np.testing.assert_allclose(means, 0.5 + effects, atol=0.35)
    assert 0.6 < float(site_summary(result, "re/scale")[0]) < 1.6
    np.testing.assert_allclose(site_summary(result, "obs/sigma"), noise, atol=0.08)


@pytest.mark.slow
def test_fit_recovers_random_slopes_and_fixed_group_intercepts():
    rng = _rng(31)
    groups, rows, noise = 5, 400, 0.3
    alpha = rng.normal(0.0, 1.0, groups)
    beta = rng.normal(0.0, 1.0, (groups, D))
    x = rng.normal(size=(rows, D)).astype(np.float32)
    g = rng.integers(0, groups, rows)
    y = (alpha[g] + np.einsum("nd,nd->n", x, beta[g]) + noise * rng.normal(size=rows)).astype(
        np.float32
    )
    effects = FixedEffectsLayer(num_categories=groups)
    slopes = RandomSlopesLayer(num_categories=groups)

    def model(x, g, y=None):
        return gaussian_link_exp(effects("a", g) + slopes("b", x, g), y)

    result = _fit(model, x=x, g=g, y=y)
    draws = result.posterior_samples
    alpha_hat = np.asarray(draws["a/theta"]).mean(0)[:, 0]
    beta_hat = np.asarray(draws["b/beta"]).mean(0)[:, :, 0]
    # Independent estimate: least squares with an intercept, group by group.
    ls = np.array(
        [
            np.linalg.lstsq(np.c_[np.ones((g == k).sum()), x[g == k]], y[g == k], rcond=None)[0]
            for k in range(groups)
        ]
    )
    np.testing.assert_allclose(alpha_hat, ls[:, 0], atol=0.06)
    np.testing.assert_allclose(beta_hat, ls[:, 1:], atol=0.06)
    np.testing.assert_allclose(beta_hat, beta, atol=0.15)


@pytest.mark.slow
def test_fit_recovers_a_random_walk_path_and_the_autocorrelation_of_an_ar1_series():
    """Two independent series in one model (two observed sites), so one fit covers both."""
    rng = _rng(32)
    rows, noise = 400, 0.3
    # A random walk over 30 ordered levels, observed at random levels.
    levels, step_scale = 30, 0.3
    path = np.cumsum(rng.normal(0.0, step_scale, levels))
    t_rw = rng.integers(0, levels, rows)
    y_rw = (path[t_rw] + noise * rng.normal(size=rows)).astype(np.float32)
    # A stationary AR(1) series of 200 steps, observed twice per step.
    steps, rho, sigma = 200, 0.8, 0.5
    theta = np.zeros(steps)
    theta[0] = rng.normal() * sigma / np.sqrt(1.0 - rho**2)
    for k in range(1, steps):
        theta[k] = rho * theta[k - 1] + sigma * rng.normal()
    t_ar = np.repeat(np.arange(steps), rows // steps)
    y_ar = (theta[t_ar] + noise * rng.normal(size=rows)).astype(np.float32)
    walk, ar1 = RandomWalkLayer(num_categories=levels), AR1Layer(num_categories=steps)
    link_rw, link_ar = GaussianLink(name="y_rw"), GaussianLink(name="y_ar")

    def model(t_rw, t_ar, y_rw=None, y_ar=None):
        link_rw(walk("rw", t_rw), y_rw)
        link_ar(ar1("ar", t_ar), y_ar)

    result = _fit(model, t_rw=t_rw, t_ar=t_ar, y_rw=y_rw, y_ar=y_ar)
    draws = result.posterior_samples

    walk_hat = np.cumsum(np.asarray(draws["rw/increments"]), axis=1).mean(0)[:, 0]
    np.testing.assert_allclose(walk_hat, path, atol=0.35)
    assert np.corrcoef(walk_hat, path)[0, 1] > 0.95
    assert 0.15 < float(site_summary(result, "rw/scale")[0]) < 0.5

    rho_draws = 2.0 * np.asarray(draws["ar/rho_raw"]) - 1.0
    # Independent estimate: least squares of theta_t on theta_{t-1} for the simulated path.
    rho_ls = theta[1:] @ theta[:-1] / (theta[:-1] @ theta[:-1])
    np.testing.assert_allclose(rho_draws.mean(), rho_ls, atol=0.06)
    assert 0.65 < rho_draws.mean() < 0.95
    assert np.quantile(rho_draws, 0.05) > 0.5  # clearly positive
    np.testing.assert_allclose(site_summary(result, "ar/sigma"), sigma, atol=0.15)
    assert np.corrcoef(site_summary(result, "ar/theta"), theta)[0, 1] > 0.9
    np.testing.assert_allclose(site_summary(result, "y_rw/sigma"), noise, atol=0.06)
    np.testing.assert_allclose(site_summary(result, "y_ar/sigma"), noise, atol=0.06)
