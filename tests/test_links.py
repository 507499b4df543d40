"""The Gaussian link, checked against hand-written NumPyro models and scipy densities."""

from __future__ import annotations

import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from helpers import assert_same_log_joint, trace
from numpyro import handlers
from numpyro.infer.util import log_density
from scipy import stats

import blayers_core
from blayers_plugins import AdaptiveLayer, GaussianLink, gaussian_link_exp

N, D = 6, 2


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, D)).astype(np.float32)
    y = rng.normal(size=N).astype(np.float32)
    return x, y


def _params(seed: int = 1, **extra: object) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "mu/scale": rng.uniform(0.5, 2.0, size=(1,)).astype(np.float32),
        "mu/beta": rng.normal(size=(D, 1)).astype(np.float32),
        **extra,
    }


def _reference_layer(x):
    scale = numpyro.sample("mu/scale", dist.HalfNormal(1.0).expand([1]).to_event(1))
    beta = numpyro.sample("mu/beta", dist.Normal(0.0, scale).expand([D, 1]).to_event(2))
    return x @ beta


# ---------------------------------------------------------------------------------- log joints
def test_learned_sigma_log_joint_matches_hand_written_model():
    link, layer = GaussianLink(), AdaptiveLayer()
    x, y = _data()
    params = _params(**{"obs/sigma": np.float32(0.8)})

    def model(x, y):
        return link(layer("mu", x), y)

    def reference(x, y):
        mu = _reference_layer(x)
        sigma = numpyro.sample("obs/sigma", dist.Exponential(1.0))
        return numpyro.sample("obs", dist.Normal(mu[:, 0], sigma), obs=y)

    lp = assert_same_log_joint(model, reference, params, x, y)
    # And with scipy, independent of NumPyro's distributions.
    mu = x.astype(np.float64) @ params["mu/beta"].astype(np.float64)
    expected = (
        stats.halfnorm.logpdf(params["mu/scale"]).sum()
        + stats.norm.logpdf(params["mu/beta"], 0.0, params["mu/scale"]).sum()
        + stats.expon.logpdf(0.8)
        + stats.norm.logpdf(y, mu[:, 0], 0.8).sum()
    )
    np.testing.assert_allclose(lp, expected, rtol=1e-5)


def test_custom_sigma_prior_log_joint_matches_hand_written_model():
    link, layer = GaussianLink(sigma_prior=dist.Gamma(2.0, 3.0)), AdaptiveLayer()
    x, y = _data(2)
    params = _params(3, **{"obs/sigma": np.float32(0.6)})

    def model(x, y):
        return link(layer("mu", x), y)

    def reference(x, y):
        mu = _reference_layer(x)
        sigma = numpyro.sample("obs/sigma", dist.Gamma(2.0, 3.0))
        return numpyro.sample("obs", dist.Normal(mu[:, 0], sigma), obs=y)

    assert_same_log_joint(model, reference, params, x, y)


def test_known_scale_log_joint_matches_hand_written_model_and_has_no_sigma_site():
    link, layer = GaussianLink(scale=0.3), AdaptiveLayer()
    x, y = _data(4)
    params = _params(5)

    def model(x, y):
        return link(layer("mu", x), y)

    def reference(x, y):
        mu = _reference_layer(x)
        return numpyro.sample("obs", dist.Normal(mu[:, 0], 0.3), obs=y)

    assert_same_log_joint(model, reference, params, x, y)
    assert set(trace(lambda: model(x, y))) == {"mu/scale", "mu/beta", "obs"}


def test_link_returns_the_observation_and_samples_around_the_predictor():
    x, y = _data(6)
    tr = trace(lambda: gaussian_link_exp(x[:, :1], y))
    assert tr["obs"]["is_observed"]
    np.testing.assert_array_equal(tr["obs"]["value"], y)
    np.testing.assert_array_equal(tr["obs"]["fn"].loc, x[:, 0])
    # Without y, the observed site is drawn with the same (n,) shape.
    draw = handlers.seed(lambda: GaussianLink(scale=1e-3)(x[:, :1]), rng_seed=0)()
    assert draw.shape == (N,)
    np.testing.assert_allclose(draw, x[:, 0], atol=0.02)


# ------------------------------------------------------------------------------- naming
def test_two_links_have_their_own_sites():
    x, y = _data(7)
    y2 = y + 1.0

    def model():
        mu = AdaptiveLayer()("mu", x)
        GaussianLink(name="y1")(mu, y)
        GaussianLink(name="y2")(mu, y2)

    tr = trace(model)
    assert set(tr) == {"mu/scale", "mu/beta", "y1", "y1/sigma", "y2", "y2/sigma"}
    np.testing.assert_array_equal(tr["y2"]["value"], y2)


def test_same_link_name_twice_raises():
    x, y = _data(8)

    def model():
        gaussian_link_exp(x[:, :1], y)
        gaussian_link_exp(x[:, 1:], y)

    # named before NumPyro's bare assertion: the link, the site and how to fix it
    with pytest.raises(
        blayers_core.DuplicateLayerError, match="already has a site 'obs'"
    ) as raised:
        trace(model)
    assert "name='obs_2'" in str(raised.value)

    def scoped():  # the same name under different scopes is two sites
        with handlers.scope(prefix="a"):
            gaussian_link_exp(x[:, :1], y)
        with handlers.scope(prefix="b"):
            gaussian_link_exp(x[:, 1:], y)

    assert {"a/obs", "b/obs"} <= set(trace(scoped))


@pytest.mark.parametrize("name", ["", "a/b", 3])
def test_link_name_must_be_a_plain_site_name(name):
    with pytest.raises(ValueError, match=r"name must be a non-empty str without '/'"):
        GaussianLink(name=name)


# ----------------------------------------------------------------------------- registry
def test_registry_builds_the_gaussian_link():
    link = blayers_core.link("gaussian")
    assert isinstance(link, GaussianLink)
    assert link.name == "obs"
    configured = blayers_core.link("gaussian", scale=0.5)
    assert configured.scale == 0.5
    x, y = _data(9)
    assert set(trace(lambda: configured(x[:, :1], y))) == {"obs"}
    with pytest.raises(ValueError, match="scale"):
        blayers_core.link("gaussian", scale=-1.0)


def test_registry_link_accepts_the_observed_site_name():
    configured = blayers_core.link("gaussian", name="target")
    assert configured.name == "target"
    x, y = _data(9)
    assert set(trace(lambda: configured(x[:, :1], y))) == {"target", "target/sigma"}


# ------------------------------------------------------------------------ bad input, shapes
@pytest.mark.parametrize("scale", [-1, 0, 0.0, float("nan"), True, "1"])
def test_known_scale_must_be_positive(scale):
    with pytest.raises(ValueError, match="scale must be a positive number"):
        GaussianLink(scale=scale)


def test_sigma_prior_and_scale_are_exclusive():
    with pytest.raises(ValueError, match=r"sigma_prior.*scale.*not both"):
        GaussianLink(scale=1.0, sigma_prior=dist.Exponential(1.0))


def test_sigma_prior_must_be_positive_and_a_distribution():
    with pytest.raises(ValueError, match=r"sigma_prior.*positive reals"):
        GaussianLink(sigma_prior=dist.Normal(0.0, 1.0))
    with pytest.raises(TypeError, match=r"sigma_prior.*distribution instance"):
        GaussianLink(sigma_prior=dist.Exponential)


def test_predictor_column_matches_a_vector_target():
    x, y = _data(10)
    mu = x[:, :1]
    assert mu.shape == (N, 1)
    tr = trace(lambda: gaussian_link_exp(mu, y))
    assert tr["obs"]["value"].shape == (N,)
    assert tr["obs"]["fn"].batch_shape == (N,)
    lp, _ = log_density(lambda: gaussian_link_exp(mu, y), (), {}, {"obs/sigma": np.float32(1.3)})
    expected = stats.expon.logpdf(1.3) + stats.norm.logpdf(y, mu[:, 0], 1.3).sum()
    np.testing.assert_allclose(float(lp), expected, rtol=1e-5)


def test_target_with_two_columns_is_not_broadcast():
    x, _ = _data(11)
    y2 = np.zeros((N, 2), np.float32)
    with pytest.raises(
        ValueError, match=r"y has shape \(6, 2\) but the predictor mu has shape \(6, 1\)"
    ):
        trace(lambda: gaussian_link_exp(x[:, :1], y2))


@pytest.mark.parametrize(
    ("mu_shape", "y_shape"),
    [((N,), (N, 1)), ((N, 1), (N - 1,)), ((N, 3), (N,)), ((N,), (N - 1,))],
)
def test_mismatched_shapes_raise_instead_of_broadcasting(mu_shape, y_shape):
    mu, y = np.zeros(mu_shape, np.float32), np.zeros(y_shape, np.float32)
    with pytest.raises(ValueError, match="never broadcasts"):
        trace(lambda: gaussian_link_exp(mu, y))


def test_no_site_is_sampled_when_shapes_mismatch():
    tr = handlers.trace(
        handlers.seed(lambda: gaussian_link_exp(np.zeros((N, 1)), np.zeros((N, 2))), 0)
    )
    with pytest.raises(ValueError):
        tr.get_trace()
    assert tr.trace == {}


def test_scalar_predictor_is_rejected():
    with pytest.raises(ValueError, match="one value per row"):
        trace(lambda: gaussian_link_exp(np.float32(1.0), np.zeros(N, np.float32)))


def test_multi_unit_predictor_with_matching_target():
    mu = np.arange(N * 3, dtype=np.float32).reshape(N, 3)
    tr = trace(lambda: GaussianLink(scale=1.0)(mu, mu + 0.5))
    assert tr["obs"]["value"].shape == (N, 3)
    np.testing.assert_array_equal(tr["obs"]["fn"].loc, mu)
