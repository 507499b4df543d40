"""B-spline bases against scipy, and the smooth layers (pspline, hsgp) against hand-written
NumPyro, naive references and the exact squared-exponential kernel."""

from __future__ import annotations

import math

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
import pytest
from helpers import assert_same_log_joint, trace
from helpers import positive as _positive
from helpers import real as _real
from helpers import run_with as _run
from scipy.interpolate import BSpline

import blayers_core
from blayers_plugins.layers.smooth import HSGPLayer, PSplineLayer
from blayers_plugins.links import gaussian_link_exp
from blayers_plugins.splines import bspline_basis, make_knots

N = 6


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _f32_knots(knots: np.ndarray) -> np.ndarray:
    """Knots exactly representable in float32, so x placed on a knot is on it in both precisions."""
    return knots.astype(np.float32).astype(np.float64)


# ------------------------------------------------------------------------------------ splines
@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_bspline_basis_equals_scipy_design_matrix_and_sums_to_one(degree):
    x = _rng(0).uniform(-2.0, 3.0, size=40).astype(np.float32)
    knots = _f32_knots(make_knots(x, 5, degree))
    # Data, both ends of the domain and every interior knot.
    points = np.concatenate([x, knots[[0, -1]], knots[degree + 1 : -degree - 1]]).astype(np.float32)
    basis = np.asarray(bspline_basis(points, knots, degree))
    expected = BSpline.design_matrix(points.astype(np.float64), knots, degree).toarray()
    assert basis.shape == (points.size, 5 + degree + 1)
    np.testing.assert_allclose(basis, expected, atol=1e-6)
    np.testing.assert_allclose(basis.sum(axis=1), 1.0, atol=1e-6)
    assert (basis >= 0).all()


@pytest.mark.parametrize("degree", [1, 3])
def test_bspline_basis_with_unclamped_knots_matches_scipy_on_its_domain(degree):
    knots = _f32_knots(np.linspace(-1.0, 2.0, 12))  # domain [t_p, t_{M-p-1}]
    points = np.linspace(knots[degree], knots[-degree - 1], 25).astype(np.float32)
    basis = np.asarray(bspline_basis(points, knots, degree))
    expected = BSpline.design_matrix(points.astype(np.float64), knots, degree).toarray()
    np.testing.assert_allclose(basis, expected, atol=1e-6)
    np.testing.assert_allclose(basis.sum(axis=1), 1.0, atol=1e-6)


def test_bspline_basis_traces_under_jit_and_checks_concrete_input():
    knots = make_knots(np.linspace(0.0, 1.0, 20), 3)
    points = np.linspace(0.0, 1.0, 7).astype(np.float32)
    jitted = jax.jit(lambda v: bspline_basis(v, knots))(points)
    np.testing.assert_allclose(jitted, bspline_basis(points, knots), atol=1e-6)
    with pytest.raises(ValueError, match=r"x has 1 values outside the spline domain \[0.0, 1.0\]"):
        bspline_basis(np.array([0.5, 1.01]), knots)
    with pytest.raises(ValueError, match="outside the spline domain"):
        bspline_basis(np.array([np.nan]), knots)
    with pytest.raises(ValueError, match=r"x must be 1-D"):
        bspline_basis(points[:, None], knots)
    with pytest.raises(ValueError, match="knots must be non-decreasing"):
        bspline_basis(points, knots[::-1])
    with pytest.raises(ValueError, match="degree must be a non-negative int"):
        bspline_basis(points, knots, degree=-1)


def test_make_knots_is_clamped_at_quantiles():
    x = np.arange(101, dtype=float)
    knots = make_knots(x, 3, degree=2)
    np.testing.assert_allclose(knots, [0, 0, 0, 25, 50, 75, 100, 100, 100])
    wide = make_knots(x, 1, degree=1, lower=-10.0, upper=120.0)
    np.testing.assert_allclose(wide, [-10, -10, 50, 120, 120])
    assert make_knots(x[:, None], 0).tolist() == [0.0] * 4 + [100.0] * 4
    with pytest.raises(ValueError, match="use fewer knots"):
        make_knots(np.array([0.0, 1.0, 1.0, 1.0, 1.0, 2.0]), 3)
    with pytest.raises(ValueError, match="must contain the range of x"):
        make_knots(x, 3, lower=5.0)
    with pytest.raises(ValueError, match=r"num_knots .* must be a non-negative int"):
        make_knots(x, -1)
    with pytest.raises(ValueError, match=r"lower 1\.0 must be below upper 1\.0"):
        make_knots(np.ones(5), 0)


# ----------------------------------------------------------------------------------- P-spline
KNOTS = make_knots(np.linspace(-1.0, 2.0, 50), 4)  # K = 4 + 3 + 1 = 8 basis functions
NUM_BASIS = 8


def _pspline_coefficients(knots, degree, delta, trend) -> np.ndarray:
    """beta written out: a line through the Greville abscissae plus a second-order recursion
    from which its own least-squares line (against the abscissae) is removed."""
    k, units = delta.shape[0] + 2, delta.shape[1]
    lo, hi = knots[degree], knots[len(knots) - degree - 1]
    greville = np.array([np.mean(knots[i + 1 : i + degree + 1]) for i in range(k)])
    g = (2 * greville - lo - hi) / (hi - lo)
    walk = np.zeros((k, units))
    for i in range(2, k):
        walk[i] = 2 * walk[i - 1] - walk[i - 2] + delta[i - 2]
    for c in range(units):
        slope, intercept = np.polyfit(g, walk[:, c], 1)
        walk[:, c] -= intercept + slope * g
    return trend[0] + trend[1] * g[:, None] + walk


def test_pspline_log_joint_and_output_match_hand_written_model_and_scipy():
    units = 2
    layer = PSplineLayer(knots=KNOTS, trend_scale=2.0, scale_prior=dist.Exponential(2.0))
    x = np.concatenate([[-1.0, 2.0], _rng(1).uniform(-1, 2, N - 2)]).astype(np.float32)[:, None]
    rng = _rng(2)
    params = {
        "s/scale": _positive(rng, (units,)),
        "s/delta": _real(rng, (NUM_BASIS - 2, units)),
        "s/trend": _real(rng, (2, units)),
    }

    def model(x):
        return layer("s", x, units=units)

    def reference(x):
        scale = numpyro.sample("s/scale", dist.Exponential(2.0).expand([units]).to_event(1))
        numpyro.sample(
            "s/delta", dist.Normal(0.0, scale).expand([NUM_BASIS - 2, units]).to_event(2)
        )
        numpyro.sample("s/trend", dist.Normal(0.0, 2.0).expand([2, units]).to_event(2))

    assert_same_log_joint(model, reference, params, x)
    out = _run(lambda: model(x), data=params)
    beta = _pspline_coefficients(KNOTS, 3, params["s/delta"], params["s/trend"])
    expected = np.stack([BSpline(KNOTS, beta[:, c], 3)(x[:, 0]) for c in range(units)], axis=1)
    assert out.shape == (N, units)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_pspline_without_wiggles_is_exactly_the_trend_line():
    """delta = 0 leaves level + slope * (x mapped to [-1, 1]), even with uneven knots."""
    x = _rng(3).uniform(-1, 2, (N, 1)).astype(np.float32)
    uneven = np.array([-1, -1, -1, -1, -0.8, 0.1, 0.2, 1.5, 2, 2, 2, 2])
    trend = np.array([[0.7], [-1.3]], np.float32)
    params = {"s/delta": np.zeros((uneven.size - 6, 1), np.float32), "s/trend": trend}
    out = _run(lambda: PSplineLayer(knots=uneven)("s", x), data=params)
    np.testing.assert_allclose(out, 0.7 - 1.3 * (2 * x - 1.0) / 3.0, atol=1e-5)


def test_pspline_refuses_x_outside_its_knots_and_other_bad_input():
    layer = PSplineLayer(knots=KNOTS)
    with pytest.raises(ValueError, match=r"layer 's': x has 1 values outside \[-1.0, 2.0\]"):
        _run(lambda: layer("s", np.array([[0.0], [2.5]])))
    with pytest.raises(ValueError, match=r"x must be one column \(rows, 1\).*\(6, 2\)"):
        _run(lambda: layer("s", np.zeros((N, 2))))
    with pytest.raises(ValueError, match=r"x must be a 2-D array.*x\[:, None\]"):
        _run(lambda: layer("s", np.zeros(N)))
    # Inside jit the check cannot run; fit and predict run the model eagerly first.
    out = jax.jit(lambda v: _run(lambda: layer("s", v)))(np.zeros((N, 1), np.float32))
    assert out.shape == (N, 1)


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"knots": [0.0, 0.0, 1.0, 1.0]}, ValueError, "a degree-3 basis needs at least 5"),
        ({"knots": [0.0, 0.0, 1.0, 1.0], "degree": 1}, ValueError, "needs at least 3: add"),
        ({"knots": [0.0] * 4 + [1.0] * 2}, ValueError, "empty domain"),
        ({"knots": KNOTS[::-1]}, ValueError, "knots must be non-decreasing"),
        ({"knots": np.ones((3, 4))}, ValueError, "knots must be a 1-D array"),
        ({"knots": [0.0, np.inf] * 5}, ValueError, "knots must be finite"),
        ({"knots": KNOTS, "degree": 0}, ValueError, "degree must be a positive int"),
        ({"knots": KNOTS, "trend_scale": -1.0}, ValueError, "trend_scale must be a positive"),
        ({"knots": KNOTS, "scale_prior": dist.Normal(0, 1)}, ValueError, "scale_prior"),
    ],
)
def test_pspline_config_is_validated(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        PSplineLayer(**kwargs)


def test_pspline_knots_are_stored_as_a_tuple():
    layer = PSplineLayer(knots=KNOTS)
    assert layer.knots == tuple(KNOTS)
    prior = layer.scale_prior
    assert layer == PSplineLayer(knots=list(KNOTS), scale_prior=prior)  # comparable, hashable
    assert hash(layer) == hash(PSplineLayer(knots=list(KNOTS), scale_prior=prior))
    assert layer.num_basis == NUM_BASIS and layer.domain == (-1.0, 2.0)


# --------------------------------------------------------------------------------------- HSGP
def _hsgp_naive(x, L, lengthscale, sigma, beta) -> np.ndarray:
    m, units = beta.shape
    out = np.zeros((x.size, units))
    for n, c, j in np.ndindex(x.size, units, m):
        w = math.pi * (j + 1) / (2 * L)
        spd = (
            sigma[c] ** 2
            * math.sqrt(2 * math.pi)
            * lengthscale[c]
            * math.exp(-0.5 * (lengthscale[c] * w) ** 2)
        )
        phi = math.sqrt(1 / L) * math.sin(math.pi * (j + 1) * (x[n] + L) / (2 * L))
        out[n, c] += phi * math.sqrt(spd) * beta[j, c]
    return out


def test_hsgp_log_joint_and_output_match_hand_written_model_and_loops():
    units = 2
    m, L = 6, 2.0
    layer = HSGPLayer(L=L, m=m)
    x = np.concatenate([[-L, L], _rng(4).uniform(-1, 1, N - 2)]).astype(np.float32)[:, None]
    rng = _rng(5)
    params = {
        "gp/lengthscale": _positive(rng, (units,)),
        "gp/sigma": _positive(rng, (units,)),
        "gp/beta": _real(rng, (m, units)),
    }

    def model(x):
        return layer("gp", x, units=units)

    def reference(x):
        numpyro.sample("gp/lengthscale", dist.InverseGamma(5.0, 5.0).expand([units]).to_event(1))
        numpyro.sample("gp/sigma", dist.HalfNormal(1.0).expand([units]).to_event(1))
        numpyro.sample("gp/beta", dist.Normal(0.0, 1.0).expand([m, units]).to_event(2))

    assert_same_log_joint(model, reference, params, x)
    out = _run(lambda: model(x), data=params)
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    expected = _hsgp_naive(
        x[:, 0].astype(np.float64), L, p64["gp/lengthscale"], p64["gp/sigma"], p64["gp/beta"]
    )
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def _implied_covariance(m: int, L: float, x: np.ndarray, lengthscale: float, sigma: float):
    """Prior covariance of the layer's output at x, exactly: with beta = I (units = m), column j of
    the output is phi_j(x) sqrt(S(sqrt(lambda_j))), so cov = out @ out.T = phi diag(S) phi^T."""
    data = {
        "gp/lengthscale": np.full(m, lengthscale, np.float32),
        "gp/sigma": np.full(m, sigma, np.float32),
        "gp/beta": np.eye(m, dtype=np.float32),
    }
    out = np.asarray(_run(lambda: HSGPLayer(L=L, m=m)("gp", x, units=m), data=data))
    return out @ out.T


def test_hsgp_prior_covariance_approaches_the_squared_exponential_kernel():
    x = np.linspace(-1.0, 1.0, 9).astype(np.float32)[:, None]
    lengthscale, sigma, L = 0.5, 1.3, 2.5
    exact = sigma**2 * np.exp(-((x - x.T) ** 2) / (2 * lengthscale**2))
    close = _implied_covariance(30, L, x, lengthscale, sigma)
    np.testing.assert_allclose(close, exact, atol=1e-3)
    coarse = _implied_covariance(4, L, x, lengthscale, sigma)
    assert np.abs(coarse - exact).max() > 0.05  # too few basis functions: visibly off


def test_hsgp_gradient_is_finite_where_the_spectral_density_underflows():
    """A long lengthscale sends S(w) to 0 in float32 at high frequencies; the gradient must not
    become NaN there (sqrt(S) is computed without taking a square root of 0)."""
    x = np.linspace(-1.0, 1.0, N).astype(np.float32)[:, None]
    beta = _real(_rng(7), (40, 1))

    def total(log_lengthscale):
        data = {
            "gp/lengthscale": jax.numpy.exp(log_lengthscale),
            "gp/sigma": np.ones(1, np.float32),
            "gp/beta": beta,
        }
        return _run(lambda: HSGPLayer(L=2.0, m=40)("gp", x), data=data).sum()

    gradient = jax.grad(total)(np.log(np.full(1, 20.0, np.float32)))
    assert np.isfinite(gradient).all()


def test_hsgp_refuses_x_outside_its_domain_and_bad_config():
    layer = HSGPLayer(L=1.5, m=4)
    with pytest.raises(ValueError, match=r"layer 'gp': x has 2 values outside \[-1.5, 1.5\]"):
        _run(lambda: layer("gp", np.array([[-2.0], [0.0], [1.6]])))
    with pytest.raises(ValueError, match=r"x must be one column"):
        _run(lambda: layer("gp", np.zeros((N, 3))))
    with pytest.raises(ValueError, match="L must be a positive number"):
        HSGPLayer(L=0.0, m=4)
    with pytest.raises(ValueError, match="m must be a positive int"):
        HSGPLayer(L=1.0, m=0)
    with pytest.raises(ValueError, match=r"lengthscale_prior.*positive reals"):
        HSGPLayer(L=1.0, m=4, lengthscale_prior=dist.Normal(0.0, 1.0))
    with pytest.raises(TypeError, match="sigma_prior"):
        HSGPLayer(L=1.0, m=4, sigma_prior=dist.HalfNormal)


# ------------------------------------------------------------------------ registry, shapes
def test_registry_builds_the_smooth_layers_with_scoped_sites():
    pspline = blayers_core.layer("pspline", knots=KNOTS)
    hsgp = blayers_core.layer("hsgp", L=2.0, m=5)
    assert isinstance(pspline, PSplineLayer) and isinstance(hsgp, HSGPLayer)
    x = np.zeros((N, 1), np.float32)
    assert set(trace(lambda: pspline("f", x) + hsgp("g", x))) == {
        "f/scale",
        "f/delta",
        "f/trend",
        "g/lengthscale",
        "g/sigma",
        "g/beta",
    }


@pytest.mark.parametrize(
    "make", [lambda: PSplineLayer(knots=KNOTS), lambda: HSGPLayer(L=2.0, m=5)], ids=["ps", "gp"]
)
def test_units_and_activation(make):
    x = _rng(6).uniform(-1, 1, (N, 1)).astype(np.float32)
    plain = _run(lambda: make()("l", x, units=3), seed=2)
    relu = _run(lambda: make()("l", x, units=3, activation=jax.nn.relu), seed=2)
    assert plain.shape == relu.shape == (N, 3)
    np.testing.assert_allclose(relu, np.maximum(plain, 0.0))


# ---------------------------------------------------------------------------------- recovery
def _fit_smooth(layer, x, y):
    def model(x, y=None):
        return gaussian_link_exp(layer("f", x), y)

    steps = 1500
    return blayers_core.fit(
        model,
        x=x,
        y=y,
        num_steps=steps,
        lr=optax.cosine_decay_schedule(0.03, steps),
        progress_bar=False,
        num_samples=400,
    )


@pytest.mark.slow
def test_pspline_recovers_a_smooth_curve():
    rng = _rng(40)
    x = rng.uniform(-2.0, 2.0, (200, 1)).astype(np.float32)
    y = (np.sin(1.5 * x[:, 0]) + 0.2 * rng.normal(size=200)).astype(np.float32)
    knots = make_knots(x, 8, lower=-2.0, upper=2.0)
    result = _fit_smooth(PSplineLayer(knots=knots), x, y)
    grid = np.linspace(-1.9, 1.9, 25).astype(np.float32)[:, None]
    fitted = result.predict(x=grid).mean
    np.testing.assert_allclose(fitted, np.sin(1.5 * grid[:, 0]), atol=0.15)
    assert np.sqrt(np.mean((fitted - np.sin(1.5 * grid[:, 0])) ** 2)) < 0.07


@pytest.mark.slow
def test_hsgp_recovers_a_smooth_curve():
    rng = _rng(41)
    x = rng.uniform(-1.0, 1.0, (200, 1)).astype(np.float32)
    y = (np.sin(3.0 * x[:, 0]) + 0.2 * rng.normal(size=200)).astype(np.float32)
    result = _fit_smooth(HSGPLayer(L=2.0, m=20), x, y)
    grid = np.linspace(-0.95, 0.95, 25).astype(np.float32)[:, None]
    fitted = result.predict(x=grid).mean
    np.testing.assert_allclose(fitted, np.sin(3.0 * grid[:, 0]), atol=0.15)
    assert np.sqrt(np.mean((fitted - np.sin(3.0 * grid[:, 0])) ** 2)) < 0.07
