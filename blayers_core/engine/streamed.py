r"""SVI on rows streamed from disk: batches read, decoded and copied ahead while the device trains.

``fit(model, data="data.parquet", batch_size=B, ...)`` hands the ``svi`` method a
:class:`~blayers_core.contract.inference.RowStream` (:mod:`blayers_core.io.parquet`) instead of
rows in memory, and :func:`~blayers_core.engine.svi.train_svi` passes it here.

* The stream's batches are a function of ``(seed, step)``: step ``s`` of epoch
  ``e = s // S`` (``S = ceil(N / B)``) holds ``B`` slots, every row once per epoch, the last batch
  of an epoch padded and masked (see the stream for the shuffle).
* A :class:`StreamedTrainingProgram` compiles a chunk of ``K`` steps whose batches are an
  argument, stacked ``(K, B, ...)`` with the ``(K, B)`` real-row mask, instead of being gathered
  from every row on the device; each step is the in-memory program's update
  (:meth:`~blayers_core.engine.program.TrainingProgram._update`): under a padded schedule the
  padding weighs ``0`` and every real row ``S B / N`` on top of the loss's ``N / B``, so an epoch's
  mean loss is the full-data loss. It compiles once per layout, like the in-memory chunk.
* :class:`StreamFeed` reads and stacks the next chunks on a background thread (pyarrow and NumPy
  release the GIL) and copies them to the device (``jax.device_put``) there, at most
  :data:`PREFETCH_CHUNKS` ahead, while the current chunk runs. The host holds at most one
  chunk being stacked and the stream's window; the device the chunks queued.
* The loop is :func:`~blayers_core.engine.runner.train`'s (progress bar, checkpoints, Ctrl-C,
  non-finite loss diagnosis); on a fault the culprit step's batch is read again from the stream.
* ``K`` is ``chunk_size`` capped so that a chunk holds at most :data:`MAX_CHUNK_ROWS` slots.
* With ``problem.devices`` (``D`` devices, ``D`` dividing ``B``) each chunk is placed on the
  one-axis mesh split along the rows, ``NamedSharding(mesh, PartitionSpec(None, "rows"))``:
  each device receives ``B / D`` rows of every batch and XLA all-reduces the loss and gradients,
  as for rows in memory (:mod:`blayers_core.engine.devices`).
* With several processes (``jax.process_count() > 1``) each process streams its own part of
  the row groups and feeds its share of every batch to its own devices
  (``jax.make_array_from_process_local_data``); the epochs are padded to a common length
  (:class:`StreamLayout`). Every process ends with the same state; process 0 writes the
  checkpoints, every process reads them.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from numpyro.infer import SVI
from numpyro.infer.svi import SVIState

from blayers_core.contract._typing import Array
from blayers_core.contract.inference import FitProblem, HostBatch, InferenceOutcome, RowStream
from blayers_core.engine.checkpoint import Checkpointer, model_sites, state_entries
from blayers_core.engine.components import (
    resolve_guide,
    resolve_loss,
    resolve_optimizer,
)
from blayers_core.engine.data import split_constants
from blayers_core.engine.devices import ROW_AXIS, check_batch_split, replicate, row_mesh
from blayers_core.engine.dry_run import check_minibatch_latents
from blayers_core.engine.minibatch import BatchSchedule, EpochTable
from blayers_core.engine.program import TrainingProgram, get_program
from blayers_core.engine.program_cache import data_signature, static_key
from blayers_core.engine.runner import PreparedData, initial_state, to_device

#: Slots a compiled chunk of streamed batches holds at most (``K * B``); ``K`` is capped to it.
MAX_CHUNK_ROWS = 1 << 18
#: Chunks read and copied to the device ahead of the one training.
PREFETCH_CHUNKS = 2


def dry_run_rows(batch_size: int) -> int:
    """Rows from the start of a stream that ``fit``'s dry run checks (the stream's other rows are
    checked as they are read): enough for two batches, and at least 4096."""
    return max(2 * batch_size, 4096)


class StreamedTrainingProgram(TrainingProgram):
    """A :class:`~blayers_core.engine.program.TrainingProgram` whose chunk takes its batches as
    an argument: ``rows`` is ``{"rows": {name: (K, B, ...)}, "mask": (K, B)}``."""

    def _chunk_permutations(self, first_step: Array, shuffle_key: Array) -> EpochTable | None:
        return None  # the stream's batches come in shuffled

    def _scanned(self, steps: Array, rows: Mapping[str, Any]) -> tuple[Any, ...]:
        """The step indices with the chunk's batches ``(K, B, ...)`` and masks ``(K, B)``."""
        return (steps, rows["rows"], rows["mask"])

    def _scanned_step(
        self,
        state: SVIState,
        scanned: tuple[Any, ...],
        rows: Mapping[str, Any],
        constants: Mapping[str, Any],
        shuffle_key: Array,
        table: EpochTable | None,
    ) -> tuple[SVIState, Array]:
        """The in-memory program's update on the step's streamed batch."""
        _, batch, mask = scanned
        return self._update(state, batch, mask if self.schedule.has_padding else None, constants)

    def _batch(
        self,
        step_index: Array,
        rows: Mapping[str, Any],
        shuffle_key: Array,
        table: EpochTable | None = None,
    ) -> tuple[dict[str, Array], Array | None]:
        """The chunk's first batch (the initialisation's)."""
        return self._first_rows(rows, self.schedule.batch_size), None

    def _first_rows(self, rows: Any, batch_size: int) -> dict[str, Array]:
        return {k: v[0] for k, v in rows["rows"].items()}


def stack_chunk(batches: list[Any], size: int) -> dict[str, Any]:
    """``size`` host batches stacked: ``{"rows": {name: (size, B, ...)}, "mask": (size, B),
    "row_ids": (size, B)}``; fewer batches are followed by copies of the last (steps the chunk
    skips)."""
    fill = [*batches, *[batches[-1]] * (size - len(batches))]
    names = fill[0].rows
    return {
        "rows": {k: np.stack([b.rows[k] for b in fill]) for k in names},
        "mask": np.stack([b.mask for b in fill]),
        "row_ids": np.stack([b.row_ids for b in fill]),
    }


def real_rows(batch: HostBatch, constants: Mapping[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    """The real (unpadded) rows of ``batch``: their indices in the data as given, and the
    model's arguments on them (with ``constants``)."""
    rows = {k: v[batch.mask] for k, v in batch.rows.items()}
    return batch.row_ids[batch.mask], {**rows, **constants}


class StreamFeed:
    """The chunks of a stream from ``first_step`` on, read, stacked and put on the device by a
    background thread, at most ``prefetch`` ahead. :meth:`rows` hands them over in order."""

    def __init__(
        self,
        stream: RowStream,
        *,
        batch_size: int,
        seed: int,
        shuffle: bool,
        chunk_size: int,
        first_step: int,
        num_steps: int,
        place: Callable[[Any], Any],
        constants: Mapping[str, Any],
        steps_per_epoch: int | None = None,
        prefetch: int = PREFETCH_CHUNKS,
    ) -> None:
        self.stream, self.batch_size, self.seed, self.shuffle = stream, batch_size, seed, shuffle
        self.steps_per_epoch = steps_per_epoch
        self.chunk_size, self.num_steps, self.place = chunk_size, num_steps, place
        self.constants = dict(constants)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=prefetch)
        self._stop = threading.Event()
        self._next_step = first_step
        self._thread = threading.Thread(
            target=self._produce, args=(first_step,), name="blayers-stream-reader", daemon=True
        )
        self._thread.start()

    def _produce(self, first_step: int) -> None:
        try:
            batches = self._batches(first_step)
            step = first_step
            while step < self.num_steps and not self._stop.is_set():
                count = min(self.chunk_size, self.num_steps - step)
                host = stack_chunk([next(batches) for _ in range(count)], self.chunk_size)
                del host["row_ids"]
                self._put((step, self.place(host)))
                step += self.chunk_size
        except BaseException as error:  # handed to the training thread, raised there
            self._put(("error", error))

    def _batches(self, first_step: int) -> Iterator[HostBatch]:
        return self.stream.batches(
            batch_size=self.batch_size,
            seed=self.seed,
            shuffle=self.shuffle,
            first_step=first_step,
            steps_per_epoch=self.steps_per_epoch,
        )

    def _put(self, item: Any) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def rows(self, step: int) -> Any:
        """The chunk of steps ``step .. step + K - 1`` on the device (waits for it)."""
        if step != self._next_step:
            raise RuntimeError(f"chunks are read in order: expected step {self._next_step}")
        first, chunk = self._queue.get()
        if isinstance(first, str):
            raise chunk
        assert first == step
        self._next_step = step + self.chunk_size
        return chunk

    def batch(self, program: TrainingProgram, step: int) -> tuple[np.ndarray, dict[str, Any]]:
        """``step``'s batch, read again from the stream: the real rows' indices and the
        model's arguments on them."""
        return real_rows(next(self._batches(step)), self.constants)

    def close(self) -> None:
        """Stop the reader and drop what it read ahead."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.1)
            except queue.Empty:
                pass
        self._thread.join()


def placer(mesh: Mesh | None, several_processes: bool = False) -> Callable[[Any], Any]:
    """Puts a host chunk on the device, or on ``mesh`` split along the rows of every batch
    (axis 1); with several processes, each process's chunk is its part of every batch, put on
    its own devices (``jax.make_array_from_process_local_data``)."""
    if mesh is None:
        return lambda host: jax.tree_util.tree_map(to_device, host)
    spec: Any = PartitionSpec
    sharding = NamedSharding(mesh, spec(None, ROW_AXIS))
    if not several_processes:
        return lambda host: jax.device_put(host, sharding)
    me = jax.process_index()
    share = sum(d.process_index == me for d in mesh.devices.flat) / mesh.size

    def put(leaf: np.ndarray) -> Array:
        shape = (leaf.shape[0], round(leaf.shape[1] / share), *leaf.shape[1 + 1 :])
        make: Any = jax.make_array_from_process_local_data
        return make(sharding, leaf, shape)  # type: ignore[no-any-return]

    return lambda host: jax.tree_util.tree_map(put, host)


@attrs.frozen
class StreamLayout:
    r"""Which rows this process streams, in batches of how many, over epochs of how many steps.

    One process: the whole stream, batches of ``B``, ``S = ceil(N / B)``. ``P`` processes
    (``jax.distributed``): process ``p`` streams part ``p`` of the row groups
    (:meth:`~blayers_core.contract.inference.RowStream.part`, ``N_p`` rows) in batches of
    ``B_p = B L_p / D`` rows (its ``L_p`` of the mesh's ``D`` devices), and every process runs

    .. math::
        S = \max\Big(\big\lceil N / B \big\rceil,\;
            \max_q \big\lceil N_q / B_q \big\rceil\Big)

    steps an epoch, a part that runs out first filling its share with masked padding. Each global
    batch of ``B`` rows mixes the parts of every process; with the row weight ``S B / N`` every
    real row weighs ``S``, so an epoch's mean loss is the full-data loss.
    """

    local: RowStream
    local_batch_size: int
    schedule: BatchSchedule
    processes: int


def stream_layout(
    stream: RowStream, mesh: Mesh | None, batch_size: int, shuffle: bool
) -> StreamLayout:
    """The :class:`StreamLayout` of this process.

    Raises:
        ValueError: several processes without a mesh of their devices.
    """
    n, processes = stream.num_rows, jax.process_count()
    if processes == 1:
        schedule = BatchSchedule(num_rows=n, batch_size=batch_size, shuffle=shuffle)
        return StreamLayout(stream, schedule.batch_size, schedule, 1)
    if mesh is None:
        raise ValueError(
            f"this fit runs in {processes} processes: it needs the devices of every process "
            "(leave devices= unset or 'all')"
        )
    owners = [d.process_index for d in mesh.devices.flat]
    steps = math.ceil(n / batch_size)
    for q in range(processes):
        share = batch_size * owners.count(q) // mesh.size
        steps = max(steps, math.ceil(stream.part(q, processes).num_rows / share))
    me = jax.process_index()
    schedule = BatchSchedule(
        num_rows=n,
        batch_size=batch_size,
        shuffle=shuffle,
        num_devices=mesh.size,
        min_steps_per_epoch=steps,
    )
    local_batch = batch_size * owners.count(me) // mesh.size
    return StreamLayout(stream.part(me, processes), local_batch, schedule, processes)


def train_streamed_svi(problem: FitProblem, settings: Any) -> InferenceOutcome:
    """:func:`~blayers_core.engine.svi.train_svi` for a
    :class:`~blayers_core.contract.inference.RowStream`: the same outcome, the rows read from
    the stream a chunk of batches at a time (see the module docstring).

    Raises:
        ValueError: no ``batch_size``, or one that does not split across the devices.
    """
    from blayers_core.engine import svi as svi_module

    stream = problem.data
    assert isinstance(stream, RowStream)
    vi, model, seed = settings, problem.model, problem.seed
    if vi.batch_size is None:
        raise ValueError(
            f"batch_size= is needed to stream {stream.describe()}: the rows are read in batches "
            "of that many rows (e.g. batch_size=1024)"
        )
    n = stream.num_rows
    mesh = None if problem.devices is None else row_mesh(problem.devices)
    if mesh is not None:
        check_batch_split(n, vi.batch_size, mesh.size)
    layout = stream_layout(stream, mesh, min(vi.batch_size, n), vi.shuffle)
    local, batch_size, schedule = layout.local, layout.local_batch_size, layout.schedule
    total = vi.total_steps(schedule.steps_per_epoch)
    chunk = max(1, min(vi.chunk_size, total, MAX_CHUNK_ROWS // batch_size))
    # Several processes pad their parts to a common epoch: the loss weighs rows as minibatches.
    minibatched = schedule.batch_size < n or layout.processes > 1
    loss = resolve_loss(vi.loss, num_rows=n, minibatched=minibatched)
    optimizer = resolve_optimizer(vi.optimizer, vi.learning_rate)
    guide = resolve_guide(vi.guide, model)
    first = local.first_rows(dry_run_rows(batch_size))
    if minibatched and batch_size < len(next(iter(first.values()))):
        check_minibatch_latents(model, first, stream.constants, seed=seed, batch_size=batch_size)
    array_constants, static = split_constants(stream.constants)
    place = placer(mesh, layout.processes > 1)
    constants = {k: to_device(v) for k, v in array_constants.items()}
    if mesh is not None:
        constants = replicate(constants, mesh)
    main = jax.process_index() == 0

    sample_key, init_key, shuffle_key = svi_module.fit_keys(seed)
    num_samples = problem.draws(svi_module.DEFAULT_NUM_SAMPLES)
    # The first batch of the first epoch, as a whole chunk: what the initialisation, the
    # compile ahead and the posterior draws see (the same whether the run resumes or not).
    first_batch = next(
        local.batches(
            batch_size=batch_size,
            seed=seed,
            shuffle=vi.shuffle,
            steps_per_epoch=layout.schedule.steps_per_epoch,
        )
    )
    host = stack_chunk([first_batch], chunk)
    del host["row_ids"]
    rows = place(host)
    program = _program_for(
        svi_module.program_key(model, vi, loss),
        lambda: SVI(model, guide, optimizer, loss),
        rows,
        constants,
        static,
        schedule,
        chunk,
        mesh,
    )
    order = np.zeros(0, dtype=np.int64)
    prepared = PreparedData(rows, constants, static, order, n, processes=layout.processes)
    state = initial_state(
        program,
        prepared,
        init_key,
        shuffle_key,
        eager=bool(problem.deterministic_sites),
        num_samples=num_samples,
        first_batch=lambda: real_rows(first_batch, stream.constants),
    )
    finish = svi_module.Finisher(program, prepared, vi, num_samples, local=layout.processes > 1)

    checkpointer, first_step, losses = None, 0, None
    if vi.checkpoint_dir is not None:
        record = {
            **_meta(stream, schedule, seed, total, chunk, mesh, layout.processes),
            "components": svi_module.component_records(vi),
            "sites": model_sites(model, {**first_batch.rows, **constants}, static),
            "state": state_entries(state),
        }
        # several processes: every one reads the checkpoints to resume; process 0 writes them
        checkpointer = Checkpointer(vi.checkpoint_dir, record, writer=main)
        if vi.resume:
            state, first_step, losses = svi_module.resume_state(checkpointer, state)
    feed = StreamFeed(
        local,
        batch_size=batch_size,
        steps_per_epoch=schedule.steps_per_epoch,
        seed=seed,
        shuffle=vi.shuffle,
        chunk_size=chunk,
        first_step=first_step,
        num_steps=total,
        place=place,
        constants=stream.constants,
    )
    try:
        return svi_module.train_then_draw(
            program,
            prepared,
            finish,
            state=state,
            keys=(shuffle_key, sample_key),
            num_steps=total,
            first_step=first_step,
            losses=losses,
            progress_bar=problem.progress_bar and main,
            checkpointer=checkpointer,
            checkpoint_every=svi_module.whole_chunks(vi.checkpoint_every, chunk),
            feed=feed,
        )
    finally:
        feed.close()


def _meta(
    stream: RowStream,
    schedule: BatchSchedule,
    seed: int,
    total: int,
    chunk: int,
    mesh: Mesh | None,
    processes: int,
) -> dict[str, Any]:
    """What must match on resume: the run's settings and the stream."""
    meta: dict[str, Any] = {
        "seed": int(seed),
        "num_rows": stream.num_rows,
        "batch_size": schedule.batch_size,
        "shuffle": bool(schedule.shuffle),
        "num_steps": total,
        "chunk_size": chunk,
        "data": stream.fingerprint(),
        "streamed": True,
    }
    if mesh is not None:
        meta["num_devices"] = mesh.size
    if processes > 1:
        meta["processes"] = processes
    return meta


def _program_for(
    svi_key: Any,
    build_svi: Callable[[], Any],
    rows: Any,
    constants: Mapping[str, Any],
    static: Mapping[str, Any],
    schedule: BatchSchedule,
    chunk: int,
    mesh: Mesh | None,
) -> StreamedTrainingProgram:
    """The cached streamed program for this SVI, schedule, chunk, layout and mesh."""
    key = (
        "streamed",
        svi_key,
        (schedule.num_rows, schedule.batch_size, schedule.shuffle, schedule.steps_per_epoch),
        chunk,
        None if mesh is None else tuple(device.id for device in mesh.devices.flat),
        data_signature(rows["rows"]),
        data_signature(constants),
        static_key(static),
    )
    program = get_program(
        key, lambda: StreamedTrainingProgram(build_svi(), schedule, chunk, static, mesh)
    )
    assert isinstance(program, StreamedTrainingProgram)
    return program
