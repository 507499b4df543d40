"""Shrinkage layers (horseshoe, horseshoe_interaction, mixture) against hand-written NumPyro,
scipy densities and naive loops. Shapes are tiny; only the recovery test compiles."""

from __future__ import annotations

import itertools

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
from numpyro.distributions import constraints
from numpyro.infer.util import log_density
from scipy import special, stats

import blayers_core
from blayers_plugins.layers.shrinkage import (
    HorseshoeInteractionLayer,
    HorseshoeLayer,
    MixtureLayer,
)
from blayers_plugins.links import gaussian_link_exp

N, D = 5, 3


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _x(seed: int = 0, n: int = N, d: int = D) -> np.ndarray:
    return _rng(seed).normal(size=(n, d)).astype(np.float32)


def _horseshoe_params(rng, prefix: str, p: int, units: int, slab: bool, centered: bool) -> dict:
    params = {
        f"{prefix}/tau": _positive(rng, (units,)),
        f"{prefix}/lambda": _positive(rng, (p, units)),
        f"{prefix}/{'beta' if centered else 'z'}": _real(rng, (p, units)),
    }
    if slab:
        params[f"{prefix}/c2"] = _positive(rng, (units,))
    return params


def _horseshoe_reference(prefix: str, p: int, units: int, tau0, slab_scale, slab_df, centered):
    """The horseshoe written out with explicit sites and math."""
    tau = numpyro.sample(f"{prefix}/tau", dist.HalfCauchy(tau0).expand([units]).to_event(1))
    lam = numpyro.sample(f"{prefix}/lambda", dist.HalfCauchy(1.0).expand([p, units]).to_event(2))
    if slab_scale is not None:
        c2 = numpyro.sample(
            f"{prefix}/c2",
            dist.InverseGamma(slab_df / 2, slab_df / 2 * slab_scale**2).expand([units]).to_event(1),
        )
        lam = jnp.sqrt(c2 * lam**2 / (c2 + tau**2 * lam**2))
    if centered:
        return numpyro.sample(f"{prefix}/beta", dist.Normal(0.0, tau * lam).to_event(2))
    z = numpyro.sample(f"{prefix}/z", dist.Normal(0.0, 1.0).expand([p, units]).to_event(2))
    return tau * lam * z


# --------------------------------------------------------------------------------- horseshoe
@pytest.mark.parametrize(
    ("units", "slab_scale", "centered"),
    [(1, None, True), (2, 2.0, True), (2, None, False), (1, 2.0, False)],
    ids=["plain-centered", "slab-centered", "plain-noncentered", "slab-noncentered"],
)
def test_horseshoe_log_joint_and_output_match_hand_written_model(units, slab_scale, centered):
    layer = HorseshoeLayer(tau0=0.3, slab_scale=slab_scale, slab_df=5.0, centered=centered)
    x = _x(1)
    params = _horseshoe_params(_rng(2), "hs", D, units, slab_scale is not None, centered)

    def model(x):
        return layer("hs", x, units=units)

    def reference(x):
        beta = _horseshoe_reference("hs", D, units, 0.3, slab_scale, 5.0, centered)
        return x @ beta

    assert_same_log_joint(model, reference, params, x)
    out = _run(lambda: model(x), data=params)
    expected = _run(lambda: reference(x), data=params)
    assert out.shape == (N, units)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    sites = set(trace(lambda: model(x)))
    assert ("hs/c2" in sites) == (slab_scale is not None)
    assert ("hs/z" in sites) == (not centered)


def test_horseshoe_density_and_slab_written_with_numpy_and_scipy():
    """Independent of NumPyro's distributions: scipy densities, lambda-tilde in float64."""
    x = _x(3)
    params = _horseshoe_params(_rng(4), "hs", D, 2, slab=True, centered=True)
    tau, lam, c2, beta = (
        params[f"hs/{k}"].astype(np.float64) for k in ("tau", "lambda", "c2", "beta")
    )
    lam_tilde = np.sqrt(c2 * lam**2 / (c2 + tau**2 * lam**2))
    expected = (
        stats.halfcauchy.logpdf(tau, scale=0.5).sum()
        + stats.halfcauchy.logpdf(lam).sum()
        + stats.invgamma.logpdf(c2, 2.0, scale=2.0 * 1.5**2).sum()
        + stats.norm.logpdf(beta, 0.0, tau * lam_tilde).sum()
    )
    layer = HorseshoeLayer(tau0=0.5, slab_scale=1.5)  # slab_df = 4 by default
    lp, _ = log_density(lambda x: layer("hs", x, units=2), (x,), {}, params)
    np.testing.assert_allclose(float(lp), expected, rtol=1e-5)
    # Non-centred: beta is recorded as a deterministic site equal to tau * lambda-tilde * z.
    z = _real(_rng(5), (D, 2))
    noncentered = HorseshoeLayer(tau0=0.5, slab_scale=1.5, centered=False)
    data = {k: v for k, v in params.items() if k != "hs/beta"} | {"hs/z": z}
    tr = handlers.trace(handlers.substitute(handlers.seed(noncentered, 0), data=data)).get_trace(
        "hs", x, units=2
    )
    np.testing.assert_allclose(tr["hs/beta"]["value"], tau * lam_tilde * z, rtol=1e-5)
    assert tr["hs/beta"]["type"] == "deterministic"


@pytest.mark.parametrize("units", [1, 2])
def test_horseshoe_interaction_uses_every_pair_once(units):
    d = 4
    pairs = d * (d - 1) // 2
    layer = HorseshoeInteractionLayer(slab_scale=1.0)
    x = _x(6, d=d)
    params = _horseshoe_params(_rng(7), "hi", pairs, units, slab=True, centered=True)

    def model(x):
        return layer("hi", x, units=units)

    def reference(x):
        _horseshoe_reference("hi", pairs, units, 1.0, 1.0, 4.0, True)

    assert_same_log_joint(model, reference, params, x)
    out = _run(lambda: model(x), data=params)
    beta = params["hi/beta"]
    expected = np.zeros((N, units))
    for n, c in itertools.product(range(N), range(units)):
        for p, (i, j) in enumerate(itertools.combinations(range(d), 2)):
            expected[n, c] += beta[p, c] * x[n, i] * x[n, j]
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"tau0": 0.0}, "tau0 must be a positive number"),
        ({"tau0": None}, "tau0 must be a positive number"),
        ({"slab_scale": -1.0}, "slab_scale must be a positive number or None"),
        ({"slab_df": float("inf")}, "slab_df must be a positive number"),
    ],
)
def test_horseshoe_config_is_validated(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        HorseshoeLayer(**kwargs)
    with pytest.raises(ValueError, match=pattern):
        HorseshoeInteractionLayer(**kwargs)


def test_horseshoe_input_checks():
    with pytest.raises(TypeError, match="centered must be True or False"):
        HorseshoeLayer(centered=1)
    with pytest.raises(ValueError, match=r"x must have at least 2 columns.*\(5, 1\)"):
        _run(lambda: HorseshoeInteractionLayer()("hi", _x(d=1)))
    with pytest.raises(ValueError, match=r"x must be a 2-D array.*x\[:, None\]"):
        _run(lambda: HorseshoeLayer()("hs", np.ones(N)))


# ----------------------------------------------------------------------------------- mixture
def _mixture_reference(prefix, components, weights, weight_scale, shape):
    """Explicit marginal density log sum_k w_k p_k(beta), added with a factor."""
    k = len(components)
    if weights is None:
        logits = numpyro.sample(
            f"{prefix}/logits", dist.Normal(0.0, weight_scale).expand([k]).to_event(1)
        )
        log_w = jax.nn.log_softmax(logits)
    else:
        log_w = jnp.log(jnp.asarray(weights))
    beta = numpyro.sample(f"{prefix}/beta", dist.ImproperUniform(constraints.real, (), shape))
    per_component = jnp.stack([c.log_prob(beta) for c in components], axis=-1)
    numpyro.factor(
        f"{prefix}/mixture", jax.scipy.special.logsumexp(per_component + log_w, -1).sum()
    )
    return beta


MIXTURES = {
    "normal_laplace_learned": ((dist.Normal(0.0, 1.0), dist.Laplace(0.0, 1.0)), None),
    "spike_slab_learned": ((dist.Normal(0.0, 0.1), dist.Normal(0.5, 3.0)), None),
    "three_fixed": (
        (dist.Normal(0.0, 0.2), dist.StudentT(3.0, 0.0, 1.0), dist.Cauchy(1.0, 2.0)),
        (0.5, 0.3, 0.2),
    ),
}


@pytest.mark.parametrize("key", list(MIXTURES))
def test_mixture_log_joint_matches_explicit_log_sum_exp(key):
    components, weights = MIXTURES[key]
    units = 2
    layer = MixtureLayer(component_dists=components, weights=weights, weight_scale=0.7)
    x = _x(8)
    rng = _rng(9)
    params = {"mx/beta": _real(rng, (D, units))}
    if weights is None:
        params["mx/logits"] = _real(rng, (len(components),))

    def model(x):
        return layer("mx", x, units=units)

    def reference(x):
        _mixture_reference("mx", components, weights, 0.7, (D, units))

    assert_same_log_joint(model, reference, params, x)
    out = _run(lambda: model(x), data=params)
    np.testing.assert_allclose(out, x @ params["mx/beta"], rtol=1e-5, atol=1e-6)
    assert ("mx/logits" in trace(lambda: model(x))) == (weights is None)


def test_mixture_density_written_with_scipy():
    beta = _real(_rng(10), (D, 2)).astype(np.float64)
    logits = np.array([0.3, -0.4])
    w = special.softmax(logits)
    expected = (
        stats.norm.logpdf(logits, 0.0, 1.0).sum()
        + special.logsumexp(
            np.stack([stats.norm.logpdf(beta), stats.laplace.logpdf(beta)], -1) + np.log(w), axis=-1
        ).sum()
    )
    lp, _ = log_density(
        lambda x: MixtureLayer()("mx", x, units=2),
        (_x(),),
        {},
        {"mx/beta": beta.astype(np.float32), "mx/logits": logits.astype(np.float32)},
    )
    np.testing.assert_allclose(float(lp), expected, rtol=1e-5)


def test_mixture_chooses_same_family_or_general():
    x = _x()

    def prior_of(layer):
        fn = trace(lambda: layer("mx", x))["mx/beta"]["fn"]
        return fn.base_dist.base_dist  # Independent(Expanded(mixture))

    same = MixtureLayer(component_dists=[dist.Normal(0.0, 0.1), dist.Normal(0.0, 2.0)])
    assert isinstance(prior_of(same), dist.MixtureSameFamily)
    assert isinstance(prior_of(MixtureLayer()), dist.MixtureGeneral)
    assert same.component_dists[1].scale == 2.0  # the list became a tuple


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"component_dists": (dist.Normal(0.0, 1.0),)}, ValueError, "at least 2"),
        ({"component_dists": dist.Normal(0.0, 1.0)}, ValueError, "component_dists must be a tuple"),
        (
            {"component_dists": (dist.Normal(0.0, 1.0), dist.HalfNormal(1.0))},
            ValueError,
            r"component_dists\[1\] must be a scalar distribution on the real line",
        ),
        (
            {"component_dists": (dist.Normal(jnp.zeros(2), 1.0), dist.Laplace(0.0, 1.0))},
            ValueError,
            r"component_dists\[0\].*batch/event shape \(2,\)/\(\)",
        ),
        (
            {"component_dists": (dist.Normal, dist.Laplace(0.0, 1.0))},
            TypeError,
            r"component_dists\[0\] must be a numpyro distribution instance",
        ),
        ({"weights": (0.2, 0.3, 0.5)}, ValueError, "weights must be None .* or 2 numbers"),
        ({"weights": (0.5, 0.6)}, ValueError, "weights must sum to 1"),
        ({"weights": (1.0, 0.0)}, ValueError, "weights must all be positive"),
        ({"weights": (1.5, -0.5)}, ValueError, "weights must all be positive"),
        ({"weights": "ab"}, ValueError, "weights must be None"),
        ({"weight_scale": 0.0}, ValueError, "weight_scale must be a positive number"),
    ],
)
def test_mixture_config_is_validated(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        MixtureLayer(**kwargs)


def test_mixture_weights_as_an_array_are_accepted():
    components = (dist.Normal(0.0, 1.0), dist.Normal(0.0, 3.0))
    layer = MixtureLayer(component_dists=components, weights=np.array([0.25, 0.75]))
    assert layer.weights == (0.25, 0.75)  # a tuple of floats: the layer stays comparable
    assert layer == MixtureLayer(component_dists=list(components), weights=[0.25, 0.75])


# ------------------------------------------------------------------------ registry, shapes
def test_registry_builds_the_shrinkage_layers():
    assert isinstance(blayers_core.layer("horseshoe", slab_scale=2.0), HorseshoeLayer)
    assert isinstance(blayers_core.layer("horseshoe_interaction"), HorseshoeInteractionLayer)
    assert isinstance(blayers_core.layer("mixture", weights=(0.5, 0.5)), MixtureLayer)


@pytest.mark.parametrize(
    "make",
    [lambda: HorseshoeLayer(slab_scale=1.0), HorseshoeInteractionLayer, MixtureLayer],
    ids=["horseshoe", "horseshoe_interaction", "mixture"],
)
def test_units_and_activation(make):
    plain = _run(lambda: make()("l", _x(), units=3), seed=2)
    relu = _run(lambda: make()("l", _x(), units=3, activation=jax.nn.relu), seed=2)
    assert plain.shape == relu.shape == (N, 3)
    np.testing.assert_allclose(relu, np.maximum(plain, 0.0))


# ---------------------------------------------------------------------------------- recovery
@pytest.mark.slow
def test_horseshoe_keeps_large_coefficients_and_shrinks_the_rest():
    rng = _rng(31)
    true_beta = np.zeros(10)
    true_beta[[0, 3, 7]] = [2.0, -1.5, 1.0]
    x = rng.normal(size=(100, true_beta.size)).astype(np.float32)
    y = (x @ true_beta + rng.normal(size=100)).astype(np.float32)

    def model(x, y=None):
        return gaussian_link_exp(HorseshoeLayer(tau0=0.1)("hs", x), y)

    steps = 1500
    result = blayers_core.fit(
        model,
        x=x,
        y=y,
        num_steps=steps,
        lr=optax.cosine_decay_schedule(0.03, steps),
        progress_bar=False,
    )
    beta = site_summary(result, "hs/beta")
    least_squares = np.linalg.lstsq(x, y, rcond=None)[0]
    signal = true_beta != 0
    # Large coefficients are left almost unshrunk (close to least squares and to the truth) ...
    np.testing.assert_allclose(beta[signal], least_squares[signal], atol=0.15)
    np.testing.assert_allclose(beta[signal], true_beta[signal], atol=0.3)
    # ... while the null ones are pulled towards zero, well below least squares' noise.
    assert np.abs(beta[~signal]).max() < 0.15
    assert np.abs(beta[~signal]).sum() < 0.7 * np.abs(least_squares[~signal]).sum()
