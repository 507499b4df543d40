"""fit and svi_run_batched: known coefficients recovered, data checked, one compilation per run."""

from __future__ import annotations

import jax
import numpy as np
import numpyro
import optax
import pytest
from helpers import compilations, site_summary
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.autoguide import AutoNormal

from blayers_core import DataError, FitResult, fit, guide, optimizer, svi_run_batched
from blayers_plugins import AdaptiveLayer, Batched_Trace_ELBO, gaussian_link_exp

TRUE_BETA = np.array([1.5, -2.0, 0.5])
TRUE_SIGMA = 0.3


def simulate(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = (x @ TRUE_BETA + TRUE_SIGMA * rng.normal(size=n)).astype(np.float32)
    return x, y


def model(x, y=None):
    return gaussian_link_exp(AdaptiveLayer()("mu", x), y)


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [None, 64, 50])  # full batch, 10 batches, ragged tail of 40
def test_fit_recovers_known_coefficients(batch_size) -> None:
    x, y = simulate(590)
    steps = 2000
    result = fit(
        model,
        x=x,
        y=y,
        batch_size=batch_size,
        num_steps=steps,
        lr=optax.cosine_decay_schedule(0.03, steps),
        progress_bar=False,
    )
    summary = result.summary()
    # With 590 rows the posterior mean is close to least squares, an independent estimate.
    least_squares = np.linalg.lstsq(x, y, rcond=None)[0]
    assert result.posterior_samples["mu/beta"].shape[1:] == (3, 1)
    beta = summary.loc[["mu/beta[0]", "mu/beta[1]", "mu/beta[2]"]]
    np.testing.assert_allclose(beta["mean"], least_squares, atol=0.02)
    assert (np.abs(beta["mean"] - least_squares) < 3 * beta["sd"]).all()
    np.testing.assert_allclose(beta["mean"], TRUE_BETA, atol=0.06)
    assert (beta["5%"] < beta["mean"]).all() and (beta["mean"] < beta["95%"]).all()
    np.testing.assert_allclose(site_summary(result, "obs/sigma"), TRUE_SIGMA, atol=0.03)
    assert result.losses.shape == (steps,) and np.isfinite(result.losses).all()


@pytest.mark.slow
def test_predict_on_new_data_follows_the_fitted_line() -> None:
    x, y = simulate(400)
    result = fit(model, x=x, y=y, num_steps=1500, lr=0.02, progress_bar=False, num_samples=300)
    x_new, _ = simulate(7, seed=1)
    predictions = result.predict(x=x_new, return_draws=True)
    assert predictions.site == "obs"
    assert predictions.mean.shape == (7,) and predictions.draws.shape == (300, 7)
    np.testing.assert_allclose(predictions.mean, x_new @ TRUE_BETA, atol=0.15)
    np.testing.assert_allclose(np.mean(predictions.sd), TRUE_SIGMA, atol=0.08)


def test_low_level_api_as_in_blayers(tmp_path) -> None:
    """svi_run_batched with a hand-built SVI and Batched_Trace_ELBO, the BLayers way."""
    x, y = simulate(300)
    svi = SVI(model, AutoNormal(model), optax.adam(0.02), loss=Batched_Trace_ELBO(num_obs=300))
    result = svi_run_batched(
        svi, jax.random.PRNGKey(0), 900, batch_size=64, progress_bar=False, x=x, y=y
    )
    assert result.losses.shape == (900,)
    assert np.mean(result.losses[-100:]) < np.mean(result.losses[:100])
    by_epochs = svi_run_batched(
        svi, jax.random.PRNGKey(0), batch_size=64, num_epochs=3, progress_bar=False, x=x, y=y
    )
    assert by_epochs.losses.shape == (3 * 5,)  # ceil(300 / 64) = 5 steps an epoch


def test_each_run_compiles_its_step_once_whatever_the_chunking() -> None:
    """The model body runs only when traced: more chunks or a ragged tail add no traces."""
    x, y = simulate(103)
    traces = []

    def counted(x, y=None):
        traces.append(1)
        return model(x, y)

    def count(**kwargs) -> int:
        traces.clear()
        fit(counted, x=x, y=y, progress_bar=False, num_samples=2, batch_size=10, **kwargs)
        return len(traces)

    first = count(num_steps=10, chunk_size=10)
    # Six chunks, a ragged tail, another seed: the cached programs (the dry run's too) are
    # reused, so the model is not even traced again.
    assert count(num_steps=60, chunk_size=10, seed=3) == 0
    assert first > 1


def test_second_fit_with_same_shapes_compiles_nothing() -> None:
    x, y = simulate(200)
    x2, y2 = simulate(200, seed=5)  # new data, same shapes
    options = dict(batch_size=32, num_steps=50, progress_bar=False, num_samples=20)
    fit(model, x=x, y=y, seed=0, **options)
    again = []

    def second_fit() -> None:
        again.append(fit(model, x=x2, y=y2, seed=1, **options))
        again[0].summary()

    assert compilations(second_fit) == []
    assert again[0].losses.shape == (50,)


def test_rows_and_constants_are_told_apart() -> None:
    x, y = simulate(50)
    seen = {}

    def with_constants(x, offset, label, y=None):
        seen.update(x_rows=x.shape[0], offset=offset, label=label)
        return gaussian_link_exp(AdaptiveLayer()("mu", x) + offset, y)

    result = fit(
        with_constants,
        x=x,
        y=y,
        offset=np.ones(3, dtype=np.float32)[:1],  # leading dimension 1 != 50: a constant
        label="run-1",
        batch_size=20,
        num_steps=5,
        progress_bar=False,
        num_samples=3,
    )
    assert seen["x_rows"] == 20 and seen["label"] == "run-1"
    assert set(result.constants) == {"offset", "label"}
    assert result.predict(x=x[:4]).mean.shape == (4,)


def test_components_by_object_or_by_name() -> None:
    x, y = simulate(60)
    result = fit(
        model,
        x=x,
        y=y,
        loss=Batched_Trace_ELBO(),
        guide=guide("auto_normal", model, init_scale=0.05),
        optimizer=optimizer("adamw", learning_rate=0.01),
        batch_size=16,
        num_steps=20,
        progress_bar=False,
        num_samples=5,
    )
    assert isinstance(result, FitResult) and result.losses.shape == (20,)
    with pytest.raises(ValueError, match="lr= configures a named optimizer only"):
        fit(model, x=x, y=y, optimizer=optax.adam(0.1), lr=0.1, num_steps=1, progress_bar=False)
    with pytest.raises(TypeError, match="optimizer must be a registered name"):
        fit(model, x=x, y=y, optimizer=3, num_steps=1, progress_bar=False)
    with pytest.raises(LookupError, match="Did you mean 'auto_normal'"):
        fit(model, x=x, y=y, guide="auto_norml", num_steps=1, progress_bar=False)


def test_full_batch_trace_elbo_is_allowed() -> None:
    x, y = simulate(40)
    result = fit(model, x=x, y=y, loss=Trace_ELBO(), num_steps=5, progress_bar=False, num_samples=2)
    assert result.losses.shape == (5,)


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        (
            {"y": np.array([1.0, np.nan, 3.0] * 10)},
            DataError,
            r"'y' has 10 non-finite values .* in 10 rows \(1, 4, 7, 10, 13, \.\.\.\)",
        ),
        (
            {"y": np.array(["a", "b", "c"] * 10)},
            DataError,
            "'y' has dtype <U1, which is not numeric",
        ),
        ({"num_steps": 0}, ValueError, "num_steps must be a positive int"),
        (
            {"num_steps": 5, "num_epochs": 2},
            ValueError,
            "exactly one of num_steps= and num_epochs=",
        ),
        ({"batch_size": 0}, ValueError, "batch_size must be a positive int"),
        ({"num_samples": 0}, ValueError, "num_samples must be a positive int"),
        (
            {"data": {"y": np.zeros(30)}},
            DataError,
            r"\['y'\] are given both in data= and as keywords",
        ),
    ],
)
def test_bad_input_is_refused_before_training(kwargs, error, pattern) -> None:
    rng = np.random.default_rng(0)
    arguments = {"x": rng.normal(size=(30, 3)), "y": rng.normal(size=30), "progress_bar": False}
    arguments.update(kwargs)
    with pytest.raises(error, match=pattern):
        fit(model, **arguments)


def test_scalar_observation_cannot_be_padded() -> None:
    x, y = simulate(30)

    def summed(x, y=None):
        mu = AdaptiveLayer()("mu", x)[:, 0]
        numpyro.sample("obs", numpyro.distributions.Normal(mu, 1.0).to_event(1), obs=y)

    with pytest.raises(ValueError, match="no row dimension"):
        fit(summed, x=x, y=y, batch_size=7, num_steps=2, progress_bar=False)
