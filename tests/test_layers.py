"""First-party layers, each checked against an independent hand-written NumPyro model or loop.

Shapes are tiny and nothing is jitted, so the whole module runs in a few seconds on a laptop.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from helpers import assert_same_log_joint, trace
from helpers import positive as _positive
from helpers import real as _real
from helpers import run_with as _run
from numpyro import handlers
from numpyro.infer.util import log_density
from scipy import stats

import blayers_core
from blayers_core import DuplicateLayerError
from blayers_plugins import AdaptiveLayer, FixedPriorLayer, FMLayer, LowRankInteractionLayer

N, D, DZ, K = 5, 3, 2, 2


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _x(seed: int = 0, n: int = N, d: int = D) -> np.ndarray:
    return _rng(seed).normal(size=(n, d)).astype(np.float32)


# ---------------------------------------------------------------------------------- log joints
@pytest.mark.parametrize("units", [1, 3])
def test_adaptive_log_joint_matches_hand_written_model(units):
    layer = AdaptiveLayer()
    x = _x()
    rng = _rng(1)
    params = {"mu/scale": _positive(rng, (units,)), "mu/beta": _real(rng, (D, units))}

    def model(x):
        return layer("mu", x, units=units)

    def reference(x):
        scale = numpyro.sample("mu/scale", dist.HalfNormal(1.0).expand([units]).to_event(1))
        beta = numpyro.sample("mu/beta", dist.Normal(0.0, scale).expand([D, units]).to_event(2))
        return x @ beta

    assert_same_log_joint(model, reference, params, x)
    out = _run(lambda: model(x), data=params)
    np.testing.assert_allclose(out, x @ params["mu/beta"], rtol=1e-5, atol=1e-6)


def test_adaptive_log_joint_matches_scipy_closed_form():
    """Fully independent of NumPyro's distributions: the density written with scipy."""
    x = _x()
    rng = _rng(2)
    scale, beta = _positive(rng, (2,)), _real(rng, (D, 2))
    lp, _ = log_density(
        lambda x: AdaptiveLayer()("mu", x, units=2),
        (x,),
        {},
        {
            "mu/scale": scale,
            "mu/beta": beta,
        },
    )
    expected = stats.halfnorm.logpdf(scale).sum() + stats.norm.logpdf(beta, 0.0, scale).sum()
    np.testing.assert_allclose(float(lp), expected, rtol=1e-5)


def test_adaptive_custom_prior_family_and_loc_match_hand_written_model():
    layer = AdaptiveLayer(scale_prior=dist.Gamma(2.0, 3.0), coef_dist=dist.Laplace, coef_loc=0.5)
    x = _x()
    rng = _rng(3)
    params = {"mu/scale": _positive(rng, (2,)), "mu/beta": _real(rng, (D, 2))}

    def model(x):
        return layer("mu", x, units=2)

    def reference(x):
        scale = numpyro.sample("mu/scale", dist.Gamma(2.0, 3.0).expand([2]).to_event(1))
        numpyro.sample("mu/beta", dist.Laplace(0.5, scale).expand([D, 2]).to_event(2))

    assert_same_log_joint(model, reference, params, x)


@pytest.mark.parametrize(
    "prior",
    [dist.Normal(0.0, 0.7), dist.Laplace(0.0, 0.3)],
    ids=["normal_l2", "laplace_l1"],
)
@pytest.mark.parametrize("units", [1, 3])
def test_fixed_prior_log_joint_matches_hand_written_model(prior, units):
    layer = FixedPriorLayer(coef_prior=prior)
    x = _x()
    params = {"w/beta": _real(_rng(4), (D, units))}

    def model(x):
        return layer("w", x, units=units)

    def reference(x):
        beta = numpyro.sample("w/beta", prior.expand([D, units]).to_event(2))
        return x @ beta

    assert_same_log_joint(model, reference, params, x)
    # Independent of NumPyro: the L2 / L1 penalty written out.
    beta = params["w/beta"].astype(np.float64)
    if isinstance(prior, dist.Normal):
        expected = stats.norm.logpdf(beta, 0.0, 0.7).sum()
    else:
        expected = stats.laplace.logpdf(beta, 0.0, 0.3).sum()
    lp, _ = log_density(model, (x,), {}, params)
    np.testing.assert_allclose(float(lp), expected, rtol=1e-5)
    out = _run(lambda: model(x), data=params)
    np.testing.assert_allclose(out, x @ params["w/beta"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("units", [1, 2])
def test_fm_log_joint_matches_hand_written_model(units):
    layer = FMLayer(low_rank_dim=K)
    x = _x()
    rng = _rng(5)
    params = {"fm/scale": _positive(rng, (units,)), "fm/theta": _real(rng, (D, K, units))}

    def model(x):
        return layer("fm", x, units=units)

    def reference(x):
        scale = numpyro.sample("fm/scale", dist.HalfNormal(1.0).expand([units]).to_event(1))
        numpyro.sample("fm/theta", dist.Normal(0.0, scale).expand([D, K, units]).to_event(3))

    assert_same_log_joint(model, reference, params, x)


@pytest.mark.parametrize("units", [1, 2])
def test_lowrank_log_joint_matches_hand_written_model(units):
    layer = LowRankInteractionLayer(low_rank_dim=K)
    x, z = _x(0), _x(1, d=DZ)
    rng = _rng(6)
    params = {
        "lr/x_scale": _positive(rng, (units,)),
        "lr/x_theta": _real(rng, (D, K, units)),
        "lr/z_scale": _positive(rng, (units,)),
        "lr/z_theta": _real(rng, (DZ, K, units)),
    }

    def model(x, z):
        return layer("lr", x, z, units=units)

    def reference(x, z):
        hn = dist.HalfNormal(1.0).expand([units]).to_event(1)
        xs = numpyro.sample("lr/x_scale", hn)
        numpyro.sample("lr/x_theta", dist.Normal(0.0, xs).expand([D, K, units]).to_event(3))
        zs = numpyro.sample("lr/z_scale", hn)
        numpyro.sample("lr/z_theta", dist.Normal(0.0, zs).expand([DZ, K, units]).to_event(3))

    assert_same_log_joint(model, reference, params, x, z)


# ------------------------------------------------------------------------ interaction math
def _fm_naive(x: np.ndarray, theta: np.ndarray) -> np.ndarray:
    n, d = x.shape
    units = theta.shape[-1]
    out = np.zeros((n, units))
    for row, c in itertools.product(range(n), range(units)):
        for i, j in itertools.combinations(range(d), 2):
            out[row, c] += theta[i, :, c] @ theta[j, :, c] * x[row, i] * x[row, j]
    return out


@pytest.mark.parametrize("units", [1, 2])
def test_fm_output_equals_naive_pairwise_sum(units):
    x = _x(7, d=4).astype(np.float64)
    theta = _real(_rng(8), (4, 3, units)).astype(np.float64)
    out = _run(lambda: FMLayer(low_rank_dim=3)("fm", x, units=units), data={"fm/theta": theta})
    assert out.shape == (N, units)
    np.testing.assert_allclose(out, _fm_naive(x, theta), rtol=1e-4, atol=1e-4)


def test_fm_has_no_self_interaction_terms():
    """A single nonzero feature has no partner, so the FM output is exactly zero."""
    x = np.zeros((N, D), np.float32)
    x[:, 1] = _rng(9).normal(size=N)
    out = _run(lambda: FMLayer(low_rank_dim=K)("fm", x))
    np.testing.assert_allclose(out, 0.0, atol=1e-5)  # float32 cancellation of the two sums


@pytest.mark.parametrize("units", [1, 2])
def test_lowrank_output_equals_bilinear_form(units):
    x, z = _x(10), _x(11, d=DZ)
    rng = _rng(12)
    u, v = _real(rng, (D, K, units)), _real(rng, (DZ, K, units))
    out = _run(
        lambda: LowRankInteractionLayer(low_rank_dim=K)("lr", x, z, units=units),
        data={"lr/x_theta": u, "lr/z_theta": v},
    )
    expected = np.array(
        [[x[n] @ (u[:, :, c] @ v[:, :, c].T) @ z[n] for c in range(units)] for n in range(N)]
    )
    assert out.shape == (N, units)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------- site naming
def test_one_layer_called_under_two_names_has_distinct_sites():
    layer, x = AdaptiveLayer(), _x()

    def model():
        return layer("a", x) + layer("b", x)

    tr = trace(model)
    assert set(tr) == {"a/scale", "a/beta", "b/scale", "b/beta"}
    assert not np.allclose(tr["a/beta"]["value"], tr["b/beta"]["value"])


def test_two_layers_have_distinct_scoped_sites():
    x, z = _x(), _x(1, d=DZ)

    def model():
        return (
            FixedPriorLayer()("lin", x)
            + FMLayer(low_rank_dim=K)("fm", x)
            + LowRankInteractionLayer(low_rank_dim=K)("lr", x, z)
        )

    assert set(trace(model)) == {
        "lin/beta",
        "fm/scale",
        "fm/theta",
        "lr/x_scale",
        "lr/x_theta",
        "lr/z_scale",
        "lr/z_theta",
    }


def test_same_name_twice_in_one_model_raises():
    layer, x = AdaptiveLayer(), _x()

    def model():
        return layer("a", x) + layer("a", x)

    with pytest.raises(DuplicateLayerError, match=r"layer name 'a' is used twice.*'a/scale'"):
        trace(model)
    rng = _rng(14)
    params = {"a/scale": _positive(rng, (1,)), "a/beta": _real(rng, (D, 1))}
    with pytest.raises(DuplicateLayerError, match=r"AdaptiveLayer\('a', x \(\d+, \d+\)\)"):
        log_density(model, (), {}, params)


# ----------------------------------------------------------------------------- registry
def test_registry_builds_first_party_layers():
    adaptive = blayers_core.layer("adaptive")
    assert isinstance(adaptive, AdaptiveLayer)
    fm = blayers_core.layer("fm", low_rank_dim=3)
    assert isinstance(fm, FMLayer)
    assert fm.low_rank_dim == 3
    assert isinstance(blayers_core.layer("fixed_prior"), FixedPriorLayer)
    lr = blayers_core.layer("lowrank_interaction", low_rank_dim=2)
    assert isinstance(lr, LowRankInteractionLayer)
    assert lr.low_rank_dim == 2
    # The configured layer samples under the name it is called with.
    assert set(trace(lambda: fm("f", _x()))) == {"f/scale", "f/theta"}


def test_registry_passes_config_to_the_constructor_validation():
    with pytest.raises(ValueError, match="low_rank_dim"):
        blayers_core.layer("fm", low_rank_dim=0)


def test_shorthand_call_equals_instance_call():
    x = _x()
    short = _run(lambda: AdaptiveLayer("x", x), seed=3)
    explicit = _run(lambda: AdaptiveLayer()("x", x), seed=3)
    np.testing.assert_array_equal(short, explicit)
    short3 = _run(lambda: AdaptiveLayer("x", x, units=3), seed=4)
    explicit3 = _run(lambda: AdaptiveLayer()("x", x, units=3), seed=4)
    assert short3.shape == (N, 3)
    np.testing.assert_array_equal(short3, explicit3)
    assert set(trace(lambda: AdaptiveLayer("x", x))) == {"x/scale", "x/beta"}


# ----------------------------------------------------------------------------- bad input
def test_scale_prior_on_the_real_line_is_rejected():
    with pytest.raises(ValueError, match=r"scale_prior.*positive reals"):
        AdaptiveLayer(scale_prior=dist.Normal(0.0, 1.0))
    with pytest.raises(ValueError, match="scale_prior"):
        FMLayer(low_rank_dim=2, scale_prior=dist.Normal(0.0, 1.0))
    with pytest.raises(ValueError, match=r"scale_prior.*batch/event shape"):
        AdaptiveLayer(scale_prior=dist.HalfNormal(jnp.ones(3)))
    with pytest.raises(TypeError, match=r"scale_prior.*distribution instance"):
        AdaptiveLayer(scale_prior=dist.HalfNormal)


def test_coef_dist_instance_instead_of_class_is_rejected():
    with pytest.raises(TypeError, match=r"coef_dist.*class.*not an instance"):
        AdaptiveLayer(coef_dist=dist.Normal(0.0, 1.0))
    with pytest.raises(ValueError, match=r"coef_dist.*location-scale"):
        AdaptiveLayer(coef_dist=dist.Gamma)


def test_coef_dist_needing_more_than_loc_and_scale_is_rejected():
    # StudentT(df, loc, scale) cannot be built from a location and a scale alone; the layer
    # would call StudentT(coef_loc, scale), i.e. df=coef_loc and loc=scale.
    with pytest.raises((TypeError, ValueError), match="coef_dist"):
        AdaptiveLayer(coef_dist=dist.StudentT, coef_loc=3.0)


def test_fixed_prior_must_be_on_the_real_line():
    with pytest.raises(ValueError, match=r"coef_prior.*real line"):
        FixedPriorLayer(coef_prior=dist.HalfNormal(1.0))
    with pytest.raises(TypeError, match="coef_prior"):
        FixedPriorLayer(coef_prior=dist.Normal)


@pytest.mark.parametrize("rank", [0, -1, 1.5, True])
def test_low_rank_dim_must_be_a_positive_int(rank):
    with pytest.raises(ValueError, match="low_rank_dim must be a positive int"):
        FMLayer(low_rank_dim=rank)
    with pytest.raises(ValueError, match="low_rank_dim must be a positive int"):
        LowRankInteractionLayer(low_rank_dim=rank)


def test_one_dimensional_x_suggests_a_column():
    with pytest.raises(ValueError, match=r"x must be a 2-D array.*\(5,\).*x\[:, None\]"):
        _run(lambda: AdaptiveLayer()("mu", np.ones(5)))
    with pytest.raises(ValueError, match=r"z must be a 2-D array.*z\[:, None\]"):
        _run(lambda: LowRankInteractionLayer(low_rank_dim=K)("lr", _x(), np.ones(N)))


def test_inputs_with_different_row_counts_are_rejected():
    with pytest.raises(ValueError, match=r"different numbers of rows.*'x': 5.*'z': 4"):
        _run(lambda: LowRankInteractionLayer(low_rank_dim=K)("lr", _x(), _x(d=DZ, n=4)))


@pytest.mark.parametrize("units", [0, -2, 1.0, True])
def test_units_must_be_a_positive_int(units):
    with pytest.raises(ValueError, match="units must be a positive int"):
        _run(lambda: AdaptiveLayer()("mu", _x(), units=units))


def test_wrong_number_of_inputs_and_bad_name():
    with pytest.raises(TypeError, match=r"takes inputs \(x, z\), got 1"):
        _run(lambda: LowRankInteractionLayer(low_rank_dim=K)("lr", _x()))
    with pytest.raises(TypeError, match="site name"):
        _run(lambda: AdaptiveLayer()(_x()))


def test_no_site_is_sampled_when_input_validation_fails():
    def model():
        AdaptiveLayer()("mu", np.ones(5))

    tr = handlers.trace(handlers.seed(model, rng_seed=0))
    with pytest.raises(ValueError):
        tr.get_trace()
    assert tr.trace == {}


# ---------------------------------------------------------------------- shapes, activation
LAYERS = {
    "adaptive": lambda: AdaptiveLayer(),
    "fixed_normal": lambda: FixedPriorLayer(),
    "fixed_laplace": lambda: FixedPriorLayer(coef_prior=dist.Laplace(0.0, 1.0)),
    "fm": lambda: FMLayer(low_rank_dim=K),
    "lowrank": lambda: LowRankInteractionLayer(low_rank_dim=K),
}


def _call(key, layer, units, activation=None):
    inputs = (_x(), _x(1, d=DZ)) if key == "lowrank" else (_x(),)
    return layer("l", *inputs, units=units, activation=activation)


@pytest.mark.parametrize("units", [1, 3])
@pytest.mark.parametrize("key", list(LAYERS))
def test_output_shape_is_rows_by_units(key, units):
    out = _run(lambda: _call(key, LAYERS[key](), units))
    assert out.shape == (N, units)
    assert jnp.all(jnp.isfinite(out))


@pytest.mark.parametrize("key", ["adaptive", "fm"])
def test_activation_is_applied_to_the_output(key):
    plain = _run(lambda: _call(key, LAYERS[key](), 3), seed=5)
    relu = _run(lambda: _call(key, LAYERS[key](), 3, jax.nn.relu), seed=5)
    assert relu.shape == (N, 3)
    assert jnp.all(relu >= 0)
    assert jnp.any(plain < 0)  # so the check above means something
    np.testing.assert_allclose(relu, np.maximum(plain, 0.0))


def test_integer_and_boolean_inputs_are_used_as_floats():
    x_int = np.arange(N * D).reshape(N, D) % 3
    params = {"mu/beta": _real(_rng(13), (D, 1))}
    out = _run(lambda: FixedPriorLayer()("mu", x_int), data=params)
    assert jnp.issubdtype(out.dtype, jnp.floating)
    np.testing.assert_allclose(out, x_int @ params["mu/beta"], rtol=1e-5)
    out_bool = _run(lambda: FixedPriorLayer()("mu", x_int > 0), data=params)
    np.testing.assert_allclose(out_bool, (x_int > 0) @ params["mu/beta"], rtol=1e-5)
