"""Inference methods are components: chosen by name or configured, first-party or a plugin's.

The posterior each is compared with is closed form: ``mu ~ N(0, 1)``, ``y_i ~ N(mu, 1)`` gives
``mu | y ~ N(sum(y) / (n + 1), 1 / (n + 1))``.
"""

from __future__ import annotations

import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from helpers import FakeSite

import blayers_core
from blayers_core import FitResult, fit, load, method
from blayers_core.contract import registry as registry_module
from blayers_core.testing import check_method

N = 30
Y = np.random.default_rng(3).normal(1.0, 1.0, size=N).astype(np.float32)
X = np.ones((N, 1), dtype=np.float32)
POSTERIOR_MEAN, POSTERIOR_SD = float(Y.sum()) / (N + 1), (N + 1) ** -0.5


def conjugate(x, y=None):
    mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
    return numpyro.sample("obs", dist.Normal(mu * np.ones(x.shape[0], np.float32), 1.0), obs=y)


def assert_near_posterior(result: FitResult, mean_tol: float = 0.3, sd_factor: float = 1.5) -> None:
    draws = np.asarray(result.posterior_samples["mu"], dtype=float)
    assert abs(draws.mean() - POSTERIOR_MEAN) < mean_tol * POSTERIOR_SD, draws.mean()
    assert POSTERIOR_SD / sd_factor < draws.std() < POSTERIOR_SD * sd_factor, draws.std()


# ------------------------------------------------------------------------- by name, configured
@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("svi", {"num_steps": 1500}),
        ("nuts", {"num_warmup": 300}),
        ("hmc", {"num_warmup": 300}),
        ("svgd", {"num_particles": 50, "num_steps": 500}),
    ],
)
def test_every_first_party_method_is_chosen_by_name(name, options) -> None:
    result = fit(conjugate, x=X, y=Y, method=method(name, **options), progress_bar=False)
    assert result.method == name
    assert result.components["method"] == {"name": name, "config": options}
    assert_near_posterior(result)
    assert result.markov_chains == (name in ("nuts", "hmc"))


def test_nuts_is_configured_through_method() -> None:
    """The options reach NumPyro's kernel, and are recorded on the result."""
    configured = method("nuts", target_accept_prob=0.95, max_tree_depth=8, dense_mass=True)
    kernel = configured.method.kernel(conjugate)
    assert kernel._target_accept_prob == 0.95
    assert kernel._max_tree_depth == 8 and kernel._dense_mass is True
    result = fit(conjugate, x=X, y=Y, method=configured, num_warmup=200, progress_bar=False)
    assert result.components["method"]["config"] == {
        "target_accept_prob": 0.95,
        "max_tree_depth": 8,
        "dense_mass": True,
        "num_warmup": 200,
    }
    assert_near_posterior(result)
    assert {"r_hat", "ess_bulk", "ess_tail"} <= set(result.summary().columns)


def test_the_older_name_vi_is_svi() -> None:
    result = fit(conjugate, x=X, y=Y, method="vi", num_steps=10, progress_bar=False)
    assert result.method == "svi"


def test_svgd_particles_are_draws_that_predict_summarise_and_save(tmp_path) -> None:
    result = fit(
        conjugate,
        x=X,
        y=Y,
        method=method("svgd", num_particles=40, num_steps=300),
        progress_bar=False,
    )
    assert result.posterior_samples["mu"].shape == (40,)
    summary = result.summary()
    assert "r_hat" not in summary.columns
    assert abs(summary.loc["mu", "mean"] - POSTERIOR_MEAN) < 0.3 * POSTERIOR_SD
    predictions = result.predict(x=np.ones((5, 1), np.float32))
    assert np.isfinite(predictions.mean).all() and predictions.mean.shape == (5,)
    loaded = load(result.save(tmp_path / "svgd.npz"), model=conjugate)
    assert loaded.method == "svgd" and loaded.components["method"]["name"] == "svgd"
    np.testing.assert_array_equal(loaded.posterior_samples["mu"], result.posterior_samples["mu"])
    pytest.importorskip("arviz")
    idata = result.to_arviz()
    assert idata.posterior["mu"].shape == (1, 40)


def test_svgd_refuses_num_samples_other_than_its_particles() -> None:
    with pytest.raises(ValueError, match=r"SVGD's posterior draws are its 50 particles"):
        fit(conjugate, x=X, y=Y, method="svgd", num_samples=100, progress_bar=False)


def test_a_method_object_is_run_as_is_and_refuses_fit_s_options() -> None:
    from blayers_plugins.methods import SVI

    result = fit(conjugate, x=X, y=Y, method=SVI(num_steps=20), progress_bar=False)
    assert result.method == "SVI" and result.steps_done == 20
    with pytest.raises(ValueError, match="batch_size cannot be given to fit with a method object"):
        fit(conjugate, x=X, y=Y, method=SVI(num_steps=20), batch_size=4)


# ----------------------------------------------------------------------- a third-party method
BARKER_PLUGIN = '''
import attrs
import numpyro.infer
from blayers_core.plugin import hookimpl, sample_with_kernel


@attrs.frozen(kw_only=True)
class Barker:
    """Barker's proposal MCMC (Livingstone and Zanella, 2022): z' = z + b * xi, xi ~ N(0, s^2)."""

    example_config = {"num_warmup": 300}
    num_warmup: int = 500
    num_chains: int = 1

    def run(self, problem):
        return sample_with_kernel(
            problem,
            kernel=numpyro.infer.BarkerMH,
            kernel_key=self,
            num_warmup=self.num_warmup,
            num_chains=self.num_chains,
        )


@hookimpl
def register_methods(register):
    register("barker", Barker)
'''


@pytest.fixture
def barker_installed(tmp_path, monkeypatch) -> blayers_core.Registry:
    """The process's registry, with a third-party plugin that registers method 'barker'."""
    site = FakeSite(tmp_path, monkeypatch)
    site.add_first_party()
    site.add("blayers-barker", {"barker_plugin": BARKER_PLUGIN})
    fake = site.registry()
    monkeypatch.setattr(registry_module, "_default_registry", fake)
    return fake


def test_a_plugin_s_method_is_used_by_name(barker_installed) -> None:
    component = barker_installed.get("method", "barker")
    assert component.qualified_name == "barker_plugin:barker"
    for name in ("barker", "barker_plugin:barker"):
        result = fit(conjugate, x=X, y=Y, method=name, num_samples=2000, progress_bar=False)
        assert result.method == name and result.markov_chains
        assert_near_posterior(result, mean_tol=0.5)
    with pytest.raises(ValueError, match="method 'barker' does not take batch_size=4"):
        fit(conjugate, x=X, y=Y, method="barker", batch_size=4)


def test_the_kit_checks_a_plugin_s_method(barker_installed) -> None:
    factory = barker_installed.get("method", "barker").factory
    results = check_method(factory, **factory.example_config)
    passed = {r.check for r in results if r.status == "pass"}
    assert not [r for r in results if r.status == "fail"]
    assert {"check_method_draws_every_latent_site", "check_method_is_deterministic"} <= passed
    assert "check_method_recovers_a_conjugate_posterior" in passed
