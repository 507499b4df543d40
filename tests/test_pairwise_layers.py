"""Pairwise layers (fm3, interaction, bilinear, lowrank_bilinear) against hand-written NumPyro
and naive loops. Shapes are tiny and nothing but the one fit is compiled."""

from __future__ import annotations

import itertools

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
import pytest
from helpers import assert_same_log_joint, site_summary, trace
from helpers import positive as _positive
from helpers import real as _real
from helpers import run_with as _run
from scipy import stats

import blayers_core
from blayers_plugins.layers.pairwise import (
    BilinearLayer,
    FM3Layer,
    InteractionLayer,
    LowRankBilinearLayer,
    cross_products,
    pair_indices,
    pairwise_products,
)
from blayers_plugins.links import gaussian_link_exp

N, D, DZ, K = 5, 4, 3, 2


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _x(seed: int = 0, n: int = N, d: int = D) -> np.ndarray:
    return _rng(seed).normal(size=(n, d)).astype(np.float32)


def _half_normal_scale(site: str, units: int):
    return numpyro.sample(site, dist.HalfNormal(1.0).expand([units]).to_event(1))


# ----------------------------------------------------------------------------------- helpers
def test_pair_expansions_follow_the_documented_order():
    x, z = _x(1, d=4), _x(2, d=3)
    assert list(zip(*pair_indices(4), strict=True)) == list(itertools.combinations(range(4), 2))
    expected = np.array([[r[i] * r[j] for i, j in itertools.combinations(range(4), 2)] for r in x])
    np.testing.assert_allclose(pairwise_products(x), expected, rtol=1e-6)
    expected = np.array([np.outer(a, b).ravel() for a, b in zip(x, z, strict=True)])
    np.testing.assert_allclose(cross_products(x, z), expected, rtol=1e-6)
    np.testing.assert_allclose(cross_products(x, z)[:, 1 * 3 + 2], x[:, 1] * z[:, 2], rtol=1e-6)


# -------------------------------------------------------------------------------------- FM3
def _fm3_naive(x: np.ndarray, theta: np.ndarray) -> np.ndarray:
    n, d = x.shape
    out = np.zeros((n, theta.shape[-1]))
    for row, c in itertools.product(range(n), range(theta.shape[-1])):
        for i, j, k in itertools.combinations(range(d), 3):
            weight = np.sum(theta[i, :, c] * theta[j, :, c] * theta[k, :, c])
            out[row, c] += weight * x[row, i] * x[row, j] * x[row, k]
    return out


@pytest.mark.parametrize("units", [1, 2])
def test_fm3_log_joint_and_output_match_hand_written_model_and_triple_loop(units):
    layer = FM3Layer(low_rank_dim=3)
    x = _x(3, d=5)
    rng = _rng(4)
    params = {"f/scale": _positive(rng, (units,)), "f/theta": _real(rng, (5, 3, units))}

    def model(x):
        return layer("f", x, units=units)

    def reference(x):
        scale = _half_normal_scale("f/scale", units)
        numpyro.sample("f/theta", dist.Normal(0.0, scale).expand([5, 3, units]).to_event(3))

    assert_same_log_joint(model, reference, params, x)
    out = _run(lambda: model(x), data=params)
    assert out.shape == (N, units)
    expected = _fm3_naive(x.astype(np.float64), params["f/theta"].astype(np.float64))
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-3)


def test_fm3_with_custom_prior_matches_scipy_density():
    layer = FM3Layer(low_rank_dim=K, scale_prior=dist.Gamma(2.0, 3.0), coef_dist=dist.Laplace)
    rng = _rng(5)
    scale, theta = _positive(rng, (1,)), _real(rng, (D, K, 1))
    params = {"f/scale": scale, "f/theta": theta}
    lp, _ = numpyro.infer.util.log_density(lambda x: layer("f", x), (_x(),), {}, params)
    expected = (
        stats.gamma.logpdf(scale, 2.0, scale=1 / 3.0).sum()
        + stats.laplace.logpdf(theta, 0.0, scale).sum()
    )
    np.testing.assert_allclose(float(lp), expected, rtol=1e-5)


def test_fm3_has_only_distinct_triples():
    """Two nonzero features make no triple, so the output is zero (no x_i^2 x_j terms)."""
    x = np.zeros((N, D), np.float32)
    x[:, :2] = _x(6, d=2)
    out = _run(lambda: FM3Layer(low_rank_dim=K)("f", x, units=2))
    np.testing.assert_allclose(out, 0.0, atol=1e-4)


def test_fm3_needs_three_features_and_a_rank():
    with pytest.raises(ValueError, match=r"x must have at least 3 columns.*\(5, 2\)"):
        _run(lambda: FM3Layer(low_rank_dim=K)("f", _x(d=2)))
    with pytest.raises(ValueError, match="low_rank_dim must be a positive int"):
        FM3Layer(low_rank_dim=0)
    with pytest.raises(ValueError, match=r"scale_prior.*positive reals"):
        FM3Layer(low_rank_dim=K, scale_prior=dist.Normal(0.0, 1.0))


# ------------------------------------------------------------------------------ interaction
def test_interaction_log_joint_and_output_match_hand_written_pairs():
    units = 3
    layer = InteractionLayer()
    x = _x(7)
    pairs = D * (D - 1) // 2
    rng = _rng(8)
    params = {"ia/scale": _positive(rng, (units,)), "ia/beta": _real(rng, (pairs, units))}

    def model(x):
        return layer("ia", x, units=units)

    def reference(x):
        scale = _half_normal_scale("ia/scale", units)
        numpyro.sample("ia/beta", dist.Normal(0.0, scale).expand([pairs, units]).to_event(2))

    assert_same_log_joint(model, reference, params, x)
    out = _run(lambda: model(x), data=params)
    expected = np.zeros((N, units))
    for p, (i, j) in enumerate(itertools.combinations(range(D), 2)):
        expected += np.outer(x[:, i] * x[:, j], params["ia/beta"][p])
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_interaction_with_second_input_uses_all_cross_products():
    units = 2
    layer = InteractionLayer(with_second_input=True, coef_dist=dist.Laplace, coef_loc=0.1)
    x, z = _x(9), _x(10, d=DZ)
    rng = _rng(11)
    params = {"xz/scale": _positive(rng, (units,)), "xz/beta": _real(rng, (D * DZ, units))}

    def model(x, z):
        return layer("xz", x, z, units=units)

    def reference(x, z):
        scale = _half_normal_scale("xz/scale", units)
        numpyro.sample("xz/beta", dist.Laplace(0.1, scale).expand([D * DZ, units]).to_event(2))

    assert_same_log_joint(model, reference, params, x, z)
    out = _run(lambda: model(x, z), data=params)
    beta = params["xz/beta"]
    expected = np.zeros((N, units))
    for n, c, i, j in itertools.product(range(N), range(units), range(D), range(DZ)):
        expected[n, c] += x[n, i] * z[n, j] * beta[i * DZ + j, c]
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_interaction_inputs_follow_the_constructor_flag():
    with pytest.raises(TypeError, match=r"takes inputs \(x\), got 2"):
        _run(lambda: InteractionLayer()("ia", _x(), _x(1, d=DZ)))
    with pytest.raises(TypeError, match=r"takes inputs \(x, z\), got 1"):
        _run(lambda: InteractionLayer(with_second_input=True)("ia", _x()))
    with pytest.raises(ValueError, match=r"x must have at least 2 columns.*with_second_input"):
        _run(lambda: InteractionLayer()("ia", _x(d=1)))
    # One column is fine against a second input.
    out = _run(lambda: InteractionLayer(with_second_input=True)("ia", _x(d=1), _x(1, d=1)))
    assert out.shape == (N, 1)
    with pytest.raises(TypeError, match="with_second_input must be True or False"):
        InteractionLayer(with_second_input="yes")
    with pytest.raises(ValueError, match=r"z must be a 2-D array.*z\[:, None\]"):
        _run(lambda: InteractionLayer(with_second_input=True)("ia", _x(), np.ones(N)))


# ---------------------------------------------------------------------------------- bilinear
def test_bilinear_log_joint_and_output_match_x_w_z():
    units = 2
    layer = BilinearLayer()
    x, z = _x(12), _x(13, d=DZ)
    rng = _rng(14)
    params = {"bl/scale": _positive(rng, (units,)), "bl/beta": _real(rng, (D, DZ, units))}

    def model(x, z):
        return layer("bl", x, z, units=units)

    def reference(x, z):
        scale = _half_normal_scale("bl/scale", units)
        numpyro.sample("bl/beta", dist.Normal(0.0, scale).expand([D, DZ, units]).to_event(3))

    assert_same_log_joint(model, reference, params, x, z)
    out = _run(lambda: model(x, z), data=params)
    w = params["bl/beta"]
    expected = np.array([[x[n] @ w[:, :, c] @ z[n] for c in range(units)] for n in range(N)])
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_lowrank_bilinear_shares_one_scale_and_equals_x_abt_z():
    units = 2
    layer = LowRankBilinearLayer(low_rank_dim=K)
    x, z = _x(15), _x(16, d=DZ)
    rng = _rng(17)
    params = {
        "lb/scale": _positive(rng, (units,)),
        "lb/x_theta": _real(rng, (D, K, units)),
        "lb/z_theta": _real(rng, (DZ, K, units)),
    }

    def model(x, z):
        return layer("lb", x, z, units=units)

    def reference(x, z):
        scale = _half_normal_scale("lb/scale", units)
        numpyro.sample("lb/x_theta", dist.Normal(0.0, scale).expand([D, K, units]).to_event(3))
        numpyro.sample("lb/z_theta", dist.Normal(0.0, scale).expand([DZ, K, units]).to_event(3))

    assert_same_log_joint(model, reference, params, x, z)
    assert set(trace(lambda: model(x, z))) == {"lb/scale", "lb/x_theta", "lb/z_theta"}
    out = _run(lambda: model(x, z), data=params)
    a, b = params["lb/x_theta"], params["lb/z_theta"]
    expected = np.array(
        [[x[n] @ (a[:, :, c] @ b[:, :, c].T) @ z[n] for c in range(units)] for n in range(N)]
    )
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_bilinear_layers_need_two_inputs_and_valid_config():
    with pytest.raises(TypeError, match=r"takes inputs \(x, z\), got 1"):
        _run(lambda: BilinearLayer()("bl", _x()))
    with pytest.raises(ValueError, match=r"different numbers of rows"):
        _run(lambda: LowRankBilinearLayer(low_rank_dim=K)("lb", _x(), _x(n=3, d=DZ)))
    with pytest.raises(ValueError, match="low_rank_dim must be a positive int"):
        LowRankBilinearLayer(low_rank_dim=1.5)
    with pytest.raises(TypeError, match=r"coef_dist.*not an instance"):
        BilinearLayer(coef_dist=dist.Normal(0.0, 1.0))


# ------------------------------------------------------------------------ registry, shapes
def test_registry_builds_the_pairwise_layers():
    assert isinstance(blayers_core.layer("fm3", low_rank_dim=2), FM3Layer)
    ia = blayers_core.layer("interaction", with_second_input=True)
    assert isinstance(ia, InteractionLayer) and ia.input_names == ("x", "z")
    assert isinstance(blayers_core.layer("bilinear"), BilinearLayer)
    assert isinstance(blayers_core.layer("lowrank_bilinear", low_rank_dim=2), LowRankBilinearLayer)


@pytest.mark.parametrize(
    ("make", "two_inputs"),
    [
        (lambda: FM3Layer(low_rank_dim=K), False),
        (lambda: InteractionLayer(), False),
        (lambda: BilinearLayer(), True),
        (lambda: LowRankBilinearLayer(low_rank_dim=K), True),
    ],
    ids=["fm3", "interaction", "bilinear", "lowrank_bilinear"],
)
def test_units_and_activation(make, two_inputs):
    inputs = (_x(), _x(1, d=DZ)) if two_inputs else (_x(),)
    plain = _run(lambda: make()("l", *inputs, units=3), seed=2)
    relu = _run(lambda: make()("l", *inputs, units=3, activation=jax.nn.relu), seed=2)
    assert plain.shape == relu.shape == (N, 3)
    np.testing.assert_allclose(relu, np.maximum(plain, 0.0))


# ---------------------------------------------------------------------------------- recovery
@pytest.mark.slow
def test_interaction_recovers_known_pair_coefficients():
    rng = _rng(20)
    x = rng.normal(size=(300, 3)).astype(np.float32)
    true_beta = np.array([1.5, 0.0, -1.0])  # pairs (0,1), (0,2), (1,2)
    features = np.stack([x[:, 0] * x[:, 1], x[:, 0] * x[:, 2], x[:, 1] * x[:, 2]], axis=1)
    y = (features @ true_beta + 0.3 * rng.normal(size=300)).astype(np.float32)

    def model(x, y=None):
        return gaussian_link_exp(InteractionLayer()("pairs", x), y)

    steps = 1500
    result = blayers_core.fit(
        model,
        x=x,
        y=y,
        num_steps=steps,
        lr=optax.cosine_decay_schedule(0.03, steps),
        progress_bar=False,
    )
    beta = site_summary(result, "pairs/beta")
    least_squares = np.linalg.lstsq(features, y, rcond=None)[0]
    np.testing.assert_allclose(beta, least_squares, atol=0.05)
    np.testing.assert_allclose(beta, true_beta, atol=0.1)
    np.testing.assert_allclose(site_summary(result, "obs/sigma"), 0.3, atol=0.05)
