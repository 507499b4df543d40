"""``fit``: resolve the loss, guide and optimizer by name, then run the minibatch loop."""

from __future__ import annotations

import os
import warnings
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import attrs
import jax
import numpy as np
from numpyro.infer import SVI

from blayers_core.api.result import FitResult
from blayers_core.contract._typing import Array, GuideFn, ModelFn
from blayers_core.contract.errors import DataError
from blayers_core.contract.protocols import Loss, MinibatchLoss
from blayers_core.contract.registry import check_protocol, get_registry
from blayers_core.engine.checkpoint import Checkpointer, CheckpointError, data_fingerprint
from blayers_core.engine.data import split_rows_and_constants
from blayers_core.engine.dry_run import dry_run
from blayers_core.engine.mcmc import fit_nuts
from blayers_core.engine.minibatch import BatchSchedule
from blayers_core.engine.program import TrainingProgram
from blayers_core.engine.runner import (
    DEFAULT_CHUNK_SIZE,
    NonFiniteLossError,
    PreparedData,
    prepare_data,
    program_for,
    resolve_num_steps,
    train,
)
from blayers_core.io.frames import DataEncoder, encode_fit_data

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


def _spec_key(kind: str, spec: Any, *extra: Any) -> Hashable:
    """What identifies a component for the program cache: its name and config, or the object."""
    if isinstance(spec, str):
        return (kind, spec, *extra)
    return (kind, "object", id(spec))


def component_record(spec: Any, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """How a component was given: its registered name and config, or the object's type."""
    if isinstance(spec, str):
        return {"name": spec, "config": dict(config or {})}
    kind = type(spec)
    return {"name": None, "type": f"{kind.__module__}.{kind.__qualname__}"}


def _learning_rate_config(lr: Any) -> dict[str, Any]:
    if isinstance(lr, int | float) and not isinstance(lr, bool):
        return {"learning_rate": float(lr)}
    kind = type(lr)
    return {"learning_rate": None, "learning_rate_type": f"{kind.__module__}.{kind.__qualname__}"}


def _learning_rate_key(lr: Any) -> Hashable:
    try:
        hash(lr)
        return ("value", lr)
    except TypeError:
        return ("object", id(lr))


def fit(
    model: ModelFn,
    *,
    data: Mapping[str, Any] | Any | None = None,
    columns: Mapping[str, str | Sequence[str]] | DataEncoder | None = None,
    method: str = "vi",
    loss: str | Loss = "batched_elbo",
    guide: str | GuideFn = "auto_diagonal_normal",
    optimizer: Any = "adam",
    lr: Any = None,
    batch_size: int | None = None,
    num_steps: int | None = None,
    num_epochs: int | None = None,
    num_samples: int = 1000,
    num_warmup: int = 1000,
    num_chains: int = 1,
    seed: int = 0,
    shuffle: bool = True,
    progress_bar: bool = True,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    num_obs: int | None = None,
    **data_kwargs: Any,
) -> FitResult:
    """Fit ``model`` to data: stochastic variational inference (default) or NUTS.

    Every component can be given by its registered name or as an object::

        fit(model, x=x, y=y, loss="batched_elbo", guide="auto_normal", optimizer="adam",
            lr=0.01, batch_size=512, num_epochs=50)
        fit(model, x=x, y=y, method="nuts", num_warmup=500, num_samples=1000, num_chains=2)

    Args:
        model: a NumPyro model called as ``model(**data)``.
        data: the data as a mapping (added to ``**data_kwargs``), or a pandas or polars
            DataFrame: model arguments named like a column get that column, numbers as
            ``float32``, categories as ``int32`` codes (see :mod:`blayers_core.io.frames`); the
            result keeps the encoder (``result.levels``, ``result.predict(data=new_df)``).
        columns: with a DataFrame, ``{"x": ["age", "bmi"], "g": "group"}`` maps an argument to
            a list of columns (an ``(n, k)`` matrix) or one column (``(n,)``); or a
            :class:`~blayers_core.io.frames.DataEncoder` built beforehand with ``from_frame``.
        method: ``"vi"`` (minibatch SVI) or ``"nuts"`` (NUTS on the full data).
        loss: a loss name (``"batched_elbo"``, ``"trace_elbo"``, ...) or a loss object.
        guide: a guide name (``"auto_normal"``, ...) or a guide built on ``model``.
        optimizer: an optimizer name (``"adam"``, ...) or an optax transformation.
        lr: learning rate (a float or an optax schedule) for a named optimizer; default 0.01.
        batch_size: rows per step; ``None`` uses every row at every step.
        num_steps: optimisation steps; or give ``num_epochs``. Default: 2000 steps.
        num_epochs: passes over the data.
        num_samples: posterior draws kept on the result (per chain for NUTS).
        num_warmup: NUTS warm-up iterations per chain.
        num_chains: NUTS chains.
        seed: seeds initialisation, the ELBO's draws, the batch order and the posterior draws.
        shuffle: reshuffle minibatches every epoch.
        progress_bar: show a tqdm progress bar.
        chunk_size: steps per compiled ``lax.scan`` chunk.
        checkpoint_dir: write checkpoints there (atomically, the last three kept).
        checkpoint_every: steps between checkpoints (rounded up to whole chunks); default: at the
            end and on Ctrl-C only.
        resume: continue from the newest valid checkpoint in ``checkpoint_dir``, if there is one.
            The resumed run gives the same parameters, bit for bit on CPU, as an uninterrupted one.
        num_obs: rows in the data; default: the largest leading dimension of the array arguments.
            Arrays with that many rows are batched; every other value is a constant.
        **data_kwargs: the model's arguments.

    Raises:
        DataError: unusable data (non-numeric or non-finite rows, ...), before anything compiles.
        NonFiniteLossError: a loss or gradient turned non-finite; ``.result`` holds the fit at the
            last finite state, ``.step`` and ``.rows`` say where.
    """
    data, encoder = encode_fit_data(model, data, columns, data_kwargs)
    all_data = _merge_data(data, data_kwargs)
    split = split_rows_and_constants(all_data, num_obs)
    n = split.num_rows
    if not isinstance(num_samples, int | np.integer) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    if method == "nuts":
        observed = dry_run(model, split.rows, split.constants, seed=seed).observed_sites
        nuts = fit_nuts(
            model,
            split,
            observed,
            num_warmup=num_warmup,
            num_samples=int(num_samples),
            num_chains=num_chains,
            seed=seed,
            progress_bar=progress_bar,
        )
        return FitResult(
            model=model,
            guide=None,
            params={},
            losses=np.zeros(0, dtype=np.float32),
            posterior_samples=nuts.posterior_samples,
            observed_sites=observed,
            constants=split.constants,
            num_rows=split.num_rows,
            method="nuts",
            mcmc=nuts.mcmc,
            num_chains=nuts.num_chains,
            components=nuts.components,
            encoder=encoder,
        )
    if method != "vi":
        raise ValueError(f"method must be 'vi' or 'nuts', got {method!r}")
    if batch_size is not None and (not isinstance(batch_size, int | np.integer) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs checkpoint_dir= (where the checkpoints are)")
    minibatched = batch_size is not None and batch_size < n
    if num_steps is None and num_epochs is None:
        num_steps = DEFAULT_NUM_STEPS
    schedule = BatchSchedule(num_rows=n, batch_size=batch_size or n, shuffle=shuffle)
    total = resolve_num_steps(num_steps, num_epochs, schedule.steps_per_epoch)
    chunk = min(chunk_size, total)
    if checkpoint_every is not None:
        if not isinstance(checkpoint_every, int) or checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be a positive int, got {checkpoint_every!r}")
        checkpoint_every = -(-checkpoint_every // chunk) * chunk  # whole chunks

    loss_fn = resolve_loss(loss, num_rows=n, minibatched=minibatched)
    if not isinstance(optimizer, str) and lr is not None:
        raise ValueError(
            "lr= configures a named optimizer only; set the rate on the optimizer object instead"
        )
    learning_rate = DEFAULT_LEARNING_RATE if lr is None else lr
    optim = resolve_optimizer(optimizer, learning_rate)
    guide_fn = resolve_guide(guide, model)
    checked = dry_run(model, split.rows, split.constants, seed=seed)  # bad input raises here
    observed = checked.observed_sites

    records = {
        "loss": component_record(loss),
        "guide": component_record(guide),
        "optimizer": component_record(optimizer, _learning_rate_config(learning_rate)),
    }
    sample_key, init_key, shuffle_key = jax.random.split(jax.random.PRNGKey(seed), 3)
    prepared = prepare_data(split, schedule, seed)
    svi_key = (
        ("model", id(model)),
        _spec_key("loss", loss, getattr(loss_fn, "num_obs", None)),
        _spec_key("guide", guide),
        _spec_key("optimizer", optimizer, _learning_rate_key(learning_rate)),
    )
    program = program_for(
        svi_key, lambda: SVI(model, guide_fn, optim, loss_fn), prepared, schedule, chunk
    )
    state = program.init(
        init_key,
        prepared.rows,
        prepared.array_constants,
        shuffle_key,
        # NumPyro keeps deterministic values on the guide where jit cannot restore them.
        eager=bool(checked.deterministic_sites),
    )

    checkpointer, first_step, losses = None, 0, None
    if checkpoint_dir is not None:
        meta = {
            "seed": int(seed),
            "num_rows": n,
            "batch_size": schedule.batch_size,
            "shuffle": bool(shuffle),
            "num_steps": total,
            "chunk_size": chunk,
            "data": data_fingerprint(split.rows),
        }
        checkpointer = Checkpointer(checkpoint_dir, meta)
        if resume:
            state, first_step, losses = _resume(checkpointer, state)

    try:
        outcome = train(
            program,
            prepared,
            state=state,
            shuffle_key=shuffle_key,
            num_steps=total,
            first_step=first_step,
            losses=losses,
            progress_bar=progress_bar,
            checkpointer=checkpointer,
            checkpoint_every=checkpoint_every,
        )
    except NonFiniteLossError as error:
        error.result = _result(
            model,
            program,
            prepared,
            split,
            observed,
            error.state,
            error.losses,
            error.step,
            interrupted=False,
            sample_key=sample_key,
            num_samples=int(num_samples),
            components=records,
        )
        error.result = attrs.evolve(error.result, encoder=encoder)
        raise
    if outcome.interrupted:
        how = (
            "run the same fit(...) call with resume=True to continue"
            if checkpoint_dir is not None
            else "pass checkpoint_dir= (and resume=True next time) to be able to continue"
        )
        warnings.warn(
            f"training interrupted after {outcome.steps_done} of {total} steps; the result holds "
            f"the parameters reached so far; {how}",
            RuntimeWarning,
            stacklevel=2,
        )
    result = _result(
        model,
        program,
        prepared,
        split,
        observed,
        outcome.state,
        outcome.losses,
        outcome.steps_done,
        interrupted=outcome.interrupted,
        sample_key=sample_key,
        num_samples=int(num_samples),
        components=records,
    )
    return attrs.evolve(result, encoder=encoder)


def _resume(checkpointer: Checkpointer, fresh_state: Any) -> tuple[Any, int, np.ndarray | None]:
    checkpoint = checkpointer.load_latest()
    if checkpoint is None:
        return fresh_state, 0, None
    leaves, treedef = jax.tree_util.tree_flatten(fresh_state)
    shapes = [(tuple(np.shape(a)), np.asarray(a).dtype) for a in leaves]
    saved = [(tuple(a.shape), a.dtype) for a in checkpoint.leaves]
    if shapes != saved:
        raise CheckpointError(
            f"checkpoint {checkpoint.path} does not fit this model and guide (parameter shapes "
            "differ); use another checkpoint_dir or resume=False"
        )
    restored = jax.tree_util.tree_unflatten(
        treedef, [jax.numpy.asarray(a) for a in checkpoint.leaves]
    )
    return restored, checkpoint.step, checkpoint.losses


def _result(
    model: ModelFn,
    program: TrainingProgram,
    prepared: PreparedData,
    split: Any,
    observed: tuple[str, ...],
    state: Any,
    losses: np.ndarray,
    steps_done: int,
    *,
    interrupted: bool,
    sample_key: Array,
    num_samples: int,
    components: dict[str, Any],
) -> FitResult:
    svi = program.svi
    params = svi.get_params(state)
    batch = program.schedule.batch_size
    first_rows = {k: v[:batch] for k, v in prepared.rows.items()}
    posterior = program.draw_posterior(
        sample_key, params, num_samples, first_rows, prepared.array_constants
    )
    return FitResult(
        model=model,
        guide=svi.guide,
        params=params,
        losses=np.asarray(losses),
        posterior_samples=posterior,
        observed_sites=observed,
        constants=split.constants,
        num_rows=prepared.num_rows,
        state=state,
        steps_done=steps_done,
        interrupted=interrupted,
        components=components,
    )
