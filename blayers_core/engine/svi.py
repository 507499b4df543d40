"""Stochastic variational inference, the engine behind the first-party ``svi`` method.

The loss, guide and optimizer are resolved by name (or taken as objects), a per-row latent under
minibatches is refused, and the cached :class:`~blayers_core.engine.program.TrainingProgram` for
this model, these components and this data layout runs the steps
(:func:`~blayers_core.engine.runner.train`), with checkpoints when asked. The outcome holds the
final parameters, the loss history and draws from the fitted guide. With ``problem.devices``, the
rows are split over those devices and every batch is shared between them
(:mod:`blayers_core.engine.devices`); without, the one-device program runs as it always has.

The generative model is the user's; with latents ``z`` and the guide ``q_phi(z)``, each step
takes one optimiser step on ``phi`` against a minibatch estimate of the negative ELBO,
``-E_q[log p(y, z) - log q_phi(z)]`` (see the loss for how a batch is scaled to the data).
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import attrs
import jax
import numpy as np
from numpyro.infer import SVI

from blayers_core.contract._typing import Array, ModelFn
from blayers_core.contract.errors import user_stacklevel
from blayers_core.contract.inference import FitProblem, InferenceOutcome, RowStream, SplitData
from blayers_core.engine.checkpoint import (
    Checkpointer,
    CheckpointError,
    data_fingerprint,
    model_sites,
    state_entries,
)
from blayers_core.engine.compile_once import jit_once
from blayers_core.engine.components import (
    component_key,
    component_record,
    learning_rate_config,
    learning_rate_key,
    resolve_guide,
    resolve_loss,
    resolve_optimizer,
)
from blayers_core.engine.devices import (
    ProcessRows,
    check_batch_split,
    every_process_fingerprint,
    prepare_process_data,
    prepare_sharded_data,
    process_local,
    process_rows,
    row_mesh,
    several_processes,
    sharded_program_for,
)
from blayers_core.engine.dry_run import check_minibatch_latents
from blayers_core.engine.minibatch import BatchSchedule
from blayers_core.engine.program import TrainingProgram
from blayers_core.engine.runner import (
    DEFAULT_CHUNK_SIZE,
    ChunkFeed,
    NonFiniteLossError,
    PreparedData,
    initial_state,
    prepare_data,
    program_for,
    resolve_num_steps,
    train,
)

#: Steps when neither ``num_steps`` nor ``num_epochs`` is given.
DEFAULT_NUM_STEPS = 2000
#: Posterior draws from the fitted guide when ``fit`` is not given ``num_samples``.
DEFAULT_NUM_SAMPLES = 1000


@attrs.frozen(kw_only=True)
class SVISettings:
    """The options of one SVI run, taken as valid (the ``svi`` method validates them).

    ``learning_rate`` configures a named optimizer; ``num_steps`` and ``num_epochs`` are
    exclusive (neither: :data:`DEFAULT_NUM_STEPS`).
    """

    loss: Any = "batched_elbo"
    guide: Any = "auto_diagonal_normal"
    optimizer: Any = "adam"
    learning_rate: Any = 1e-2
    batch_size: int | None = None
    num_steps: int | None = None
    num_epochs: int | None = None
    shuffle: bool = True
    chunk_size: int = DEFAULT_CHUNK_SIZE
    checkpoint_dir: str | os.PathLike[str] | None = None
    checkpoint_every: int | None = None
    resume: bool = False

    def total_steps(self, steps_per_epoch: int) -> int:
        """Steps to run: ``num_steps``, ``num_epochs`` epochs, or :data:`DEFAULT_NUM_STEPS`."""
        if self.num_steps is None and self.num_epochs is None:
            return DEFAULT_NUM_STEPS
        return resolve_num_steps(self.num_steps, self.num_epochs, steps_per_epoch)


def train_svi(problem: FitProblem, settings: SVISettings) -> InferenceOutcome:
    """Train ``problem.model``'s guide, then draw ``problem.num_samples`` posterior draws.

    Raises:
        NonFiniteLossError: a loss or gradient turned non-finite; its ``.result`` holds the
            outcome at the last finite state (``fit`` turns it into a ``FitResult``).
        NonFiniteDensityError: the initialisation found no point with a finite log density.
        ValueError: a per-row latent site while training on minibatches.
    """
    if isinstance(problem.data, RowStream):  # rows read from disk (blayers_core.engine.streamed)
        from blayers_core.engine.streamed import train_streamed_svi

        return train_streamed_svi(problem, settings)
    vi, data, model, seed = settings, problem.data, problem.model, problem.seed
    mesh = None if problem.devices is None else row_mesh(problem.devices)
    # Several processes (jax.distributed): each gave its own rows; n counts every process's.
    layout = process_rows(data.num_rows, mesh) if mesh is not None and several_processes() else None
    n = data.num_rows if layout is None else layout.num_rows
    if mesh is not None:
        check_batch_split(n, vi.batch_size, mesh.size)
    batch_size = min(vi.batch_size or n, n)
    schedule = BatchSchedule(
        num_rows=n,
        batch_size=batch_size,
        shuffle=vi.shuffle,
        num_devices=1 if mesh is None else mesh.size,
        min_steps_per_epoch=1 if layout is None else layout.min_steps_per_epoch(batch_size),
        always_blocks=layout is not None,
    )
    total = vi.total_steps(schedule.steps_per_epoch)
    chunk = min(vi.chunk_size, total)
    # Several processes pad each device's share, so the loss must weigh rows (N / B) as
    # minibatch losses do, even when one batch holds every row.
    minibatched = layout is not None or (vi.batch_size is not None and vi.batch_size < n)
    loss = resolve_loss(vi.loss, num_rows=n, minibatched=minibatched)
    optimizer = resolve_optimizer(vi.optimizer, vi.learning_rate)
    guide = resolve_guide(vi.guide, model)
    if minibatched:  # a per-row latent would be shared between the rows of a batch: refuse it
        check_minibatch_latents(
            model,
            data.rows,
            data.constants,
            seed=seed,
            batch_size=min(schedule.batch_size, data.num_rows),
        )

    sample_key, init_key, shuffle_key = fit_keys(seed)
    svi_key = program_key(model, vi, loss)
    program: TrainingProgram
    if mesh is None:
        prepared = prepare_data(data, schedule, seed)
        program = program_for(
            svi_key, lambda: SVI(model, guide, optimizer, loss), prepared, schedule, chunk
        )
    else:  # the rows split over the devices (blayers_core.engine.devices)
        prepared = (
            prepare_sharded_data(data, schedule, seed, mesh)
            if layout is None
            else prepare_process_data(data, schedule, seed, mesh, layout)
        )
        program = sharded_program_for(
            svi_key,
            lambda: SVI(model, guide, optimizer, loss),
            prepared,
            schedule,
            chunk,
            mesh,
            per_device=None if layout is None else layout.per_device,
        )
    num_samples = problem.draws(DEFAULT_NUM_SAMPLES)
    state = initial_state(
        program,
        prepared,
        init_key,
        shuffle_key,
        # NumPyro keeps deterministic values on the guide where jit cannot restore them.
        eager=bool(problem.deterministic_sites),
        num_samples=num_samples,
    )
    finish = Finisher(program, prepared, vi, num_samples, local=layout is not None)

    checkpointer, first_step, losses = None, 0, None
    if vi.checkpoint_dir is not None:
        record = _checkpoint_record(model, prepared, schedule, vi, state)
        checkpointer = _checkpointer(
            vi.checkpoint_dir, data, schedule, seed, total, chunk, record, layout
        )
        if vi.resume:
            state, first_step, losses = resume_state(checkpointer, state)
    return train_then_draw(
        program,
        prepared,
        finish,
        state=state,
        keys=(shuffle_key, sample_key),
        num_steps=total,
        first_step=first_step,
        losses=losses,
        # several processes: process 0 shows the bar (and writes the checkpoints)
        progress_bar=problem.progress_bar and jax.process_index() == 0,
        checkpointer=checkpointer,
        checkpoint_every=whole_chunks(vi.checkpoint_every, chunk),
    )


def program_key(model: ModelFn, vi: SVISettings, loss: Any) -> tuple[Any, ...]:
    """What identifies the compiled programs of this model, loss, guide and optimizer (the
    components by name and config, or by object)."""
    return (
        ("model", id(model)),
        component_key("loss", vi.loss, getattr(loss, "num_obs", None)),
        component_key("guide", vi.guide),
        component_key("optimizer", vi.optimizer, learning_rate_key(vi.learning_rate)),
    )


def train_then_draw(
    program: TrainingProgram,
    prepared: PreparedData,
    finish: Finisher,
    *,
    state: Any,
    keys: tuple[Array, Array],
    num_steps: int,
    first_step: int,
    losses: np.ndarray | None,
    progress_bar: bool,
    checkpointer: Checkpointer | None,
    checkpoint_every: int | None,
    feed: ChunkFeed | None = None,
) -> InferenceOutcome:
    """Train from ``state`` (:func:`~blayers_core.engine.runner.train`, the rows from ``feed``
    when given), then ``finish``: the outcome with its posterior draws. ``keys``: the batch
    order's and the draws'.

    Raises:
        NonFiniteLossError: with ``.result``, the outcome at the last finite state.
    """
    shuffle_key, sample_key = keys
    try:
        outcome = train(
            program,
            prepared,
            state=state,
            shuffle_key=shuffle_key,
            num_steps=num_steps,
            first_step=first_step,
            losses=losses,
            progress_bar=progress_bar,
            checkpointer=checkpointer,
            checkpoint_every=checkpoint_every,
            feed=feed,
        )
    except NonFiniteLossError as error:
        error.result = finish(error.state, error.losses, error.step, False, sample_key)
        raise
    if outcome.interrupted:
        _warn_interrupted(outcome.steps_done, num_steps, checkpointer)
    return finish(
        outcome.state, outcome.losses, outcome.steps_done, outcome.interrupted, sample_key
    )


def fit_keys(seed: int) -> tuple[Array, Array, Array]:
    """``jax.random.split(jax.random.PRNGKey(seed), 3)``: the posterior draws', the
    initialisation's and the batch order's keys, in one compiled call (eagerly, seeding,
    splitting and unpacking would compile three small programs). Seeds outside int32, which JAX
    seeds through int64, take the eager path."""
    if not -(2**31) <= seed < 2**31:
        sample, init, shuffle = jax.random.split(jax.random.PRNGKey(seed), 3)
        return sample, init, shuffle
    keys: tuple[Array, Array, Array] = _split_seed(np.int32(seed))
    return keys


@jit_once
def _split_seed(seed: Array) -> tuple[Array, Array, Array]:
    sample, init, shuffle = jax.random.split(jax.random.PRNGKey(seed), 3)
    return sample, init, shuffle


def whole_chunks(every: int | None, chunk: int) -> int | None:
    """Steps between checkpoints, rounded up to whole chunks."""
    return None if every is None else -(-every // chunk) * chunk


def _checkpointer(
    directory: str | os.PathLike[str],
    data: SplitData,
    schedule: BatchSchedule,
    seed: int,
    total: int,
    chunk: int,
    record: dict[str, Any],
    layout: ProcessRows | None = None,
) -> Checkpointer:
    """The run's checkpointer, with what must match on resume: the run's settings and data, then
    ``record`` (:func:`_checkpoint_record`). Several processes (``layout``): the rows of each
    process (a fingerprint of every process's fingerprint), and only process 0 writes."""
    meta = {
        "seed": int(seed),
        "num_rows": data.num_rows if layout is None else layout.num_rows,
        "batch_size": schedule.batch_size,
        "shuffle": bool(schedule.shuffle),
        "num_steps": total,
        "chunk_size": chunk,
        "data": data_fingerprint(data.rows),
        **record,
    }
    if schedule.num_devices != 1:  # the batches' blocks depend on it (one device: as before)
        meta["num_devices"] = schedule.num_devices
    if layout is not None:
        meta["data"] = every_process_fingerprint(meta["data"])
        meta["process_rows"] = list(layout.counts)
    return Checkpointer(directory, meta, writer=jax.process_index() == 0)


def _checkpoint_record(
    model: ModelFn, prepared: PreparedData, schedule: BatchSchedule, vi: SVISettings, state: Any
) -> dict[str, Any]:
    """What the state belongs to: the components, the model's latent sites (traced abstractly on
    one batch) and the path, shape and dtype of every leaf of the fresh state."""
    batch = {k: v[: schedule.batch_size] for k, v in prepared.rows.items()}
    arrays = {**batch, **prepared.array_constants}
    return {
        "components": component_records(vi),
        "sites": model_sites(model, arrays, prepared.static_constants),
        "state": state_entries(state),
    }


def component_records(vi: SVISettings) -> dict[str, Any]:
    """How the loss, guide and optimizer were given (name and config, or the object's type)."""
    return {
        "loss": component_record(vi.loss),
        "guide": component_record(vi.guide),
        "optimizer": component_record(vi.optimizer, learning_rate_config(vi.learning_rate)),
    }


def resume_state(
    checkpointer: Checkpointer, fresh_state: Any
) -> tuple[Any, int, np.ndarray | None]:
    """The newest valid checkpoint's state, step and losses, or the fresh state at step 0."""
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


def _warn_interrupted(steps_done: int, total: int, checkpointer: Checkpointer | None) -> None:
    how = (
        "run the same fit(...) call with resume=True to continue"
        if checkpointer is not None
        else "pass checkpoint_dir= (and resume=True next time) to be able to continue"
    )
    warnings.warn(
        f"training interrupted after {steps_done} of {total} steps; the result holds "
        f"the parameters reached so far; {how}",
        RuntimeWarning,
        stacklevel=user_stacklevel(),
    )


class Finisher:
    """Builds the outcome from a training state: parameters, losses and posterior draws."""

    def __init__(
        self,
        program: TrainingProgram,
        prepared: PreparedData,
        settings: SVISettings,
        num_samples: int,
        *,
        local: bool = False,
    ) -> None:
        self.program, self.prepared = program, prepared
        self.settings, self.num_samples = settings, num_samples
        self.local = local  # several processes: every array to this process's memory

    def __call__(
        self,
        state: Any,
        losses: np.ndarray,
        steps_done: int,
        interrupted: bool,
        sample_key: Array,
    ) -> InferenceOutcome:
        params, posterior = self.program.draw_posterior(
            sample_key, state, self.num_samples, self.prepared.rows, self.prepared.array_constants
        )
        if self.local:
            params, posterior, state = process_local((params, posterior, state))
        return InferenceOutcome(
            posterior_samples=posterior,
            guide=self.program.svi.guide,
            params=params,
            losses=np.asarray(losses),
            state=state,
            steps_done=steps_done,
            interrupted=interrupted,
            components=component_records(self.settings),
        )
