"""Compiled training programs, cached so that a second run with the same shapes compiles nothing.

A :class:`TrainingProgram` holds one ``numpyro.infer.SVI`` together with the batch schedule and the
layout of the data (names, shapes and dtypes of the row arrays and array constants). It compiles
three things once: the initialisation (:mod:`blayers_core.engine.init`), a chunk of ``chunk_size``
training steps inside ``jax.lax.scan`` (which also tells whether the parameters it ends with are
finite), and the posterior draws (per number of draws). The data, the keys, the first step and
the total number of steps are arguments of the compiled functions, not constants baked into
them, so a new seed, new data of the same shapes or another ``num_steps`` reuse the same
executables.

The first fit of a program compiles all three at once (:meth:`TrainingProgram.start`): the main
thread traces the initialisation, which tells the state's shapes, then traces the chunk and the
draws for those shapes, while background threads compile them
(:func:`~blayers_core.engine.compile_once.compile_ahead`). On two cores that hides most of one
compile behind the other; each call then waits for its own compile and compiles nothing more.

When the batch size ``B`` does not divide the ``N`` rows, every step of a :class:`TrainingProgram`
runs the loss inside :class:`~blayers_core.engine.minibatch.padded_rows`: padding slots weigh
``0`` and real rows ``S B / N`` on top of the loss's ``N / B``, i.e. ``S`` (the steps per epoch),
so the mean loss over an epoch is the full-data loss. Otherwise the step is the plain SVI update.

:func:`get_program` looks programs up in a small process-wide
:class:`~blayers_core.engine.program_cache.ProgramCache` by a key that describes everything the
compiled code depends on.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import Future
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from numpyro.infer.svi import SVIState

from blayers_core.contract._typing import Array
from blayers_core.engine.compile_once import abstract, compile_ahead, jit_once
from blayers_core.engine.init import PendingInit, start_init
from blayers_core.engine.minibatch import BatchSchedule, EpochTable, gather_blocks, padded_rows
from blayers_core.engine.program_cache import ProgramCache

#: Programs kept per process (each holds compiled executables and one SVI).
PROGRAM_CACHE_SIZE = 16

_PROGRAMS: ProgramCache[TrainingProgram] = ProgramCache(PROGRAM_CACHE_SIZE)

#: On every device of a mesh (the SVI state of a program whose rows are split over devices).
_REPLICATED = PartitionSpec()  # type: ignore[no-untyped-call]


def _all_finite(tree: Any) -> Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree) if jnp.size(x)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


class TrainingProgram:
    """Compiled init, training chunk and posterior draws for one SVI and one data layout."""

    def __init__(
        self,
        svi: Any,
        schedule: BatchSchedule,
        chunk_size: int,
        static_constants: Mapping[str, Any],
        mesh: Mesh | None = None,
    ) -> None:
        self.svi = svi
        self.mesh = mesh  # the devices the rows are split over (None: one device)
        self.schedule = schedule
        self.chunk_size = chunk_size
        self.static_constants = dict(static_constants)
        self._run_chunk = jax.jit(self._chunk)
        self._chunk_compiling: Future[Any] | None = None  # compile_ahead of _run_chunk
        # Only a fault's diagnosis needs it (a chunk reports on its own end state): compiled then.
        self._params_finite = jax.jit(lambda state: _all_finite(self.svi.get_params(state)))
        self._init_cache: dict[str, Any] = {}
        self._draw: dict[int, Callable[..., Any]] = {}
        self._draw_compiling: dict[int, Future[Any]] = {}

    # ------------------------------------------------------------------ tracing
    def _batch(
        self,
        step_index: Array,
        rows: Mapping[str, Array],
        shuffle_key: Array,
        table: EpochTable | None = None,
    ) -> tuple[dict[str, Array], Array | None]:
        if self.schedule.is_full_batch:
            return dict(rows), None
        blocks, mask = self.schedule.block_order(step_index, shuffle_key, table)
        batch, mask = self._gather_batch(rows, blocks, mask)
        return batch, (mask if self.schedule.has_padding else None)

    def _gather_batch(
        self, rows: Mapping[str, Array], blocks: Array, mask: Array
    ) -> tuple[dict[str, Array], Array]:
        """The batch's rows, ``(B, ...)`` each, copied block by block, and its real-slot mask
        ``(B,)`` in the same order."""
        size = self.schedule.block_size
        return {k: gather_blocks(v, blocks, size) for k, v in rows.items()}, mask

    def _step(
        self,
        state: SVIState,
        step_index: Array,
        rows: Mapping[str, Array],
        constants: Mapping[str, Any],
        shuffle_key: Array,
        table: EpochTable | None,
    ) -> tuple[SVIState, Array]:
        batch, mask = self._batch(step_index, rows, shuffle_key, table)
        return self._update(state, batch, mask, constants)

    def _update(
        self,
        state: SVIState,
        batch: Mapping[str, Array],
        mask: Array | None,
        constants: Mapping[str, Any],
    ) -> tuple[SVIState, Array]:
        """One SVI update on ``batch`` (``(B, ...)`` rows); ``mask`` ``(B,)`` marks its real
        rows when the schedule pads (``None``: every row is real)."""
        arguments = {**batch, **constants, **self.static_constants}
        if mask is None:
            return self.svi.update(state, **arguments)  # type: ignore[no-any-return]
        # Outside the loss, so the mask and the weight S * B / N come after the loss's N / B:
        # every real row weighs S in every batch, and an epoch's mean loss is the full-data loss.
        with padded_rows(row_mask=mask, weight=self.schedule.row_weight):
            return self.svi.update(state, **arguments)  # type: ignore[no-any-return]

    def _chunk(
        self,
        state: SVIState,
        first_step: Array,
        num_steps: Array,
        rows: Mapping[str, Array],
        constants: Mapping[str, Any],
        shuffle_key: Array,
    ) -> tuple[SVIState, Array, Array]:
        nan = jnp.array(jnp.nan, dtype=jnp.result_type(float))
        table = self._chunk_permutations(first_step, shuffle_key)

        def body(state: SVIState, scanned: tuple[Any, ...]) -> tuple[SVIState, Array]:
            result: tuple[SVIState, Array] = jax.lax.cond(
                scanned[0] < num_steps,
                lambda s: self._scanned_step(s, scanned, rows, constants, shuffle_key, table),
                lambda s: (s, nan),
                state,
            )
            return result

        steps = first_step + jnp.arange(self.chunk_size, dtype=jnp.int32)
        end, losses = jax.lax.scan(body, state, self._scanned(steps, rows))
        return end, losses, _all_finite(self.svi.get_params(end))

    # The three hooks of a chunk; a streamed chunk (blayers_core.engine.streamed) overrides them.
    def _chunk_permutations(self, first_step: Array, shuffle_key: Array) -> EpochTable | None:
        """The block orders of every epoch the chunk's steps reach."""
        return self.schedule.chunk_permutations(first_step, self.chunk_size, shuffle_key)

    def _scanned(self, steps: Array, rows: Mapping[str, Any]) -> tuple[Any, ...]:
        """What the chunk's ``lax.scan`` runs over, step index first: ``(steps,)``."""
        return (steps,)

    def _scanned_step(
        self,
        state: SVIState,
        scanned: tuple[Any, ...],
        rows: Mapping[str, Any],
        constants: Mapping[str, Any],
        shuffle_key: Array,
        table: EpochTable | None,
    ) -> tuple[SVIState, Array]:
        """The step of one entry of :meth:`_scanned`: its batch gathered from ``rows``."""
        return self._step(state, scanned[0], rows, constants, shuffle_key, table)

    # -------------------------------------------------------------------- calls
    def start(
        self,
        rng_key: Array,
        rows: Mapping[str, Array],
        constants: Mapping[str, Any],
        shuffle_key: Array,
        *,
        eager: bool = False,
        num_samples: int | None = None,
    ) -> PendingInit:
        """Start the initialisation (``finish()`` on the result gives the initial state), and on
        the first call compile the chunk and the ``num_samples`` posterior draws meanwhile.

        Runs on the main thread: tracing the initialisation, then (when it is compiled, not
        eager) tracing and lowering the chunk and the draws for its state's shapes. XLA compiles
        the three on background threads; :meth:`run_chunk` and :meth:`draw_posterior` wait for
        theirs.
        """
        if eager:
            self._init_cache["eager"] = True
        pending = start_init(
            self.svi,
            rng_key,
            (rows, constants, shuffle_key),
            self._first_batch_arguments,
            cache=self._init_cache,
            static_kwargs=self.static_constants,
        )
        state = pending.state_shapes
        if state is None:
            return pending
        data = (abstract(rows), abstract(constants))
        if self._chunk_compiling is None:
            step = abstract(np.int32(0))
            self._chunk_compiling = _ahead(self._run_chunk, state, step, step, *data, shuffle_key)
        if num_samples is not None and num_samples not in self._draw_compiling:
            draw = self._draw_program(num_samples)
            compiling = _ahead(draw, shuffle_key, state, *data)
            if compiling is not None:
                self._draw_compiling[num_samples] = compiling
        return pending

    def init(
        self,
        rng_key: Array,
        rows: Mapping[str, Array],
        constants: Mapping[str, Any],
        shuffle_key: Array,
        *,
        eager: bool = False,
    ) -> SVIState:
        """The initial state, from the first batch: compiled once per program, or with
        ``eager=True`` op by op as NumPyro does it (for guides whose state jit cannot carry)."""
        return self.start(rng_key, rows, constants, shuffle_key, eager=eager).finish()

    def _first_batch_arguments(self, inputs: Any) -> dict[str, Any]:
        rows, constants, shuffle_key = inputs
        batch, _ = self._batch(jnp.int32(0), rows, shuffle_key)
        return {**batch, **constants}

    def run_chunk(
        self,
        state: SVIState,
        first_step: int,
        num_steps: int,
        rows: Mapping[str, Array],
        constants: Mapping[str, Any],
        shuffle_key: Array,
    ) -> tuple[SVIState, Array, Array]:
        """Steps ``first_step .. first_step + chunk_size - 1``; those ``>= num_steps`` are skipped.

        Returns the state after them, their losses (NaN for skipped steps) and whether the
        parameters of that state are all finite (a device bool)."""
        if self._chunk_compiling is not None:
            self._chunk_compiling.result()  # compiled ahead (or raises what compiling raised)
        if self.mesh is not None:  # replicated on the mesh (a state restored comes from the host)
            state = jax.device_put(state, NamedSharding(self.mesh, _REPLICATED))
        return self._run_chunk(  # type: ignore[no-any-return]
            state, np.int32(first_step), np.int32(num_steps), rows, constants, shuffle_key
        )

    def params_finite(self, state: SVIState) -> bool:
        """Whether every parameter of ``state`` is finite."""
        return bool(self._params_finite(state))

    def draw_posterior(
        self,
        rng_key: Array,
        state: SVIState,
        num_samples: int,
        rows: Mapping[str, Array],
        constants: Mapping[str, Any],
    ) -> tuple[dict[str, Any], dict[str, Array]]:
        """The parameters of ``state`` and ``num_samples`` draws of every latent site from the
        guide, in one compiled call (once per count); the guide sees the first batch of ``rows``."""
        draw = self._draw_program(num_samples)
        compiling = self._draw_compiling.get(num_samples)
        if compiling is not None:
            compiling.result()
        return draw(rng_key, state, rows, constants)  # type: ignore[no-any-return]

    def _draw_program(self, num_samples: int) -> Callable[..., Any]:
        """The jitted ``(key, state, rows, constants) -> (params, draws)`` for ``num_samples``."""
        if num_samples not in self._draw:
            from blayers_core.engine.posterior import draw_posterior

            batch = self.schedule.batch_size

            def draw(key: Array, state: SVIState, rows: Any, constants: Any) -> Any:
                params = self.svi.get_params(state)
                first = self._first_rows(rows, batch)
                data = {**first, **constants, **self.static_constants}
                return params, draw_posterior(self.svi.guide, params, key, num_samples, data)

            self._draw[num_samples] = jit_once(draw)
        return self._draw[num_samples]

    def _first_rows(self, rows: Any, batch_size: int) -> dict[str, Array]:
        """The first ``batch_size`` rows of ``rows`` (what the posterior draws' guide sees)."""
        return {k: v[:batch_size] for k, v in rows.items()}


def _ahead(jitted: Any, *args: Any) -> Future[Any] | None:
    """:func:`compile_ahead`, or ``None`` when tracing fails: the program's first call then
    traces it again and raises the error where it always has (after the initialisation)."""
    try:
        return compile_ahead(jitted, *args)
    except Exception:
        return None


def get_program(key: Hashable, build: Callable[[], TrainingProgram]) -> TrainingProgram:
    """The cached program for ``key`` (and the current trace settings), built on a miss."""
    return _PROGRAMS.get(key, build)


def clear_program_cache() -> None:
    """Forget every cached program (their compiled code is freed with them)."""
    _PROGRAMS.clear()
