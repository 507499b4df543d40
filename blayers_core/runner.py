"""The training loop: every step on the device, inside ``jax.lax.scan``, in chunks.

``svi_run_batched`` takes a ready ``numpyro.infer.SVI`` (any guide, optimizer and loss) and runs it
over minibatches chosen by :class:`~blayers_core.minibatch.BatchSchedule`:

* the data go to the device once; each step gathers its ``B`` rows there;
* ``chunk_size`` steps run in one compiled ``lax.scan``; between chunks the progress bar advances.
  Every chunk has the same length (steps past ``num_steps`` are skipped with ``lax.cond``), so a
  run compiles its step once, whatever ``num_steps`` is;
* a ragged last batch is padded to ``B`` slots and masked (:class:`~blayers_core.minibatch.padded_rows`),
  so it needs no second compilation either.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer.svi import SVIRunResult, SVIState
from tqdm.auto import tqdm

from blayers_core._typing import Array
from blayers_core.data import split_rows_and_constants, to_device
from blayers_core.minibatch import BatchSchedule, padded_rows

#: Steps per compiled chunk unless the caller chooses.
DEFAULT_CHUNK_SIZE = 500


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


def _gather(rows: dict[str, Array], indices: Array) -> dict[str, Array]:
    return {k: jnp.take(v, indices, axis=0) for k, v in rows.items()}


def make_step(
    update: Callable[..., tuple[SVIState, Array]],
    rows: dict[str, Array],
    constants: dict[str, Any],
    schedule: BatchSchedule,
    shuffle_key: Array,
) -> Callable[[SVIState, Array], tuple[SVIState, Array]]:
    """One training step at global step ``step``: pick the batch, mask padding, update."""

    def step(state: SVIState, step_index: Array) -> tuple[SVIState, Array]:
        if schedule.is_full_batch:
            return update(state, **rows, **constants)
        indices, mask = schedule.indices(step_index, shuffle_key)
        batch = _gather(rows, indices)
        if not schedule.has_padding:
            return update(state, **batch, **constants)
        with padded_rows(row_mask=mask):
            return update(state, **batch, **constants)

    return step


def make_chunk_runner(
    step: Callable[[SVIState, Array], tuple[SVIState, Array]],
    chunk_size: int,
    num_steps: int,
) -> Callable[[SVIState, Array], tuple[SVIState, Array]]:
    """A jitted ``(state, first_step) -> (state, losses[chunk_size])``; steps past the end skip."""

    def body(state: SVIState, step_index: Array) -> tuple[SVIState, Array]:
        result: tuple[SVIState, Array] = jax.lax.cond(
            step_index < num_steps,
            step,
            lambda s, _: (s, jnp.array(jnp.nan, dtype=jnp.result_type(float))),
            state,
            step_index,
        )
        return result

    def run_chunk(state: SVIState, first_step: Array) -> tuple[SVIState, Array]:
        steps = first_step + jnp.arange(chunk_size, dtype=jnp.int32)
        result: tuple[SVIState, Array] = jax.lax.scan(body, state, steps)
        return result

    return jax.jit(run_chunk)


def shuffle_rows_once(rows: dict[str, Any], seed: int) -> dict[str, Any]:
    """The same random row permutation applied to every row array, on the host."""
    n = len(next(iter(rows.values())))
    order = np.random.default_rng(seed).permutation(n)
    return {k: np.asarray(v)[order] for k, v in rows.items()}


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
    """
    split = split_rows_and_constants(data, num_obs)
    n = split.num_rows
    schedule = BatchSchedule(num_rows=n, batch_size=batch_size or n, shuffle=shuffle)
    total = resolve_num_steps(num_steps, num_epochs, schedule.steps_per_epoch)
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    chunk_size = min(chunk_size, total)

    init_key, shuffle_key, order_seed = jax.random.split(rng_key, 3)
    host_rows = split.rows
    if shuffle and not schedule.is_full_batch:
        seed = int(jax.random.randint(order_seed, (), 0, np.iinfo(np.int32).max))
        host_rows = shuffle_rows_once(host_rows, seed)
    rows = to_device(host_rows)

    step = make_step(svi.update, rows, split.constants, schedule, shuffle_key)
    if init_state is None:
        first_rows = (
            rows if schedule.is_full_batch else _gather(rows, schedule.indices(0, shuffle_key)[0])
        )
        init_state = svi.init(init_key, **first_rows, **split.constants)
    run_chunk = make_chunk_runner(step, chunk_size, total)

    state = init_state
    losses: list[np.ndarray] = []
    with tqdm(total=total, disable=not progress_bar, unit="step", leave=False) as bar:
        for chunk in range(math.ceil(total / chunk_size)):
            first = chunk * chunk_size
            state, chunk_losses = run_chunk(state, jnp.asarray(first, dtype=jnp.int32))
            done = min(chunk_size, total - first)
            losses.append(np.asarray(chunk_losses)[:done])
            bar.update(done)
            bar.set_postfix(loss=f"{float(losses[-1][-1]):.4g}")
    all_losses = np.concatenate(losses)
    return SVIRunResult(svi.get_params(state), state, jnp.asarray(all_losses))
