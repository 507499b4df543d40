"""``FitResult.predict``: chunked posterior predictive summaries, checked against posterior draws.

The results here are built from hand-made posterior draws, so the expected values follow from the
draws by hand: ``E[y | beta] = x @ beta`` (gaussian), ``exp(x @ beta)`` (poisson) and
``sigmoid(x @ beta)`` (logit).
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from helpers import D, S, features, hand_result
from scipy import special

from blayers_core import DataError


@pytest.mark.parametrize(
    "link_name, inverse",
    [("gaussian", lambda eta: eta), ("poisson", np.exp), ("logit", special.expit)],
)
def test_kind_mean_is_the_inverse_link_of_the_linear_predictor(link_name, inverse):
    result, x = hand_result(link_name), features()
    by_hand = inverse(np.einsum("nd,sd->sn", x, result.posterior_samples["mu/beta"][:, :, 0]))
    # (on a GPU, float32 products default to TF32, about 3 significant digits: ask for full ones)
    with jax.default_matmul_precision("highest"):
        pred = result.predict(x=x, kind="mean", quantiles=(0.1, 0.5, 0.9), return_draws=True)
    np.testing.assert_allclose(pred.draws, by_hand, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(pred.mean, by_hand.mean(0), rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(pred.sd, by_hand.std(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        pred.quantiles, np.quantile(by_hand, [0.1, 0.5, 0.9], axis=0), rtol=1e-4, atol=1e-6
    )
    np.testing.assert_allclose(pred.quantile(0.5), np.median(by_hand, 0), rtol=1e-4, atol=1e-6)


def test_chunked_equals_unchunked_exactly():
    result, x = hand_result("poisson"), features(n=103)
    whole = result.predict(x=x, kind="mean", return_draws=True)
    for chunk_rows in (10, 103):  # a padded last chunk, and one chunk exactly
        part = result.predict(x=x, kind="mean", return_draws=True, chunk_rows=chunk_rows)
        for attr in ("mean", "sd", "quantiles", "draws"):
            np.testing.assert_array_equal(getattr(part, attr), getattr(whole, attr), err_msg=attr)
    # observation draws: same seed and chunking, same draws; another seed, other draws
    a = result.predict(x=x, return_draws=True, chunk_rows=10, seed=3)
    b = result.predict(x=x, return_draws=True, chunk_rows=10, seed=3)
    c = result.predict(x=x, return_draws=True, chunk_rows=10, seed=4)
    np.testing.assert_array_equal(a.draws, b.draws)
    assert not np.array_equal(a.draws, c.draws)


def test_response_draws_follow_the_observation_distribution():
    """Gaussian: the response variance is var(mean) + E[sigma^2]; draws are not kept by default."""
    result, x = hand_result("gaussian"), features(n=400)
    beta = result.posterior_samples["mu/beta"][:, :, 0]
    eta = np.einsum("nd,sd->sn", x, beta)
    expected_var = eta.var(0) + np.mean(result.posterior_samples["obs/sigma"] ** 2)
    pred = result.predict(x=x, seed=0)
    assert pred.draws is None and pred.kind == "response"
    ratio = pred.sd**2 / expected_var
    assert 0.9 < np.mean(ratio) < 1.1  # 200 draws per row, 400 rows
    np.testing.assert_allclose(np.mean(pred.mean - eta.mean(0)), 0.0, atol=0.03)


def test_intervals_hold_the_right_fraction_of_draws():
    result, x = hand_result("gaussian"), features(n=60)
    pred = result.predict(x=x, interval=0.8, return_draws=True, seed=2)
    assert pred.quantile_levels == pytest.approx((0.1, 0.9))
    inside = (pred.draws >= pred.lower) & (pred.draws <= pred.upper)
    np.testing.assert_allclose(inside.mean(0), 0.8, atol=1.5 / S)  # per row, up to interpolation
    assert pred.std is pred.sd


def test_bad_arguments_raise_clear_errors():
    result, x = hand_result("gaussian"), features()
    with pytest.raises(ValueError, match="kind must be"):
        result.predict(x=x, kind="link")
    with pytest.raises(ValueError, match=r"either interval= .* or quantiles="):
        result.predict(x=x, interval=0.9, quantiles=(0.1, 0.9))
    with pytest.raises(ValueError, match="interval must be a probability"):
        result.predict(x=x, interval=90)
    with pytest.raises(ValueError, match="quantiles must be levels in"):
        result.predict(x=x, quantiles=(0.5, 1.5))
    with pytest.raises(ValueError, match="chunk_rows must be a positive int"):
        result.predict(x=x, chunk_rows=0)
    with pytest.raises(ValueError, match="num_samples must be an int between 1 and 200"):
        result.predict(x=x, num_samples=201)
    with pytest.raises(ValueError, match="site 'y' is not observed"):
        result.predict(x=x, site="y")
    with pytest.raises(DataError, match="different numbers of rows"):
        result.predict(x=x, y=np.zeros(3))
    with pytest.raises(DataError, match="row data as keyword arrays"):
        result.predict()
    with pytest.raises(DataError, match="non-finite"):
        result.predict(x=np.full((4, D), np.nan, dtype=np.float32))
    with pytest.raises(KeyError, match=r"quantile 0\.5 was not computed"):
        result.predict(x=x).quantile(0.5)
    with pytest.raises(ValueError, match="no quantiles were computed"):
        _ = result.predict(x=x, quantiles=()).lower


def test_kind_mean_of_a_categorical_link_is_the_class_probabilities():
    from blayers_core import FitResult, layer, link

    linear, categorical = layer("fixed_prior"), link("categorical")

    def model(x, y=None):
        return categorical(linear("mu", x, units=4), y)

    beta = np.random.default_rng(3).normal(size=(50, D, 4)).astype(np.float32)
    result = FitResult(
        model=model,
        guide=None,
        params={},
        losses=np.zeros(0),
        posterior_samples={"mu/beta": beta},
        observed_sites=("obs",),
        constants={},
        num_rows=10,
    )
    x = features(n=10)
    probs = special.softmax(np.einsum("nd,sdk->snk", x, beta), axis=2)
    pred = result.predict(x=x, kind="mean", quantiles=())
    np.testing.assert_allclose(pred.mean, probs.mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(pred.mean.sum(1), 1.0, rtol=1e-5)


def test_quantiles_computed_on_an_accelerator_equal_those_from_numpy(monkeypatch):
    """On the CPU NumPy computes the quantiles; on a GPU the compiled program does. Where they are
    computed is part of the chunk program's cache key, so the second call builds its own."""
    import jax

    result, x = hand_result("gaussian"), features()
    host = result.predict(x=x, kind="mean", quantiles=(0.1, 0.5, 0.9), chunk_rows=10)
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    device = result.predict(x=x, kind="mean", quantiles=(0.1, 0.5, 0.9), chunk_rows=10)
    np.testing.assert_allclose(device.quantiles, host.quantiles, rtol=1e-6)
    assert device.draws is None and host.draws is None
