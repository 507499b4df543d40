"""Every example of the BLayers README runs, with only its imports adapted."""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest
from numpyro.infer import SVI
from numpyro.infer.autoguide import AutoDiagonalNormal

from blayers_core import fit, svi_run_batched
from blayers_plugins import (
    AdaptiveLayer,
    Batched_Trace_ELBO,
    FixedPriorLayer,
    FMLayer,
    LowRankInteractionLayer,
    gaussian_link_exp,
)

rng = np.random.default_rng(0)
X = rng.normal(size=(200, 3)).astype(np.float32)
Z = rng.normal(size=(200, 2)).astype(np.float32)
Y = (X @ np.array([1.0, -1.0, 0.5]) + X[:, 0] * Z[:, 1] + 0.2 * rng.normal(size=200)).astype(
    np.float32
)


# --- the seed README's models, verbatim but for imports ---------------------------------------
def model_adaptive(x, y):
    mu = AdaptiveLayer()("mu", x)
    return gaussian_link_exp(mu, y)


def model_fixed(x, y):
    mu = FixedPriorLayer()("mu", x)
    return gaussian_link_exp(mu, y)


def model_fm(x, y):
    mu = (
        AdaptiveLayer("x", x)  # sic: the seed omits the ()
        + AdaptiveLayer("x2", x**2)
        + FMLayer(low_rank_dim=3)("xx", x)
    )
    return gaussian_link_exp(mu, y)


def model_uv(x, z, y):
    mu = (
        AdaptiveLayer("x", x)
        + AdaptiveLayer("z", z)
        + LowRankInteractionLayer(low_rank_dim=3)("xz", x, z)
    )
    return gaussian_link_exp(mu, y)


SEED_MODELS = [
    (model_adaptive, {"x": X}),
    (model_fixed, {"x": X}),
    (model_fm, {"x": X}),
    (model_uv, {"x": X, "z": Z}),
]


@pytest.mark.parametrize(("model_fn", "inputs"), SEED_MODELS, ids=["adaptive", "fixed", "fm", "uv"])
def test_seed_model_runs_with_fit_by_name(model_fn, inputs) -> None:
    result = fit(
        model_fn,
        y=Y,
        loss="batched_elbo",
        guide="auto_normal",
        optimizer="adam",
        lr=0.05,
        batch_size=64,
        num_epochs=60,
        progress_bar=False,
        num_samples=50,
        **inputs,
    )
    losses = result.losses
    assert np.isfinite(losses).all()
    assert np.mean(losses[-20:]) < np.mean(losses[:20])
    fitted = result.predict(**inputs, y=None).mean  # the seed models have no default for y
    assert np.corrcoef(fitted, Y)[0, 1] > 0.8


def test_seed_low_level_example_runs() -> None:
    model_fn, model_data = model_fm, {"x": X, "y": Y}
    rng_key = jax.random.PRNGKey(2)
    num_steps = 300
    schedule = optax.cosine_decay_schedule(0.02, num_steps)
    guide = AutoDiagonalNormal(model_fn)
    loss_instance = Batched_Trace_ELBO(num_obs=len(Y), batch_size=1000)
    # --- verbatim from the seed README ---
    svi = SVI(model_fn, guide, optax.adam(schedule), loss=loss_instance)
    svi_result = svi_run_batched(svi, rng_key, num_steps, batch_size=1000, **model_data)
    # -------------------------------------
    assert svi_result.losses.shape == (num_steps,)
    assert np.isfinite(svi_result.losses).all()
