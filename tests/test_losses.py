"""The batched ELBO against NumPyro's full-data Trace_ELBO at fixed variational parameters."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
import pytest
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.autoguide import AutoNormal

from blayers_core import Loss, MinibatchLoss, fit, loss, padded_rows
from blayers_plugins import AdaptiveLayer, Batched_Trace_ELBO, GaussianLink

N, D = 60, 3


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, D)).astype(np.float32)
    y = (x @ np.array([1.0, -1.0, 0.5]) + 0.3 * rng.normal(size=N)).astype(np.float32)
    return x, y


def model(x, y=None):
    return GaussianLink()(AdaptiveLayer()("mu", x), y)


def plated_model(x, y=None):
    mu = AdaptiveLayer()("mu", x)[:, 0]
    sigma = numpyro.sample("sigma", dist.Exponential(1.0))
    with numpyro.plate("rows", x.shape[0]):
        return numpyro.sample("obs", dist.Normal(mu, sigma), obs=y)


def fitted_params(m, x, y):
    guide = AutoNormal(m)
    svi = SVI(m, guide, optax.adam(0.05), Trace_ELBO())
    state = svi.init(jax.random.PRNGKey(1), x, y)
    for _ in range(20):  # move away from the initial values so the check is not degenerate
        state, _ = svi.update(state, x, y)
    return guide, svi.get_params(state)


@pytest.mark.parametrize("m", [model, plated_model], ids=["plain", "plate"])
def test_epoch_mean_of_minibatch_elbos_equals_full_data_elbo(data, m) -> None:
    x, y = data
    guide, params = fitted_params(m, x, y)
    key = jax.random.PRNGKey(7)  # the same key: the same draw of z for every batch
    full = Trace_ELBO().loss(key, params, m, guide, x, y)
    batched = Batched_Trace_ELBO(num_obs=N)
    batch_losses = [
        batched.loss(key, params, m, guide, x[i : i + 15], y[i : i + 15]) for i in range(0, N, 15)
    ]
    np.testing.assert_allclose(np.mean(batch_losses), full, rtol=1e-5)
    # A single batch is not the full-data ELBO: the check above has teeth.
    assert not np.isclose(batch_losses[0], full, rtol=1e-3)


def test_ragged_batches_weighted_by_their_rows_equal_full_data_elbo(data) -> None:
    x, y = data
    guide, params = fitted_params(model, x, y)
    key = jax.random.PRNGKey(3)
    full = Trace_ELBO().loss(key, params, model, guide, x, y)
    batched = Batched_Trace_ELBO(num_obs=N)
    sizes = [25, 25, 10]
    starts = np.cumsum([0, *sizes[:-1]])
    losses = [
        batched.loss(key, params, model, guide, x[s : s + b], y[s : s + b])
        for s, b in zip(starts, sizes, strict=True)
    ]
    weighted = sum(b / N * value for b, value in zip(sizes, losses, strict=True))
    np.testing.assert_allclose(weighted, full, rtol=1e-5)


def test_padded_batch_counts_only_its_real_rows(data) -> None:
    """A 10-row tail padded to 25 slots and masked gives the loss of the 10 rows alone."""
    x, y = data
    guide, params = fitted_params(model, x, y)
    key = jax.random.PRNGKey(3)
    batched = Batched_Trace_ELBO(num_obs=N)
    tail = batched.loss(key, params, model, guide, x[50:], y[50:])
    padded_x = np.concatenate([x[50:], x[:15]])  # padding repeats real rows
    padded_y = np.concatenate([y[50:], y[:15]])
    mask = jnp.arange(25) < 10
    with padded_rows(row_mask=mask):
        padded = batched.loss(key, params, model, guide, padded_x, padded_y)
    np.testing.assert_allclose(padded, tail, rtol=1e-5)


def test_subsampling_plate_is_not_scaled_twice(data) -> None:
    x, y = data

    def subsampled(x, y=None):
        beta = numpyro.sample("beta", dist.Normal(0, 1).expand([D]).to_event(1))
        with numpyro.plate("rows", N, subsample_size=x.shape[0]):
            numpyro.sample("obs", dist.Normal(x @ beta, 1.0), obs=y)

    guide, params = fitted_params(subsampled, x, y)
    key = jax.random.PRNGKey(0)
    batched = Batched_Trace_ELBO(num_obs=N).loss(key, params, subsampled, guide, x[:20], y[:20])
    plain = Trace_ELBO().loss(key, params, subsampled, guide, x[:20], y[:20])
    np.testing.assert_allclose(batched, plain, rtol=1e-6)


def test_observed_site_without_rows_raises(data) -> None:
    x, y = data

    def summed(x, y=None):
        beta = numpyro.sample("beta", dist.Normal(0, 1).expand([D]).to_event(1))
        numpyro.sample("obs", dist.Normal(x @ beta, 1.0).to_event(1), obs=y)

    guide, params = fitted_params(summed, x, y)
    with pytest.raises(ValueError, match="'obs' has no row dimension"):
        Batched_Trace_ELBO(num_obs=N).loss(jax.random.PRNGKey(0), params, summed, guide, x, y)


def test_losses_by_name_satisfy_the_protocols() -> None:
    assert isinstance(loss("trace_elbo"), Loss)
    assert isinstance(loss("trace_meanfield_elbo"), Loss)
    batched = loss("batched_elbo")
    assert isinstance(batched, MinibatchLoss) and batched.num_obs is None
    assert batched.with_num_obs(100).num_obs == 100
    with pytest.raises(ValueError, match="num_obs must be a positive int"):
        Batched_Trace_ELBO(num_obs=0)


def test_batched_elbo_without_num_obs_explains_itself(data) -> None:
    x, y = data
    guide, params = fitted_params(model, x, y)
    with pytest.raises(ValueError, match=r"Batched_Trace_ELBO\(num_obs=len\(y\)\)"):
        Batched_Trace_ELBO().loss(jax.random.PRNGKey(0), params, model, guide, x, y)


def test_fit_refuses_a_full_batch_loss_on_minibatches(data) -> None:
    x, y = data
    with pytest.raises(ValueError, match="does not rescale minibatches"):
        fit(model, x=x, y=y, loss="trace_elbo", batch_size=10, num_steps=1, progress_bar=False)
