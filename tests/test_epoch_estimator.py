"""One epoch of minibatch losses is the full-data loss, for any batch size.

With ``N`` rows, batches of ``B`` and ``S = ceil(N / B)`` steps an epoch, every real row of every
batch weighs ``S`` (the loss's ``N / B`` times ``padded_rows``' ``S B / N``) and padding weighs 0,
so the mean of an epoch's ``S`` losses, at fixed parameters, is the full-data loss and every row
counts once per epoch. Weighting a batch's ``r`` real rows by ``N / r`` instead fails these tests
whenever ``B`` does not divide ``N``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
import pytest
from numpyro.handlers import seed, trace
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.autoguide import AutoDelta
from numpyro.optim import SGD

from blayers_core import BatchSchedule, fit, svi_run_batched
from blayers_core.engine.program import TrainingProgram
from blayers_plugins import Batched_Trace_ELBO
from blayers_plugins.losses import scale_observed_rows

Model = Callable[..., Any]


def no_plate(num_rows: int) -> Model:
    def model(x: Any, y: Any = None) -> None:
        a = numpyro.sample("a", dist.Normal(0.0, 5.0))
        b = numpyro.sample("b", dist.Normal(0.0, 5.0))
        numpyro.sample("obs", dist.Normal(a + b * x, 1.0), obs=y)

    return model


def data_plate(num_rows: int) -> Model:
    """A plate over the batch's rows, as NumPyro examples write it: it sets no scale."""

    def model(x: Any, y: Any = None) -> None:
        a = numpyro.sample("a", dist.Normal(0.0, 5.0))
        b = numpyro.sample("b", dist.Normal(0.0, 5.0))
        with numpyro.plate("data", x.shape[0]):
            numpyro.sample("obs", dist.Normal(a + b * x, 1.0), obs=y)

    return model


def subsampling_plate(num_rows: int) -> Model:
    """A plate of all ``N`` rows subsampled to the batch: it sets ``N / B`` itself, the loss
    leaves the site alone, and ``padded_rows`` multiplies that scale by ``S B / N``."""

    def model(x: Any, y: Any = None) -> None:
        a = numpyro.sample("a", dist.Normal(0.0, 5.0))
        b = numpyro.sample("b", dist.Normal(0.0, 5.0))
        with numpyro.plate("data", num_rows, subsample_size=x.shape[0]):
            numpyro.sample("obs", dist.Normal(a + b * x, 1.0), obs=y)

    return model


MODELS = [no_plate, data_plate, subsampling_plate]

#: (rows, batch size): ragged tails of 3 and 8 rows, and batches that divide the rows.
SIZES = [(2003, 200), (200, 64), (200, 50)]

#: float32 sums of a few thousand rows; the N / r rule is off by 1e-4 to 1e-2 here.
RTOL = 1e-5


def simulate(num_rows: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(num_rows)
    x = rng.normal(size=num_rows).astype(np.float32)
    y = (0.4 + 2.0 * x + rng.normal(size=num_rows)).astype(np.float32)
    return x, y


def point_guide(x: Any, y: Any = None) -> None:
    """A point mass at the parameters: the loss has no Monte Carlo noise."""
    numpyro.sample("a", dist.Delta(numpyro.param("a_loc", 0.0)))
    numpyro.sample("b", dist.Delta(numpyro.param("b_loc", 0.0)))


#: Far from the fit (a = 0.4, b = 2), so rows differ a lot in log-likelihood and weighting some
#: rows more than others shows in the loss.
PARAMS = {"a_loc": jnp.array(-1.0), "b_loc": jnp.array(0.5)}


class LossAtFixedParams:
    """Stands in for ``SVI`` in a training step: returns the step's loss at :data:`PARAMS`,
    evaluated under whatever handlers the step puts around the call, and leaves the state."""

    def __init__(self, model: Model, num_obs: int) -> None:
        self.model = model
        self.loss = Batched_Trace_ELBO(num_obs=num_obs)

    def update(self, state: Any, **batch: Any) -> tuple[Any, Any]:
        key = jax.random.PRNGKey(0)
        return state, self.loss.loss(key, PARAMS, self.model, point_guide, **batch)


class RecordRowWeights:
    """Stands in for ``SVI`` in a training step: traces the model under the minibatch loss's
    scaling (and whatever handlers the step puts around the call) and returns, for every slot of
    the batch, its row and the factor on that row's log-likelihood (0 for padding)."""

    def __init__(self, model: Model, num_obs: int) -> None:
        self.model = scale_observed_rows(model, num_obs=num_obs)

    def update(self, state: Any, *, row: Any, x: Any, y: Any) -> tuple[Any, Any]:
        site = trace(seed(self.model, 0)).get_trace(x=x, y=y)["obs"]
        scaled = site["fn"].log_prob(site["value"])  # masked: 0 on padding
        if site["scale"] is not None:
            scaled = site["scale"] * scaled
        plain = dist.Normal(site["fn"].mean, 1.0).log_prob(site["value"])
        return state, (row, scaled / plain)


def run_steps(svi: Any, schedule: BatchSchedule, steps: range, **data: np.ndarray) -> Any:
    """What ``svi.update`` returns at each of ``steps`` of a training program on ``data``, the
    batches cut and the padding handled exactly as in training (one compiled, vmapped trace)."""
    program = TrainingProgram(svi, schedule, 1, static_constants={})
    slots = schedule.slot_rows()  # the data laid out as prepare_data lays it out
    rows = {name: jnp.asarray(value[slots]) for name, value in data.items()}
    key = jax.random.PRNGKey(5)

    def one(step: Any) -> Any:
        return program._step(None, step, rows, {}, key, None)[1]

    return jax.jit(jax.vmap(one))(jnp.asarray(steps, dtype=jnp.int32))


@pytest.mark.parametrize("shuffle", [True, False], ids=["shuffled", "in_order"])
@pytest.mark.parametrize("num_rows,batch_size", SIZES, ids=lambda v: str(v))
@pytest.mark.parametrize("make_model", MODELS, ids=lambda f: f.__name__)
def test_epoch_mean_of_step_losses_is_the_full_data_loss(
    make_model: Callable[[int], Model], num_rows: int, batch_size: int, shuffle: bool
) -> None:
    """At fixed parameters, the mean of the training steps' losses over any one epoch is the
    full-data loss (NumPyro's ``Trace_ELBO`` on every row)."""
    x, y = simulate(num_rows)
    model = make_model(num_rows)
    schedule = BatchSchedule(num_rows=num_rows, batch_size=batch_size, shuffle=shuffle)
    per_epoch = schedule.steps_per_epoch
    losses = run_steps(LossAtFixedParams(model, num_rows), schedule, range(2 * per_epoch), x=x, y=y)
    full = float(Trace_ELBO().loss(jax.random.PRNGKey(0), PARAMS, model, point_guide, x=x, y=y))
    epoch_means = np.asarray(losses, dtype=np.float64).reshape(2, per_epoch).mean(axis=1)
    np.testing.assert_allclose(epoch_means, full, rtol=RTOL)


@pytest.mark.parametrize(
    "make_model,num_rows,batch_size,shuffle",
    [(data_plate, 2003, 200, True), (no_plate, 200, 64, False)],
    ids=["data_plate-2003-200-shuffled", "no_plate-200-64-in_order"],
)
def test_compiled_training_losses_average_to_the_full_data_loss(
    make_model: Callable[[int], Model], num_rows: int, batch_size: int, shuffle: bool
) -> None:
    """End to end through ``svi_run_batched`` (compiled chunk, host shuffle, AutoDelta): with a
    learning rate of 0 one epoch's reported losses average to the full-data loss."""
    x, y = simulate(num_rows)
    model = make_model(num_rows)
    guide = AutoDelta(model)
    svi = SVI(model, guide, SGD(0.0), loss=Batched_Trace_ELBO(num_obs=num_rows))
    result = svi_run_batched(
        svi,
        jax.random.PRNGKey(1),
        num_epochs=1,
        batch_size=batch_size,
        shuffle=shuffle,
        progress_bar=False,
        x=x,
        y=y,
    )
    assert result.losses.shape == (BatchSchedule(num_rows, batch_size).steps_per_epoch,)
    full = Trace_ELBO().loss(jax.random.PRNGKey(0), result.params, model, guide, x=x, y=y)
    assert float(jnp.std(result.losses)) > 1e-3 * abs(float(full))  # the batches do differ
    mean = np.mean(np.asarray(result.losses, dtype=np.float64))
    np.testing.assert_allclose(mean, float(full), rtol=RTOL)


@pytest.mark.parametrize("shuffle", [True, False], ids=["shuffled", "in_order"])
@pytest.mark.parametrize("num_rows,batch_size", [*SIZES, (10, 3)], ids=lambda v: str(v))
@pytest.mark.parametrize("make_model", MODELS, ids=lambda f: f.__name__)
def test_every_row_weighs_one_per_epoch(
    make_model: Callable[[int], Model], num_rows: int, batch_size: int, shuffle: bool
) -> None:
    """Summed over an epoch's ``S`` training steps, every row's log-likelihood factor is ``S``
    (padding slots add 0): weight 1 per step on average, the same for every row, every epoch."""
    x, y = simulate(num_rows)
    schedule = BatchSchedule(num_rows=num_rows, batch_size=batch_size, shuffle=shuffle)
    per_epoch, epochs = schedule.steps_per_epoch, 3
    row, factor = run_steps(
        RecordRowWeights(make_model(num_rows), num_rows),
        schedule,
        range(epochs * per_epoch),
        row=np.arange(num_rows),
        x=x,
        y=y,
    )
    row = np.asarray(row).reshape(epochs, -1)
    factor = np.asarray(factor, dtype=np.float64).reshape(epochs, -1)
    for epoch in range(epochs):
        weight = np.bincount(row[epoch], weights=factor[epoch], minlength=num_rows)
        np.testing.assert_allclose(weight / per_epoch, 1.0, rtol=1e-5)


def test_short_last_batch_does_not_pull_a_point_estimate() -> None:
    """200 rows in order, batches of 64: the last batch holds 8 rows. Those 8 rows are at 10, the
    others at 0, so the full-data MAP of the intercept is about 8 * 10 / 200 = 0.4. Weighting the
    8 rows by ``N / 8`` (8 times the others) gave 2.5; weighted like every other row the fit lands
    on the MAP."""
    y = np.zeros(200, dtype=np.float32)
    y[-8:] = 10.0

    def model(y: Any) -> None:
        intercept = numpyro.sample("intercept", dist.Normal(0.0, 10.0))
        numpyro.sample("obs", dist.Normal(intercept, 1.0).expand([y.shape[0]]), obs=y)

    # Normal-normal conjugacy: the MAP is the posterior mean.
    prior_precision, n = 1.0 / 10.0**2, y.shape[0]
    map_estimate = y.sum() / (n + prior_precision)
    result = fit(
        model,
        y=y,
        guide="auto_delta",
        optimizer="sgd",
        lr=optax.cosine_decay_schedule(1e-3, 4 * 100),  # 4 steps an epoch
        batch_size=64,
        shuffle=False,
        num_epochs=100,
        num_samples=1,
        progress_bar=False,
    )
    intercept = float(np.asarray(result.params["intercept_auto_loc"]))
    np.testing.assert_allclose(intercept, map_estimate, atol=0.02)
