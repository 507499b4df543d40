"""The training loop: compiled chunks of steps, a progress bar, and faults that lose nothing.

:func:`train` drives a :class:`~blayers_core.engine.program.TrainingProgram`:

* the data go to the device once (shuffled once on the host); each step gathers its batch there;
* ``chunk_size`` steps run in one compiled ``lax.scan``; between chunks the tqdm bar advances and
  a checkpoint may be written. The bar's steps/s count from the end of the first chunk, which holds
  the compilation;
* a non-finite loss or gradient stops training at the chunk where it appears. The chunk is
  replayed up to the step before it, so the state returned is the last finite one, and the step
  and the rows of its batch are reported (:class:`NonFiniteLossError`); for a non-finite loss the
  model is re-evaluated outside ``jit`` on those rows at the guide's median, and the message names
  the site, row and value at fault (:mod:`~blayers_core.engine.diagnose`). So does the error of an
  initialisation that finds no finite starting point;
* Ctrl-C stops after the last completed chunk, keeps that state and says how to resume.

:func:`svi_run_batched` is the same loop for a ``numpyro.infer.SVI`` that the caller built.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import attrs
import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer.svi import SVIRunResult, SVIState
from tqdm.auto import tqdm

from blayers_core.contract._typing import Array
from blayers_core.contract.inference import SplitData
from blayers_core.engine.checkpoint import Checkpointer
from blayers_core.engine.data import split_constants, split_rows_and_constants
from blayers_core.engine.diagnose import (
    NUMPYRO_NO_VALID_START,
    NonFiniteDensityError,
    SiteFault,
    fault_at_guide,
    no_valid_start_error,
)
from blayers_core.engine.minibatch import BatchSchedule
from blayers_core.engine.program import TrainingProgram, get_program
from blayers_core.engine.program_cache import data_signature, static_key

#: Steps per compiled chunk unless the caller chooses.
DEFAULT_CHUNK_SIZE = 500


class NonFiniteLossError(FloatingPointError):
    """Training produced a non-finite loss or gradient; nothing after it was kept.

    Attributes:
        step: the step whose loss (or gradient) was not finite.
        rows: indices (into the data as given) of the rows in that step's batch.
        state: the last finite ``SVIState`` (before ``step``).
        losses: losses of the steps before ``step``.
        fault: for a non-finite loss, the site, row and value at fault at the guide's median
            (``None`` when the re-evaluation found none).
        result: set by ``fit``: a ``FitResult`` built from the last finite state.
    """

    def __init__(
        self,
        message: str,
        *,
        step: int,
        rows: np.ndarray,
        state: Any,
        losses: np.ndarray,
        fault: SiteFault | None = None,
    ):
        super().__init__(message)
        self.step = step
        self.rows = rows
        self.state = state
        self.losses = losses
        self.fault = fault
        self.result: Any = None


@attrs.frozen
class TrainingOutcome:
    """Where a run ended: its state after ``steps_done`` steps and every loss so far."""

    state: SVIState
    losses: np.ndarray
    steps_done: int
    interrupted: bool


def resolve_num_steps(num_steps: int | None, num_epochs: int | None, steps_per_epoch: int) -> int:
    """Total steps from exactly one of ``num_steps`` and ``num_epochs``."""
    if (num_steps is None) == (num_epochs is None):
        raise ValueError(
            "give exactly one of num_steps= and num_epochs= "
            f"(got num_steps={num_steps!r}, num_epochs={num_epochs!r})"
        )
    if num_epochs is not None:
        if not isinstance(num_epochs, int | np.integer) or num_epochs < 1:
            raise ValueError(f"num_epochs must be a positive int, got {num_epochs!r}")
        return int(num_epochs) * steps_per_epoch
    if not isinstance(num_steps, int | np.integer) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive int, got {num_steps!r}")
    return int(num_steps)


@attrs.frozen
class PreparedData:
    """Row data on the device (shuffled once), constants split by kind, and the row order."""

    rows: dict[str, Array]  # in slot order: num_slots rows when minibatched, else num_rows
    array_constants: dict[str, Array]
    static_constants: dict[str, Any]
    order: np.ndarray  # slot -> row index in the data as given
    num_rows: int
    # slot -> position in the device arrays; None: the same (one device). Several devices lay
    # the slots out so that each holds its share of every batch (blayers_core.engine.devices).
    slot_positions: np.ndarray | None = None
    # processes the rows are spread over (jax.distributed); > 1: each holds its own rows, and
    # ``order`` maps this process's positions to its rows.
    processes: int = 1


def prepare_data(split: SplitData, schedule: BatchSchedule, seed: int) -> PreparedData:
    """Shuffle the rows once on the host (when batches are shuffled), lay them out in slot order
    (padding slots repeat the first rows, see :meth:`BatchSchedule.slot_rows`) and put them on
    the device."""
    n = split.num_rows
    if schedule.is_full_batch:
        order, host = np.arange(n), dict(split.rows)
    else:
        order = np.random.default_rng(seed).permutation(n) if schedule.shuffle else np.arange(n)
        layout = order[schedule.slot_rows()]
        host = {k: np.asarray(v)[layout] for k, v in split.rows.items()}
    array_constants, static = split_constants(split.constants)
    arrays = {k: to_device(v) for k, v in array_constants.items()}
    rows = {k: to_device(v) for k, v in host.items()}
    return PreparedData(rows, arrays, static, order, n)


def to_device(value: Any) -> Array:
    """``jnp.asarray(value)`` without compiling anything: a NumPy array is copied to the device
    as it is (in JAX's dtype for it, e.g. float64 -> float32 without x64), where ``jnp.asarray``
    would compile a small program per shape and dtype to do the same."""
    if isinstance(value, np.ndarray) and not isinstance(value, np.ma.MaskedArray):
        host = value.astype(jax.dtypes.canonicalize_dtype(value.dtype), copy=False)
        placed: Array = jax.device_put(host)
        return placed
    return jnp.asarray(value)


def program_for(
    svi_key: Any, build_svi: Any, data: PreparedData, schedule: BatchSchedule, chunk_size: int
) -> TrainingProgram:
    """The cached program for this SVI (by key), schedule, chunk size and data layout."""
    key = (
        svi_key,
        (schedule.num_rows, schedule.batch_size, schedule.shuffle),
        chunk_size,
        data_signature(data.rows),
        data_signature(data.array_constants),
        static_key(data.static_constants),
    )
    return get_program(
        key, lambda: TrainingProgram(build_svi(), schedule, chunk_size, data.static_constants)
    )


def train(
    program: TrainingProgram,
    data: PreparedData,
    *,
    state: SVIState,
    shuffle_key: Array,
    num_steps: int,
    first_step: int = 0,
    losses: np.ndarray | None = None,
    progress_bar: bool = True,
    checkpointer: Checkpointer | None = None,
    checkpoint_every: int | None = None,
    feed: ChunkFeed | None = None,
) -> TrainingOutcome:
    """Run steps ``first_step .. num_steps - 1`` of ``program`` from ``state``.

    ``feed`` gives each chunk its rows argument (default: ``data.rows``, every row on the device,
    :class:`InMemoryFeed`); a stream's feed hands over the batches of each chunk in turn.
    """
    feed = InMemoryFeed(data, shuffle_key) if feed is None else feed
    chunk = program.chunk_size
    history = [np.asarray(losses if losses is not None else np.zeros(0, np.float32))]
    step = first_step
    interrupted = False
    with (
        _stop_on_ctrl_c() as stop,
        tqdm(
            total=num_steps, initial=first_step, disable=not progress_bar, unit="step", leave=False
        ) as bar,
    ):
        while step < num_steps and not stop.requested:
            try:
                rows = feed.rows(step)
                new_state, device_losses, params_finite = program.run_chunk(
                    state, step, num_steps, rows, data.array_constants, shuffle_key
                )
                done = min(chunk, num_steps - step)
                chunk_losses = np.asarray(device_losses)[:done]
                finite = bool(np.isfinite(chunk_losses).all()) and bool(params_finite)
            except KeyboardInterrupt:  # a second Ctrl-C, or not the main thread
                stop.requested = True
                break
            if not finite:
                raise _diagnose(
                    program,
                    data,
                    feed,
                    rows,
                    state,
                    step,
                    chunk_losses,
                    new_state,
                    shuffle_key,
                    history,
                )
            first_chunk = step == first_step
            state, step = new_state, step + done
            history.append(chunk_losses)
            bar.update(done)
            if first_chunk:
                _restart_clock(bar, step)
            bar.set_postfix(loss=f"{float(chunk_losses[-1]):.4g}")
            if checkpointer is not None and (
                step == num_steps or (checkpoint_every and step % checkpoint_every == 0)
            ):
                checkpointer.save(state, step, np.concatenate(history))
        interrupted = stop.requested and step < num_steps
        if interrupted and checkpointer is not None and step > first_step:
            checkpointer.save(state, step, np.concatenate(history))
    return TrainingOutcome(state, np.concatenate(history), step, interrupted)


def _restart_clock(bar: Any, step: int) -> None:
    """Restart the bar's clock at ``step``, the end of the first chunk: that chunk's time is mostly
    compilation (or a read from the compilation cache) and the data's trip to the device, so the
    steps/s shown count the chunks after it."""
    bar.reset()
    bar.n = bar.last_print_n = bar.initial = step


class _StopRequest:
    requested = False


@contextlib.contextmanager
def _stop_on_ctrl_c() -> Iterator[_StopRequest]:
    """While training: the first Ctrl-C asks the loop to stop after the current chunk (its
    checkpoint is then written whole); a second one interrupts at once."""
    stop = _StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signal handlers can only be set from the main thread
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        if stop.requested:
            raise KeyboardInterrupt
        stop.requested = True

    signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


class ChunkFeed(Protocol):
    """Where :func:`train` gets each chunk's rows, and a step's rows for a fault's report."""

    def rows(self, step: int) -> Any:
        """The rows argument of the chunk that starts at ``step``."""

    def batch(self, program: TrainingProgram, step: int) -> tuple[np.ndarray, dict[str, Any]]:
        """The real rows of ``step``'s batch: their indices in the data as given, and the
        model's keyword arguments on them."""


@attrs.frozen
class InMemoryFeed:
    """Every chunk gets all the rows on the device; each step gathers its batch there."""

    data: PreparedData
    shuffle_key: Array

    def rows(self, step: int) -> Any:
        return self.data.rows

    def batch(self, program: TrainingProgram, step: int) -> tuple[np.ndarray, dict[str, Any]]:
        positions = batch_positions(program.schedule, step, self.shuffle_key)
        return self.data.order[positions], batch_arguments(program, self.data, positions)


def _diagnose(
    program: TrainingProgram,
    data: PreparedData,
    feed: ChunkFeed,
    chunk_rows: Any,
    start_state: SVIState,
    first: int,
    chunk_losses: np.ndarray,
    end_state: SVIState,
    shuffle_key: Array,
    history: list[np.ndarray],
) -> NonFiniteLossError:
    """Replay the chunk (on its rows, ``chunk_rows``) to find the first bad step and the last
    finite state before it."""

    def state_at(step: int) -> tuple[SVIState, bool]:  # after steps first .. step-1; finite?
        if step == first:
            return start_state, program.params_finite(start_state)
        replayed, _, finite = program.run_chunk(
            start_state, first, step, chunk_rows, data.array_constants, shuffle_key
        )
        return replayed, bool(finite)

    bad = np.flatnonzero(~np.isfinite(chunk_losses))
    limit = first + int(bad[0]) if bad.size else first + len(chunk_losses)
    candidate, candidate_finite = (end_state, False) if not bad.size else state_at(limit)
    if bad.size and candidate_finite:
        culprit, what, last_state = limit, "the loss", candidate
    else:  # the parameters turned non-finite: the update of the step before was at fault
        culprit, what = limit - 1, "the gradient (the parameters became NaN or inf)"
        last_state, _ = state_at(culprit)
    kept = np.concatenate([*history, chunk_losses[: culprit - first]])
    if data.processes > 1:  # the batch's rows are spread over the processes
        return NonFiniteLossError(
            f"training stopped at step {culprit}: {what} was not finite on a batch of rows of "
            f"all {data.processes} processes. The last finite state (after {culprit} steps) is "
            "kept on this error (.state, and .result from fit). To find the rows at fault, fit "
            "each process's rows in one process.",
            step=culprit,
            rows=np.zeros(0, dtype=np.int64),
            state=last_state,
            losses=kept,
        )
    rows, arguments = feed.batch(program, culprit)
    fault = None
    if what == "the loss":
        params = program.svi.get_params(last_state)
        fault = fault_at_guide(
            program.svi.model,
            program.svi.guide,
            params,
            arguments,
            num_rows=len(rows),
            row_ids=rows,
        )
    found = (
        f"Re-evaluated outside jit at the guide's median: {fault.describe()}. "
        if fault is not None
        else ""
    )
    advice = (
        ""
        if fault is not None
        else " Look for extreme values in those rows, scale the inputs, or lower the learning rate."
    )
    return NonFiniteLossError(
        f"training stopped at step {culprit}: {what} was not finite on the batch of rows "
        f"[{_shown(rows)}]. {found}The last finite state (after {culprit} steps) is kept on this "
        f"error (.state, and .result from fit).{advice}",
        step=culprit,
        rows=rows,
        state=last_state,
        losses=kept,
        fault=fault,
    )


def _shown(rows: np.ndarray, limit: int = 10) -> str:
    return ", ".join(str(r) for r in rows[:limit]) + (", ..." if rows.size > limit else "")


def batch_positions(schedule: BatchSchedule, step: int, shuffle_key: Array) -> np.ndarray:
    """The slots of the real rows of ``step``'s batch (padding left out); the data's rows are
    ``PreparedData.order`` at those slots."""
    if schedule.is_full_batch:
        return np.arange(schedule.num_rows)
    positions, mask = schedule.indices(step, shuffle_key)
    real: np.ndarray = np.asarray(positions)[np.asarray(mask)]
    return real


def batch_arguments(
    program: TrainingProgram, data: PreparedData, positions: np.ndarray
) -> dict[str, Any]:
    """The model's keyword arguments on the rows at slots ``positions`` of the data."""
    if data.slot_positions is not None:
        positions = data.slot_positions[positions]
    index = jnp.asarray(positions)
    rows = {k: jnp.take(v, index, axis=0) for k, v in data.rows.items()}
    return {**rows, **data.array_constants, **program.static_constants}


def initial_state(
    program: TrainingProgram,
    data: PreparedData,
    rng_key: Array,
    shuffle_key: Array,
    *,
    eager: bool = False,
    num_samples: int | None = None,
    first_batch: Callable[[], tuple[np.ndarray, dict[str, Any]]] | None = None,
) -> SVIState:
    """``program.init`` on the first batch; when NumPyro finds no initial point with a finite log
    density, a :class:`NonFiniteDensityError` naming the site and row at fault instead.

    ``first_batch`` gives, for that error, the first batch's real rows (their indices in the data
    as given) and the model's arguments on them; default: gathered from ``data``'s rows in memory.

    On a program's first call the training chunk (and the draw of ``num_samples`` posterior
    draws, when given) compile on background threads meanwhile (:meth:`TrainingProgram.start`).

    Raises:
        NonFiniteDensityError: no finite starting point (the NumPyro error is its cause).
    """
    try:
        return program.start(
            rng_key,
            data.rows,
            data.array_constants,
            shuffle_key,
            eager=eager,
            num_samples=num_samples,
        ).finish()
    except RuntimeError as error:
        if NUMPYRO_NO_VALID_START not in str(error):
            raise
        if first_batch is None:
            if data.processes > 1:  # the batch's rows are spread over the processes
                raise
            rows, arguments = InMemoryFeed(data, shuffle_key).batch(program, 0)
        else:
            rows, arguments = first_batch()
        raise no_valid_start_error(
            f"the guide's initialisation on the first batch (rows [{_shown(rows)}])",
            program.svi.model,
            arguments,
            num_rows=len(rows),
            row_ids=rows,
            error=error,
        ) from error


def svi_run_batched(
    svi: Any,
    rng_key: Array,
    num_steps: int | None = None,
    *,
    batch_size: int | None = None,
    num_epochs: int | None = None,
    shuffle: bool = True,
    progress_bar: bool = True,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    init_state: SVIState | None = None,
    num_obs: int | None = None,
    **data: Any,
) -> SVIRunResult:
    """Run ``svi`` over minibatches of ``data`` for ``num_steps`` steps or ``num_epochs`` epochs.

    Args:
        svi: a ``numpyro.infer.SVI``; for minibatches its loss should rescale them
            (e.g. ``Batched_Trace_ELBO(num_obs=n)``).
        rng_key: PRNG key for initialisation, the ELBO's draws and the batch order.
        num_steps: total optimisation steps (or give ``num_epochs``).
        batch_size: rows per step ``B``; ``None`` uses every row at every step.
        num_epochs: passes over the data; each epoch sees every row once.
        shuffle: reshuffle the batches every epoch (``False``: rows in order).
        progress_bar: show a tqdm bar with steps/s and the running loss.
        chunk_size: steps per compiled ``lax.scan`` chunk.
        init_state: continue from this ``SVIState`` instead of ``svi.init``.
        num_obs: rows in the data; default: the largest leading dimension among the arrays.
        **data: keyword arrays with the same leading dimension ``n`` are batched; anything else
            is passed unchanged to every call.

    Returns:
        ``SVIRunResult(params, state, losses)`` with ``losses`` of shape ``(num_steps,)``.

    Raises:
        NonFiniteLossError: a loss or gradient was not finite (carries the last finite state).
        ValueError: the program runs in several processes (use ``fit``).
    """
    if jax.process_count() > 1:
        raise ValueError(
            f"svi_run_batched runs in one process, but this program runs in "
            f"{jax.process_count()} (jax.distributed): use blayers_core.fit, which fits the rows "
            "of every process together"
        )
    split = split_rows_and_constants(data, num_obs)
    schedule = BatchSchedule(
        num_rows=split.num_rows, batch_size=batch_size or split.num_rows, shuffle=shuffle
    )
    total = resolve_num_steps(num_steps, num_epochs, schedule.steps_per_epoch)
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    init_key, shuffle_key, order_key = jax.random.split(rng_key, 3)
    prepared = prepare_data(split, schedule, int(jax.random.randint(order_key, (), 0, 2**31 - 1)))
    program = program_for(("svi", id(svi)), lambda: svi, prepared, schedule, min(chunk_size, total))
    if program.svi is not svi:  # an id reused after the first SVI was freed
        program = TrainingProgram(svi, schedule, min(chunk_size, total), prepared.static_constants)
    state = (
        init_state
        if init_state is not None
        else initial_state(program, prepared, init_key, shuffle_key)
    )
    outcome = train(
        program,
        prepared,
        state=state,
        shuffle_key=shuffle_key,
        num_steps=total,
        progress_bar=progress_bar,
    )
    return SVIRunResult(svi.get_params(outcome.state), outcome.state, jnp.asarray(outcome.losses))


__all__ = ["NonFiniteDensityError", "NonFiniteLossError", "svi_run_batched"]
