"""``fit``: resolve the loss, guide and optimizer by name, then run the minibatch loop."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from numpyro.infer import SVI, Predictive
from numpyro.infer.autoguide import AutoGuide

from blayers_core._typing import Array, GuideFn, ModelFn
from blayers_core.data import split_rows_and_constants
from blayers_core.dry_run import dry_run
from blayers_core.errors import DataError
from blayers_core.protocols import Loss, MinibatchLoss
from blayers_core.registry import check_protocol, get_registry
from blayers_core.results import FitResult
from blayers_core.runner import DEFAULT_CHUNK_SIZE, svi_run_batched

#: Steps when neither ``num_steps`` nor ``num_epochs`` is given.
DEFAULT_NUM_STEPS = 2000
#: Learning rate of a named optimizer when ``lr`` is not given.
DEFAULT_LEARNING_RATE = 1e-2


def resolve_loss(spec: str | Loss, *, num_rows: int, minibatched: bool) -> Loss:
    """A loss from a registered name or an object; minibatch losses learn ``num_obs`` here."""
    if isinstance(spec, str):
        built = get_registry().build("loss", spec)
    else:
        check_protocol("loss", spec, origin=type(spec).__name__)
        built = spec
    if isinstance(built, MinibatchLoss):
        if built.num_obs is None:
            return built.with_num_obs(num_rows)  # type: ignore[no-any-return]
        if built.num_obs != num_rows:
            raise ValueError(
                f"the loss was built with num_obs={built.num_obs}, but the data have {num_rows} "
                "rows; build it without num_obs and fit fills it in"
            )
        return built
    if minibatched:
        raise ValueError(
            f"loss {spec!r} does not rescale minibatches: with batch_size < {num_rows} rows each "
            "step would fit the posterior of one batch. Use loss='batched_elbo', or "
            "batch_size=None for full-batch steps."
        )
    return built  # type: ignore[no-any-return]


def resolve_guide(spec: str | GuideFn, model: ModelFn) -> GuideFn:
    """A guide from a registered name, or the guide object itself."""
    if isinstance(spec, str):
        return get_registry().build("guide", spec, model)  # type: ignore[no-any-return]
    if callable(spec):
        return spec
    raise TypeError(
        f"guide must be a registered name such as 'auto_normal' or a NumPyro guide callable; "
        f"got {type(spec).__name__}"
    )


def resolve_optimizer(spec: Any, learning_rate: Any) -> Any:
    """An optax transformation from a registered name, or the transformation itself."""
    if isinstance(spec, str):
        return get_registry().build("optimizer", spec, learning_rate)
    if callable(getattr(spec, "init", None)) and callable(getattr(spec, "update", None)):
        return spec
    raise TypeError(
        "optimizer must be a registered name such as 'adam', an optax GradientTransformation, "
        f"or a numpyro.optim optimizer; got {type(spec).__name__}"
    )


def _merge_data(data: Mapping[str, Any] | None, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(data or {})
    clash = sorted(set(merged) & set(kwargs))
    if clash:
        raise DataError(
            f"arguments {clash} are given both in data= and as keywords; give each once"
        )
    merged.update(kwargs)
    return merged


def draw_posterior(
    guide: GuideFn, params: dict[str, Any], rng_key: Array, num_samples: int, data: dict[str, Any]
) -> dict[str, Array]:
    """``num_samples`` draws of every latent site from the fitted guide."""
    if isinstance(guide, AutoGuide):
        return guide.sample_posterior(rng_key, params, **data, sample_shape=(num_samples,))  # type: ignore[no-any-return]
    draws = Predictive(guide, params=params, num_samples=num_samples)(rng_key, **data)
    return {k: v for k, v in draws.items() if not k.startswith("_")}


def fit(
    model: ModelFn,
    *,
    data: Mapping[str, Any] | None = None,
    loss: str | Loss = "batched_elbo",
    guide: str | GuideFn = "auto_diagonal_normal",
    optimizer: Any = "adam",
    lr: Any = None,
    batch_size: int | None = None,
    num_steps: int | None = None,
    num_epochs: int | None = None,
    num_samples: int = 1000,
    seed: int = 0,
    shuffle: bool = True,
    progress_bar: bool = True,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    num_obs: int | None = None,
    **data_kwargs: Any,
) -> FitResult:
    """Fit ``model`` to data by stochastic variational inference.

    Every component can be given by its registered name or as an object::

        fit(model, x=x, y=y, loss="batched_elbo", guide="auto_normal", optimizer="adam",
            lr=0.01, batch_size=512, num_epochs=50)

    Args:
        model: a NumPyro model called as ``model(**data)``.
        data: the data as a mapping (added to ``**data_kwargs``).
        loss: a loss name (``"batched_elbo"``, ``"trace_elbo"``, ...) or a loss object.
        guide: a guide name (``"auto_normal"``, ...) or a guide built on ``model``.
        optimizer: an optimizer name (``"adam"``, ...) or an optax transformation.
        lr: learning rate (a float or an optax schedule) for a named optimizer; default 0.01.
        batch_size: rows per step; ``None`` uses every row at every step.
        num_steps: optimisation steps; or give ``num_epochs``. Default: 2000 steps.
        num_epochs: passes over the data.
        num_samples: posterior draws kept on the result.
        seed: seeds initialisation, the ELBO's draws, the batch order and the posterior draws.
        shuffle: reshuffle minibatches every epoch.
        progress_bar: show a tqdm progress bar.
        chunk_size: steps per compiled ``lax.scan`` chunk.
        num_obs: rows in the data; default: the largest leading dimension of the array arguments.
            Arrays with that many rows are batched; every other value is a constant.
        **data_kwargs: the model's arguments.
    """
    all_data = _merge_data(data, data_kwargs)
    split = split_rows_and_constants(all_data, num_obs)
    n = split.num_rows
    if batch_size is not None and (not isinstance(batch_size, int | np.integer) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
    minibatched = batch_size is not None and batch_size < n
    if num_steps is None and num_epochs is None:
        num_steps = DEFAULT_NUM_STEPS
    if not isinstance(num_samples, int | np.integer) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")

    loss_fn = resolve_loss(loss, num_rows=n, minibatched=minibatched)
    if not isinstance(optimizer, str) and lr is not None:
        raise ValueError(
            "lr= configures a named optimizer only; set the rate on the optimizer object instead"
        )
    optim = resolve_optimizer(optimizer, DEFAULT_LEARNING_RATE if lr is None else lr)
    guide_fn = resolve_guide(guide, model)

    observed = dry_run(model, split.rows, split.constants, seed=seed)  # bad input raises here
    key = jax.random.PRNGKey(seed)
    run_key, sample_key = jax.random.split(key)
    svi = SVI(model, guide_fn, optim, loss_fn)
    run = svi_run_batched(
        svi,
        run_key,
        num_steps,
        batch_size=batch_size,
        num_epochs=num_epochs,
        shuffle=shuffle,
        progress_bar=progress_bar,
        chunk_size=chunk_size,
        num_obs=n,
        **split.rows,
        **split.constants,
    )
    sample_rows = {k: v[: min(n, batch_size or n)] for k, v in split.rows.items()}
    call_data = {**sample_rows, **split.constants}
    posterior = draw_posterior(guide_fn, run.params, sample_key, int(num_samples), call_data)
    return FitResult(
        model=model,
        guide=guide_fn,
        params=run.params,
        losses=np.asarray(run.losses),
        posterior_samples=posterior,
        observed_sites=observed,
        constants=split.constants,
        num_rows=n,
        state=run.state,
    )
