"""Reading a fit: ``summary()``, ``repr``, ``sample_prior`` and ``to_arviz()``.

Summaries are checked against NumPy on the draws and, for MCMC diagnostics, against ArviZ's own
R-hat and ESS; the exported log-likelihood against SciPy's normal density.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from helpers import D, S, features, hand_result, linear_model
from scipy import stats

from blayers_core import fit, sample_prior

az = pytest.importorskip("arviz")
ARVIZ_1 = int(az.__version__.split(".")[0]) >= 1


def test_summary_is_a_dataframe_of_every_element():
    result = hand_result("gaussian")
    table = result.summary(interval=0.8)
    beta = np.asarray(result.posterior_samples["mu/beta"], dtype=np.float64)[:, :, 0]
    # (D, 1) coefficients are labelled by their one long axis; a scalar site by its name
    assert list(table.index) == [*(f"mu/beta[{j}]" for j in range(D)), "obs/sigma"]
    assert table.index.name == "parameter"
    assert list(table.columns) == ["mean", "sd", "10%", "90%"]
    np.testing.assert_allclose(table["mean"].iloc[:D], beta.mean(0), rtol=1e-6)
    np.testing.assert_allclose(table["sd"].iloc[:D], beta.std(0), rtol=1e-6)
    np.testing.assert_allclose(table["10%"].iloc[:D], np.quantile(beta, 0.1, axis=0), rtol=1e-6)
    np.testing.assert_allclose(table["90%"].iloc[:D], np.quantile(beta, 0.9, axis=0), rtol=1e-6)
    assert list(result.summary(sites=["obs/sigma"]).index) == ["obs/sigma"]
    with pytest.raises(KeyError, match=r"no posterior site\(s\) \['beta'\]"):
        result.summary(sites=["beta"])
    with pytest.raises(ValueError, match="interval must be a probability"):
        result.summary(interval=1.5)


def test_repr_is_short_and_names_method_rows_and_sites():
    text = repr(hand_result("gaussian"))
    assert text.startswith("FitResult(method='svi', rows=37")
    assert f"mu/beta ({D}, 1)" in text and "obs/sigma ()" in text and "observed: obs" in text
    assert len(text.splitlines()) <= 4 and "array" not in text


def test_sample_prior_draws_latent_and_observed_sites_from_the_prior():
    x = features(n=50)
    prior = sample_prior(linear_model("gaussian"), num_samples=2000, seed=0, x=x)
    assert set(prior) == {"mu/beta", "obs/sigma", "obs"}
    beta, sigma, obs = prior["mu/beta"][:, :, 0], prior["obs/sigma"], prior["obs"]
    assert obs.shape == (2000, 50)
    # beta ~ Normal(0, 1) and sigma ~ Exponential(1): Kolmogorov-Smirnov against the priors
    assert stats.kstest(beta.ravel(), "norm").pvalue > 1e-3
    assert stats.kstest(sigma, "expon").pvalue > 1e-3
    # and obs ~ Normal(x @ beta, sigma) for each draw's own beta and sigma
    z = (obs - beta @ x.T) / sigma[:, None]
    assert stats.kstest(z.ravel()[::7], "norm").pvalue > 1e-3
    np.testing.assert_array_equal(
        sample_prior(linear_model("gaussian"), num_samples=5, seed=3, x=x)["obs"].shape, (5, 50)
    )
    with pytest.raises(ValueError, match="num_samples must be a positive int"):
        sample_prior(linear_model("gaussian"), num_samples=0, x=x)


@pytest.mark.filterwarnings("ignore:Estimated shape parameter")
def test_to_arviz_of_a_vi_fit_is_one_chain_with_pointwise_log_likelihood():
    result, x = hand_result("gaussian"), features(n=40)
    y = (x @ np.full(D, 0.5) + np.random.default_rng(5).normal(size=40)).astype(np.float32)
    data = result.to_arviz(x=x, y=y, seed=1)
    posterior = data["posterior"]
    assert posterior["mu.beta"].shape == (1, S, D, 1)
    np.testing.assert_array_equal(
        np.asarray(posterior["obs.sigma"])[0], result.posterior_samples["obs/sigma"]
    )
    np.testing.assert_array_equal(np.asarray(data["observed_data"]["obs"]), y)
    beta = result.posterior_samples["mu/beta"][:, :, 0]
    sigma = result.posterior_samples["obs/sigma"]
    expected = stats.norm.logpdf(y, beta @ x.T, sigma[:, None])
    np.testing.assert_allclose(np.asarray(data["log_likelihood"]["obs"])[0], expected, rtol=1e-4)
    assert data["posterior_predictive"]["obs"].shape == (1, S, 40)
    # the groups are the ones ArviZ's summary and LOO read
    table = az.summary(data, var_names=["mu.beta"])
    assert len(table) == D
    loo = az.loo(data)
    elpd = loo["elpd"] if ARVIZ_1 else loo["elpd_loo"]
    assert np.isfinite(elpd) and elpd < 0


def test_to_arviz_without_the_target_says_what_is_missing():
    from blayers_core import DataError

    with pytest.raises(DataError, match=r"pass the training data including the target"):
        hand_result("gaussian").to_arviz(x=features())


def test_to_arviz_without_arviz_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "arviz", None)  # makes `import arviz` raise ImportError
    with pytest.raises(ImportError, match=r'pip install "blayers-core\[arviz\]"'):
        hand_result("gaussian").to_arviz()


@pytest.mark.slow
def test_nuts_summary_has_diagnostics_that_agree_with_arviz():
    x = features(n=60, seed=2)
    y = (x @ np.array([1.0, -0.5, 0.25]) + 0.5 * np.random.default_rng(3).normal(size=60)).astype(
        np.float32
    )
    result = fit(
        linear_model("gaussian"),
        x=x,
        y=y,
        method="nuts",
        num_warmup=300,
        num_samples=300,
        num_chains=2,
        progress_bar=False,
    )
    assert "chains=2" in repr(result)
    table = result.summary()
    assert list(table.columns) == ["mean", "sd", "5%", "95%", "r_hat", "ess_bulk", "ess_tail"]
    data = result.to_arviz(x=x, y=y)
    assert data["posterior"]["mu.beta"].shape == (2, 300, D, 1)
    # chains are kept apart: the draws of chain 1 are the second half of posterior_samples
    np.testing.assert_array_equal(
        np.asarray(data["posterior"]["obs.sigma"])[1], result.posterior_samples["obs/sigma"][300:]
    )
    # The summary's R-hat is the classic split R-hat (NumPyro's), ArviZ's method="split".
    rhat = np.asarray(az.rhat(data, method="split")["mu.beta"]).ravel()
    ess = np.asarray(az.ess(data, method="bulk")["mu.beta"]).ravel()
    np.testing.assert_allclose(table["r_hat"].iloc[:D], rhat, atol=1e-4)
    np.testing.assert_allclose(table["ess_bulk"].iloc[:D], ess, rtol=0.15)
    loo = az.loo(data)
    assert np.isfinite(loo["elpd"] if ARVIZ_1 else loo["elpd_loo"])


def test_to_arviz_names_dimensions_and_does_not_depend_on_chunking():
    result, x = hand_result("gaussian"), features(n=40)
    y = np.zeros(40, dtype=np.float32)
    named = result.to_arviz(
        coords={"feature": ["a", "b", "c"], "unit": [0]}, dims={"mu/beta": ["feature", "unit"]}
    )
    assert list(np.asarray(named["posterior"]["mu.beta"].coords["feature"])) == ["a", "b", "c"]
    whole = np.asarray(result.to_arviz(x=x, y=y)["log_likelihood"]["obs"])
    chunked = np.asarray(result.to_arviz(x=x, y=y, chunk_rows=7)["log_likelihood"]["obs"])
    np.testing.assert_allclose(chunked, whole, rtol=1e-6)
