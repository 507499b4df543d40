"""SVGD (blayers_core.engine.svgd.run_svgd): modes, closed-form posteriors, shapes, compiling."""

from __future__ import annotations

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
import pytest
from helpers import compilations
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.autoguide import AutoNormal

from blayers_core.engine.data import split_rows_and_constants
from blayers_core.engine.svgd import KERNELS, SvgdOutcome, run_svgd

# --------------------------------------------------------------------------- bimodal posterior


def squared_mean(y=None):  # type: ignore[no-untyped-def]
    """y_i ~ Normal(theta**2, 0.5): with y near 4 the posterior has modes near theta = +-2."""
    theta = numpyro.sample("theta", dist.Normal(0.0, 3.0))
    with numpyro.plate("rows", y.shape[0]):
        numpyro.sample("y", dist.Normal(theta**2, 0.5), obs=y)


def bimodal_data() -> np.ndarray:
    return np.random.default_rng(0).normal(4.0, 0.5, size=20).astype(np.float32)


@pytest.mark.slow
def test_particles_cover_both_modes_where_mean_field_vi_takes_one() -> None:
    y = bimodal_data()
    outcome = run_svgd(
        squared_mean,
        split_rows_and_constants({"y": y}),
        num_particles=50,
        num_steps=500,
        optimizer=optax.adam(0.05),
        seed=0,
        progress_bar=False,
    )
    theta = outcome.samples["theta"]
    assert theta.shape == (50,)
    positive, negative = np.mean(theta > 1.0), np.mean(theta < -1.0)
    # Seed 0 gives 21 / 29 particles (0.42 / 0.58); every particle sits on a mode.
    assert positive >= 0.2 and negative >= 0.2
    assert positive + negative == 1.0
    assert np.all(np.abs(np.abs(theta) - 2.0) < 0.2)
    # Within each mode the particles spread as the posterior does there: sd about
    # 0.5 / sqrt(20) / (2 * 2) = 0.028 (Laplace); seed 0 gives 0.028 on both sides.
    for side in (theta[theta > 0], theta[theta < 0]):
        assert 0.015 < side.std() < 0.045

    # Mean-field VI (one Normal) on the same model and data: it settles on one mode.
    guide = AutoNormal(squared_mean)
    svi = SVI(squared_mean, guide, numpyro.optim.Adam(0.05), Trace_ELBO())
    result = svi.run(jax.random.PRNGKey(0), 1500, y=y, progress_bar=False)
    loc = float(result.params["theta_auto_loc"])
    scale = float(result.params["theta_auto_scale"])
    assert abs(abs(loc) - 2.0) < 0.1  # seed 0: loc 1.97
    assert scale < 0.1  # seed 0: 0.03, so no mass near the other mode, 4 away


# --------------------------------------------------------------------- closed-form posteriors


def conjugate(y, z):  # type: ignore[no-untyped-def]
    """Two independent conjugate posteriors in one model (one compilation):

    * ``mu ~ Normal(0, 2)``, ``y_i ~ Normal(mu, 1)``: ``mu | y ~ Normal``;
    * ``tau ~ Gamma(3, 2)``, ``z_i ~ Normal(0, tau**-0.5)``: ``tau | z ~ Gamma(3 + n/2,
      2 + sum(z**2)/2)``, a positive site, so this checks the Jacobian of its unconstraining.
    """
    mu = numpyro.sample("mu", dist.Normal(0.0, 2.0))
    tau = numpyro.sample("tau", dist.Gamma(3.0, 2.0))
    with numpyro.plate("rows", y.shape[0]):
        numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)
        numpyro.sample("z", dist.Normal(0.0, tau**-0.5), obs=z)


@pytest.mark.slow
def test_particles_match_closed_form_posteriors() -> None:
    rng = np.random.default_rng(1)
    n = 10
    y = rng.normal(1.5, 1.0, size=n).astype(np.float32)
    z = rng.normal(0.0, 0.7, size=n).astype(np.float32)
    outcome = run_svgd(
        conjugate,
        split_rows_and_constants({"y": y, "z": z}),
        num_particles=100,
        num_steps=1000,
        optimizer=optax.adam(0.05),
        seed=0,
        progress_bar=False,
    )
    precision = 1 / 2.0**2 + n
    mu_mean, mu_sd = y.sum() / precision, precision**-0.5
    shape, rate = 3.0 + n / 2, 2.0 + float(np.sum(z.astype(float) ** 2)) / 2
    tau_mean, tau_sd = shape / rate, shape**0.5 / rate
    mu, tau = outcome.samples["mu"].astype(float), outcome.samples["tau"].astype(float)
    # With 100 particles in one dimension SVGD's fixed point is close to the posterior: measured
    # (seed 0) mean errors below 0.01 posterior sd, sds 3.6% low for both sites: the slight
    # under-dispersion SVGD is known for with finitely many particles (it shrinks as they grow:
    # 50 particles gave 2-3% low on mu, 200 about 1%). Tolerances: mean within 0.1 posterior
    # sd, sd within -10% .. +5%.
    assert abs(mu.mean() - mu_mean) < 0.1 * mu_sd
    assert 0.9 < mu.std(ddof=1) / mu_sd < 1.05
    # Without the Jacobian of tau's unconstraining the particles would follow p(tau | z) / tau,
    # Gamma(shape - 1, rate), whose mean is 1 / sqrt(shape) = 0.35 posterior sd lower: the first
    # check below would fail.
    assert abs(tau.mean() - tau_mean) < 0.1 * tau_sd
    assert 0.9 < tau.std(ddof=1) / tau_sd < 1.05
    assert outcome.losses.shape == (1000,)
    assert outcome.losses[-1] < 0.05 * outcome.losses[0]


# ------------------------------------------------------------------ shapes and compilation


def regression(x, y=None):  # type: ignore[no-untyped-def]
    beta = numpyro.sample("beta", dist.Normal(0.0, 1.0).expand([3]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
    mu = numpyro.deterministic("mu", x @ beta)
    with numpyro.plate("rows", x.shape[0]):
        numpyro.sample("y", dist.Normal(mu, sigma), obs=y)


def regression_data(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -1.0, 0.5]) + 0.3 * rng.normal(size=40)).astype(np.float32)
    return {"x": x, "y": y}


OPTIMIZER = optax.adam(0.05)


def fit_regression(
    data: dict[str, np.ndarray], seed: int, progress_bar: bool = False
) -> SvgdOutcome:
    # A new optax object every call, as fit builds a named optimizer: the key tells the program
    # cache it is the same optimizer.
    return run_svgd(
        regression,
        split_rows_and_constants(data),
        num_particles=8,
        num_steps=30,
        optimizer=optax.adam(0.05),
        optimizer_key=("adam", 0.05),
        seed=seed,
        progress_bar=progress_bar,
    )


def test_shapes_of_particles_deterministic_sites_and_losses() -> None:
    outcome = fit_regression(regression_data(0), seed=0)
    assert {k: v.shape for k, v in outcome.samples.items()} == {
        "beta": (8, 3),
        "sigma": (8,),
        "mu": (8, 40),
    }
    assert {k: v.shape for k, v in outcome.params.items()} == {
        "beta_auto_loc": (8, 3),
        "sigma_unconstrained_auto_loc": (8,),
    }
    assert outcome.losses.shape == (30,)
    assert np.all(outcome.samples["sigma"] > 0)
    np.testing.assert_allclose(
        outcome.samples["sigma"], np.exp(outcome.params["sigma_unconstrained_auto_loc"]), rtol=1e-5
    )
    np.testing.assert_allclose(
        outcome.samples["mu"],
        outcome.samples["beta"] @ regression_data(0)["x"].T,
        rtol=1e-4,
        atol=1e-5,
    )
    assert len({tuple(b) for b in outcome.samples["beta"].round(6)}) == 8  # distinct particles


def test_second_call_with_same_shapes_compiles_nothing() -> None:
    first = fit_regression(regression_data(0), seed=0)
    again = []
    # new data, seed and optax object; same shapes and optimizer key
    assert compilations(lambda: again.append(fit_regression(regression_data(5), seed=1))) == []
    assert again[0].samples["beta"].shape == (8, 3)
    assert not np.allclose(again[0].samples["beta"], first.samples["beta"])


def test_same_seed_gives_the_same_particles_with_or_without_a_progress_bar() -> None:
    first = fit_regression(regression_data(0), seed=2)
    second = fit_regression(regression_data(0), seed=2, progress_bar=True)
    for name, value in first.samples.items():
        np.testing.assert_array_equal(value, second.samples[name])
    np.testing.assert_array_equal(first.losses, second.losses)


# ----------------------------------------------------------------------------- arguments


def test_unknown_kernel_names_the_argument_and_the_choices() -> None:
    with pytest.raises(ValueError, match=r"kernel must be one of \['imq', 'linear', 'rbf'\]"):
        run_svgd(
            regression,
            split_rows_and_constants(regression_data(0)),
            num_particles=4,
            num_steps=3,
            optimizer=OPTIMIZER,
            kernel="gaussian",
            seed=0,
            progress_bar=False,
        )
    assert set(KERNELS) == {"rbf", "imq", "linear"}


@pytest.mark.parametrize("name, value", [("num_particles", 0), ("num_steps", 2.5)])
def test_bad_counts_are_refused(name: str, value: object) -> None:
    counts = {"num_particles": 4, "num_steps": 3, name: value}
    with pytest.raises(ValueError, match=f"{name} must be a positive int"):
        run_svgd(
            regression,
            split_rows_and_constants(regression_data(0)),
            optimizer=OPTIMIZER,
            seed=0,
            progress_bar=False,
            **counts,  # type: ignore[arg-type]
        )


def test_non_finite_stein_force_names_the_step() -> None:
    # A step of 1e20 throws the particles to |theta| ~ 1e20, where theta**2 overflows float32.
    with pytest.raises(FloatingPointError, match=r"non-finite at step 1 \(0-based\) of 5"):
        run_svgd(
            squared_mean,
            split_rows_and_constants({"y": bimodal_data()}),
            num_particles=4,
            num_steps=5,
            optimizer=optax.adam(1e20),
            seed=0,
            progress_bar=False,
        )


def test_non_finite_from_the_first_step() -> None:
    # Same program as the regression tests (nothing to compile): x @ beta ~ 1e30, whose square
    # overflows, so the very first Stein force is not finite.
    data = regression_data(0)
    data["x"] = data["x"] * np.float32(1e30)
    with pytest.raises(FloatingPointError, match=r"non-finite at step 0 \(0-based\) of 30"):
        fit_regression(data, seed=0)
