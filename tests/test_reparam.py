"""autoreshape and autoreparam: opt-in model decorators, checked against hand-written NumPyro."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from helpers import assert_same_log_joint, trace
from numpyro import handlers
from numpyro.infer import Predictive
from numpyro.infer.util import log_density
from scipy import stats

from blayers_plugins import AdaptiveLayer, gaussian_link_exp
from blayers_plugins.layers.index import RandomEffectsLayer
from blayers_plugins.reparam import autoreparam, autoreshape

N, D, C = 6, 2, 3


def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, D)).astype(np.float32)
    g = rng.integers(0, C, N)
    y = rng.normal(size=N).astype(np.float32)
    return x, g, y


def model(x, g, y=None):
    mu = AdaptiveLayer()("mu", x) + RandomEffectsLayer(num_categories=C)("re", g)
    return gaussian_link_exp(mu, y)


def _sites(tr, kind: str) -> set[str]:
    return {name for name, site in tr.items() if site["type"] == kind}


# ----------------------------------------------------------------------------- autoreshape
def test_autoreshape_turns_one_dimensional_arrays_into_columns():
    seen = {}

    @autoreshape
    def fn(a, b, c=None, d=None, e=None, f=None):
        """Docstring kept."""
        seen.update(a=a, b=b, c=c, d=d, e=e, f=f)
        return "done"

    vector, matrix = np.arange(4.0), np.ones((4, 2))
    assert fn(vector, matrix, c=jnp.arange(4), d=3.0, e=[1, 2], f=None) == "done"
    assert isinstance(seen["a"], np.ndarray) and seen["a"].shape == (4, 1)
    np.testing.assert_array_equal(seen["a"][:, 0], vector)
    assert seen["b"] is matrix  # other ranks are passed unchanged
    assert isinstance(seen["c"], jax.Array) and seen["c"].shape == (4, 1)
    assert seen["d"] == 3.0 and seen["e"] == [1, 2] and seen["f"] is None
    assert fn.__name__ == "fn" and fn.__doc__ == "Docstring kept."
    scalar = np.float32(2.0)
    fn(scalar, np.zeros((2, 2, 2)))
    assert seen["a"] is scalar and seen["b"].shape == (2, 2, 2)


def test_autoreshape_under_jit_and_with_a_layer():
    @autoreshape
    def fn(x, y=None):
        return AdaptiveLayer()("mu", x), y

    x, y = np.linspace(-1, 1, N).astype(np.float32), np.zeros(N, np.float32)
    out, y_seen = handlers.seed(fn, 0)(x, y=y)
    assert out.shape == (N, 1) and y_seen.shape == (N, 1)
    with pytest.raises(ValueError, match=r"x\[:, None\]"):  # the layer alone never reshapes
        handlers.seed(lambda: AdaptiveLayer()("mu", x), 0)()
    jitted = jax.jit(lambda x: handlers.seed(fn, 0)(x)[0])
    np.testing.assert_allclose(jitted(x), out, rtol=1e-6)

    # A 1-D target becomes (n, 1) too, and the link matches it with the (n, 1) predictor.
    wrapped = autoreshape(lambda x, y=None: gaussian_link_exp(AdaptiveLayer()("mu", x), y))
    tr = handlers.trace(handlers.seed(wrapped, 0)).get_trace(x, y=y)
    assert tr["obs"]["is_observed"] and tr["obs"]["value"].shape == (N, 1)


# ----------------------------------------------------------------------------- autoreparam
def test_autoreparam_decentres_every_eligible_latent_site_and_never_the_observed_one():
    x, g, y = _data()
    tr = trace(lambda: autoreparam(model)(x, g, y))
    assert _sites(tr, "deterministic") == {"mu/beta", "re/theta"}
    decentred = {"mu/beta_decentered", "re/theta_decentered"}
    assert decentred <= _sites(tr, "sample")
    # Scales (HalfNormal), the noise scale (Exponential) and the observed site are untouched.
    assert tr["mu/scale"]["type"] == tr["re/scale"]["type"] == tr["obs/sigma"]["type"] == "sample"
    assert tr["obs"]["type"] == "sample" and tr["obs"]["is_observed"]
    np.testing.assert_array_equal(tr["obs"]["value"], y)
    assert not any(name.startswith("obs") and "decentered" in name for name in tr)
    for name in decentred:  # standard normal noise, one event per site
        fn = tr[name]["fn"]
        assert fn.batch_shape == () and not tr[name]["is_observed"]
        base = fn.base_dist.base_dist if isinstance(fn, dist.Independent) else fn
        np.testing.assert_allclose(base.loc, 0.0)
        np.testing.assert_allclose(base.scale, 1.0)
    # The original value is loc + scale * noise.
    np.testing.assert_allclose(
        tr["re/theta"]["value"],
        tr["re/scale"]["value"] * tr["re/theta_decentered"]["value"],
        rtol=1e-6,
    )


def test_autoreparam_log_density_is_the_hand_written_noncentred_model():
    x, g, y = _data(1)
    rng = np.random.default_rng(2)
    params = {
        "mu/scale": rng.uniform(0.5, 2.0, (1,)).astype(np.float32),
        "mu/beta_decentered": rng.normal(size=(D, 1)).astype(np.float32),
        "re/scale": rng.uniform(0.5, 2.0, (1,)).astype(np.float32),
        "re/theta_decentered": rng.normal(size=(C, 1)).astype(np.float32),
        "obs/sigma": np.float32(0.7),
    }

    def reference(x, g, y):
        hn = dist.HalfNormal(1.0).expand([1]).to_event(1)
        s_mu = numpyro.sample("mu/scale", hn)
        z_mu = numpyro.sample("mu/beta_decentered", dist.Normal(0, 1).expand([D, 1]).to_event(2))
        s_re = numpyro.sample("re/scale", hn)
        z_re = numpyro.sample("re/theta_decentered", dist.Normal(0, 1).expand([C, 1]).to_event(2))
        mu = x @ (s_mu * z_mu) + (s_re * z_re)[g]
        sigma = numpyro.sample("obs/sigma", dist.Exponential(1.0))
        numpyro.sample("obs", dist.Normal(mu[:, 0], sigma), obs=y)

    assert_same_log_joint(autoreparam(model), reference, params, x, g, y)


def test_autoreparam_keeps_the_prior_of_the_original_sites():
    x, g, _ = _data(3)

    def draws(fn, seed):
        samples = Predictive(fn, num_samples=4000)(jax.random.PRNGKey(seed), x, g)
        return {k: np.asarray(v) for k, v in samples.items()}

    plain, reparam = draws(model, 0), draws(autoreparam(model), 1)
    for site in ("mu/beta", "re/theta"):
        a, b = plain[site][..., 0], reparam[site][..., 0]
        assert a.shape == b.shape
        # beta = scale * z with scale ~ HalfNormal(1): mean 0, variance 1, E|beta| = 2/pi.
        for draw in (a, b):
            np.testing.assert_allclose(draw.mean(0), 0.0, atol=0.06)
            np.testing.assert_allclose(draw.var(0), 1.0, atol=0.12)
            np.testing.assert_allclose(np.abs(draw).mean(), 2 / np.pi, atol=0.03)
        assert stats.ks_2samp(a[:, 0], b[:, 0]).pvalue > 1e-3
    # The predictive distribution of the observations is unchanged as well.
    np.testing.assert_allclose(plain["obs"].std(), reparam["obs"].std(), rtol=0.1)


def test_named_sites_only_change_those_sites():
    x, g, y = _data()
    tr = trace(lambda: autoreparam(model, sites=["re/theta"])(x, g, y))
    assert "re/theta_decentered" in tr and tr["re/theta"]["type"] == "deterministic"
    assert "mu/beta_decentered" not in tr and tr["mu/beta"]["type"] == "sample"
    assert set(tr) == set(trace(lambda: model(x, g, y))) | {"re/theta_decentered"}


def test_predicate_selects_among_eligible_sites():
    x, g, y = _data()
    tr = trace(lambda: autoreparam(model, sites=lambda name: name.startswith("mu/"))(x, g, y))
    assert "mu/beta_decentered" in tr and "re/theta_decentered" not in tr
    # The predicate never reaches ineligible or observed sites: selecting everything is safe.
    tr_all = trace(lambda: autoreparam(model, sites=lambda name: True)(x, g, y))
    assert _sites(tr_all, "deterministic") == {"mu/beta", "re/theta"}


def test_decorator_forms_and_wrapping_keep_the_model_name():
    @autoreparam
    def plain(x, g, y=None):
        return model(x, g, y)

    @autoreparam(sites=["mu/beta"])
    def named(x, g, y=None):
        return model(x, g, y)

    x, g, y = _data()
    assert plain.__name__ == "plain" and named.__name__ == "named"
    assert "re/theta_decentered" in trace(lambda: plain(x, g, y))
    assert "re/theta_decentered" not in trace(lambda: named(x, g, y))


def test_studentt_laplace_cauchy_are_decentred_and_others_are_not():
    def fn():
        numpyro.sample("t", dist.StudentT(4.0, 1.0, 2.0).expand([3]).to_event(1))
        numpyro.sample("l", dist.Laplace(0.5, 0.3))
        numpyro.sample("c", dist.Cauchy(0.0, 2.0).expand([2]))
        numpyro.sample("n", dist.Normal(1.0, 2.0))
        numpyro.sample("g", dist.Gamma(2.0, 1.0))
        numpyro.sample("h", dist.HalfCauchy(1.0))

    noise = {  # fixed noise values: no (slow to compile) StudentT or Gamma draws
        "t_decentered": np.array([0.5, -1.0, 2.0], np.float32),
        "l_decentered": np.float32(0.3),
        "c_decentered": np.array([1.0, -0.2], np.float32),
        "n_decentered": np.float32(-0.7),
        "g": np.float32(1.5),
        "h": np.float32(0.4),
    }
    tr = trace(handlers.substitute(autoreparam(fn), data=noise))
    assert _sites(tr, "deterministic") == {"t", "l", "c", "n"}
    assert {"g", "h"} <= _sites(tr, "sample") and "g_decentered" not in tr
    t_noise = tr["t_decentered"]["fn"].base_dist.base_dist
    assert isinstance(t_noise, dist.StudentT) and float(t_noise.df) == 4.0  # df kept
    assert float(t_noise.loc) == 0.0 and float(t_noise.scale) == 1.0
    np.testing.assert_allclose(tr["t"]["value"], 1.0 + 2.0 * noise["t_decentered"])
    np.testing.assert_allclose(tr["n"]["value"], 1.0 + 2.0 * noise["n_decentered"])
    assert isinstance(tr["l_decentered"]["fn"], dist.Laplace)
    assert tr["c_decentered"]["fn"].batch_shape == (2,)


def test_partial_and_learned_centring():
    def fn():
        numpyro.sample("n", dist.Normal(1.0, 2.0))

    tr = trace(autoreparam(fn, centered=0.5))
    noise = tr["n_decentered"]["fn"]
    np.testing.assert_allclose([noise.loc, noise.scale], [0.5, 2.0**0.5], rtol=1e-6)
    tr_learned = trace(autoreparam(fn, centered=None))
    assert tr_learned["n_centered"]["type"] == "param"
    assert tr_learned["n"]["type"] == "deterministic"
    tr_unchanged = trace(autoreparam(fn, centered=1.0))
    assert tr_unchanged["n"]["type"] == "sample" and "n_decentered" not in tr_unchanged


def test_reparameterised_log_density_compiles_and_has_gradients():
    x, g, y = _data()
    reparam_model = autoreparam(model)
    params = {
        name: site["value"]
        for name, site in trace(lambda: reparam_model(x, g, y)).items()
        if site["type"] == "sample" and not site["is_observed"]
    }
    assert set(params) == {
        "mu/scale",
        "mu/beta_decentered",
        "re/scale",
        "re/theta_decentered",
        "obs/sigma",
    }

    def log_joint(p):
        return log_density(reparam_model, (x, g, y), {}, p)[0]

    value, grads = jax.jit(jax.value_and_grad(log_joint))(params)
    np.testing.assert_allclose(value, log_joint(params), rtol=1e-5)
    assert set(grads) == set(params)
    assert all(np.isfinite(np.asarray(v)).all() for v in grads.values())


def test_scopes_inside_and_outside_the_wrapper_name_the_auxiliary_site_once():
    def fn():
        with handlers.scope(prefix="a"), handlers.scope(prefix="b", divider="."):
            numpyro.sample("x", dist.Normal(1.0, 2.0))

    tr = trace(handlers.scope(autoreparam(fn, sites=["a/b.x"]), prefix="outer"))
    assert set(tr) == {"outer/a/b.x", "outer/a/b.x_decentered"}
    assert tr["outer/a/b.x"]["type"] == "deterministic"
    learned = trace(autoreparam(fn, centered=None))
    assert learned["a/b.x_centered"]["type"] == "param"


# ----------------------------------------------------------------------------- bad input
def test_named_sites_that_cannot_be_reparameterised_raise():
    x, g, y = _data()
    with pytest.raises(ValueError, match=r"'re/scale' has a HalfNormal prior.*location-scale"):
        trace(lambda: autoreparam(model, sites=["re/scale"])(x, g, y))
    with pytest.raises(ValueError, match=r"'obs' is observed"):
        trace(lambda: autoreparam(model, sites=["obs"])(x, g, y))
    with pytest.raises(ValueError, match=r"\['re/thta'\].*samples no such site"):
        trace(lambda: autoreparam(model, sites=["re/theta", "re/thta"])(x, g, y))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"sites": "re/theta"}, TypeError, r"for one site pass a list, sites=\['re/theta'\]"),
        ({"sites": 3}, TypeError, "sites must be None, an iterable"),
        ({"sites": [1, 2]}, TypeError, "site names"),
        ({"centered": 1.5}, ValueError, r"centered must be in \[0, 1\]"),
        ({"centered": -0.1}, ValueError, r"centered must be in \[0, 1\]"),
        ({"centered": "0"}, TypeError, "centered must be a number"),
        ({"centered": True}, TypeError, "centered must be a number"),
    ],
)
def test_bad_arguments_raise_when_the_wrapper_is_built(kwargs, error, match):
    with pytest.raises(error, match=match):
        autoreparam(model, **kwargs)
    with pytest.raises(error, match=match):
        autoreparam(**kwargs)
