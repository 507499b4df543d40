"""The VI back end of ``fit``: minibatch stochastic variational inference, compiled in chunks.

The loss, guide and optimizer are resolved by name (or taken as objects), the data are checked by
a dry run, and the cached :class:`~blayers_core.engine.program.TrainingProgram` for this model,
these components and this data layout runs the steps (:func:`~blayers_core.engine.runner.train`),
with checkpoints when asked. The result holds the final parameters and draws from the guide.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import jax
import numpy as np
from numpyro.infer import SVI

from blayers_core.api.components import (
    component_key,
    component_record,
    learning_rate_config,
    learning_rate_key,
    resolve_guide,
    resolve_loss,
    resolve_optimizer,
)
from blayers_core.api.options import FitOptions, VIOptions
from blayers_core.api.result import FitResult
from blayers_core.contract._typing import Array, ModelFn
from blayers_core.engine.checkpoint import (
    Checkpointer,
    CheckpointError,
    data_fingerprint,
    model_sites,
    state_entries,
)
from blayers_core.engine.data import SplitData
from blayers_core.engine.dry_run import dry_run
from blayers_core.engine.minibatch import BatchSchedule
from blayers_core.engine.program import TrainingProgram
from blayers_core.engine.runner import (
    NonFiniteLossError,
    PreparedData,
    initial_state,
    prepare_data,
    program_for,
    train,
)


class VIBackend:
    """``method="vi"``: minibatch SVI with the loss, guide and optimizer of :class:`VIOptions`."""

    name = "vi"
    options_type = VIOptions

    def run(self, model: ModelFn, data: SplitData, options: FitOptions[VIOptions]) -> FitResult:
        """Train, then draw ``options.num_samples`` posterior draws from the fitted guide.

        Raises:
            NonFiniteLossError: a loss or gradient turned non-finite; its ``.result`` holds the
                fit at the last finite state.
            NonFiniteDensityError: the initialisation found no point with a finite log density.
            ValueError: a per-row latent site while training on minibatches.
        """
        vi, n, seed = options.method, data.num_rows, options.seed
        schedule = BatchSchedule(num_rows=n, batch_size=vi.batch_size or n, shuffle=vi.shuffle)
        total = vi.total_steps(schedule.steps_per_epoch)
        chunk = min(vi.chunk_size, total)
        minibatched = vi.batch_size is not None and vi.batch_size < n
        loss = resolve_loss(vi.loss, num_rows=n, minibatched=minibatched)
        optimizer = resolve_optimizer(vi.optimizer, vi.learning_rate)
        guide = resolve_guide(vi.guide, model)
        # Bad input, and a per-row latent under minibatches, raise here.
        checked = dry_run(
            model,
            data.rows,
            data.constants,
            seed=seed,
            batch_size=vi.batch_size if minibatched else None,
        )

        sample_key, init_key, shuffle_key = jax.random.split(jax.random.PRNGKey(seed), 3)
        prepared = prepare_data(data, schedule, seed)
        svi_key = (
            ("model", id(model)),
            component_key("loss", vi.loss, getattr(loss, "num_obs", None)),
            component_key("guide", vi.guide),
            component_key("optimizer", vi.optimizer, learning_rate_key(vi.learning_rate)),
        )
        program = program_for(
            svi_key, lambda: SVI(model, guide, optimizer, loss), prepared, schedule, chunk
        )
        state = initial_state(
            program,
            prepared,
            init_key,
            shuffle_key,
            # NumPyro keeps deterministic values on the guide where jit cannot restore them.
            eager=bool(checked.deterministic_sites),
        )
        finish = _Finisher(model, program, prepared, data, checked.observed_sites, options)

        checkpointer, first_step, losses = None, 0, None
        if vi.checkpoint_dir is not None:
            record = _checkpoint_record(model, prepared, schedule, vi, state)
            checkpointer = _checkpointer(
                vi.checkpoint_dir, data, schedule, seed, total, chunk, record
            )
            if vi.resume:
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
                progress_bar=options.progress_bar,
                checkpointer=checkpointer,
                checkpoint_every=_whole_chunks(vi.checkpoint_every, chunk),
            )
        except NonFiniteLossError as error:
            error.result = finish(error.state, error.losses, error.step, False, sample_key)
            raise
        if outcome.interrupted:
            _warn_interrupted(outcome.steps_done, total, vi.checkpoint_dir)
        return finish(
            outcome.state, outcome.losses, outcome.steps_done, outcome.interrupted, sample_key
        )


def _whole_chunks(every: int | None, chunk: int) -> int | None:
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
) -> Checkpointer:
    """The run's checkpointer, with what must match on resume: the run's settings and data, then
    ``record`` (:func:`_checkpoint_record`)."""
    meta = {
        "seed": int(seed),
        "num_rows": data.num_rows,
        "batch_size": schedule.batch_size,
        "shuffle": bool(schedule.shuffle),
        "num_steps": total,
        "chunk_size": chunk,
        "data": data_fingerprint(data.rows),
        **record,
    }
    return Checkpointer(directory, meta)


def _checkpoint_record(
    model: ModelFn, prepared: PreparedData, schedule: BatchSchedule, vi: VIOptions, state: Any
) -> dict[str, Any]:
    """What the state belongs to: the components, the model's latent sites (traced abstractly on
    one batch) and the path, shape and dtype of every leaf of the fresh state."""
    batch = {k: v[: schedule.batch_size] for k, v in prepared.rows.items()}
    arrays = {**batch, **prepared.array_constants}
    return {
        "components": _component_records(vi),
        "sites": model_sites(model, arrays, prepared.static_constants),
        "state": state_entries(state),
    }


def _component_records(vi: VIOptions) -> dict[str, Any]:
    """How the loss, guide and optimizer were given (name and config, or the object's type)."""
    return {
        "loss": component_record(vi.loss),
        "guide": component_record(vi.guide),
        "optimizer": component_record(vi.optimizer, learning_rate_config(vi.learning_rate)),
    }


def _resume(checkpointer: Checkpointer, fresh_state: Any) -> tuple[Any, int, np.ndarray | None]:
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


def _warn_interrupted(steps_done: int, total: int, checkpoint_dir: Any) -> None:
    how = (
        "run the same fit(...) call with resume=True to continue"
        if checkpoint_dir is not None
        else "pass checkpoint_dir= (and resume=True next time) to be able to continue"
    )
    warnings.warn(
        f"training interrupted after {steps_done} of {total} steps; the result holds "
        f"the parameters reached so far; {how}",
        RuntimeWarning,
        stacklevel=4,  # fit's caller (past this function, run and fit)
    )


class _Finisher:
    """Builds the result from a training state: parameters, losses and posterior draws."""

    def __init__(
        self,
        model: ModelFn,
        program: TrainingProgram,
        prepared: PreparedData,
        data: SplitData,
        observed: tuple[str, ...],
        options: FitOptions[VIOptions],
    ) -> None:
        self.model, self.program, self.prepared = model, program, prepared
        self.data, self.observed, self.options = data, observed, options

    def __call__(
        self,
        state: Any,
        losses: np.ndarray,
        steps_done: int,
        interrupted: bool,
        sample_key: Array,
    ) -> FitResult:
        svi, vi = self.program.svi, self.options.method
        params = svi.get_params(state)
        batch = self.program.schedule.batch_size
        first_rows = {k: v[:batch] for k, v in self.prepared.rows.items()}
        posterior = self.program.draw_posterior(
            sample_key, params, self.options.num_samples, first_rows, self.prepared.array_constants
        )
        return FitResult(
            model=self.model,
            guide=svi.guide,
            params=params,
            losses=np.asarray(losses),
            posterior_samples=posterior,
            observed_sites=self.observed,
            constants=self.data.constants,
            num_rows=self.prepared.num_rows,
            state=state,
            steps_done=steps_done,
            interrupted=interrupted,
            components=_component_records(vi),
        )
