r"""Several devices in one process: the rows of a fit split over a one-axis device mesh.

``fit(..., devices="all" | n | [device, ...])`` is resolved here (:func:`resolve_devices`) to a
tuple of ``D`` local devices; every method reads it from ``FitProblem.devices``. ``None``, the
default, leaves the one-device path as it is: nothing here runs.

SVI on ``D`` devices
--------------------
The rows are laid out once, on the host, so that every device holds an equal share of every
minibatch (:func:`prepare_sharded_data`):

* the slots of the one-device schedule (:class:`~blayers_core.engine.minibatch.BatchSchedule`,
  ``M = S B / b`` blocks of ``b`` consecutive slots) are dealt round-robin: block ``m`` goes to
  device ``m mod D``, as its local block ``m // D``. The row arrays, ``(S B, ...)``, are put on the
  mesh with ``NamedSharding(mesh, PartitionSpec("rows"))``, device ``d`` holding ``(S B / D, ...)``;
* a step's batch is the blocks ``pi_e(j)``, ``j = sP .. sP + P - 1`` (``P = B / b``, a multiple of
  ``D`` by the choice of ``b``). Since ``gcd(a_e, M) = 1`` and ``D`` divides ``M``, ``a_e j + c_e``
  runs through every residue mod ``D`` once in any ``D`` consecutive ``j``: every device holds
  exactly ``P / D`` of the batch's blocks (:func:`blocks_by_device`);
* inside ``jax.shard_map`` each device copies its ``B / D`` rows from its own shard (no data
  moves between devices); the batch, ``(B, ...)`` sharded along the rows, goes to the loss;
* the loss and its gradient are the program's ordinary ``svi.update`` under ``jax.jit`` (GSPMD):
  the SVI state and the constants are replicated, the per-row terms are computed where the rows
  are, and XLA's all-reduce sums the log-likelihood and the gradients. The batch holds the same
  rows as on one device (in another order), and the mask of padded rows and the weight
  ``S B / N`` (:class:`~blayers_core.engine.minibatch.padded_rows`) apply to it whole, so a
  step's loss and gradient are the one-device step's up to float rounding, whatever the loss.

``batch_size`` (``N`` when ``None``) must be divisible by ``D``. The batches are those of one
device whenever ``D`` divides the one-device blocks per batch (``B = 64``, ``D = 4``: yes);
otherwise the blocks are smaller.

Several processes
-----------------
With ``jax.distributed`` (:mod:`blayers_core.distributed`) and ``jax.process_count() > 1``, the
mesh holds every device of every process, ordered by process, and the rows each process gives
``fit`` are its own: they never leave it (:class:`ProcessRows`, :func:`prepare_process_data`).
Each process shuffles its rows once and deals them to its devices; a device's share of the slots
holds its ``r_d`` rows first, then padding. The batches are the same blocks as above (each
device ``B / D`` slots of every batch); the padding mask comes from the shares
(``slot < r_d``) instead of ``slot < N``, and the schedule has enough steps per epoch for the
largest share. Every process runs the same program on the same replicated state, so all end with
the same parameters; :func:`process_local` hands each its copy as NumPy arrays.

NUTS and HMC split their chains across the chosen devices
(``blayers_core.engine.mcmc_program``); a method that cannot use several devices raises
(:func:`require_one_device`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from blayers_core.contract._typing import Array
from blayers_core.contract.errors import DataError
from blayers_core.contract.inference import SplitData
from blayers_core.engine.data import split_constants
from blayers_core.engine.minibatch import BatchSchedule, gather_blocks
from blayers_core.engine.program import TrainingProgram, get_program
from blayers_core.engine.program_cache import data_signature, static_key
from blayers_core.engine.runner import PreparedData

#: The mesh axis the rows are split along.
ROW_AXIS = "rows"

#: What ``devices=`` takes.
DEVICES_HELP = "'all', a positive int, or a non-empty sequence of distinct jax.Device"


def resolve_devices(spec: Any) -> tuple[Any, ...] | None:
    """The local devices ``devices=`` names: ``None``; ``"all"``; the first ``n``; or these.

    Raises:
        TypeError: ``spec`` is none of these.
        ValueError: an int outside ``1 .. jax.local_device_count()``, an empty sequence, a
            device given twice or not a local device of this process; the message says how
            many devices there are.
    """
    if several_processes():
        return _every_process_devices(spec)
    if spec is None:
        return None
    local = tuple(jax.local_devices())
    have = f"this process has {len(local)} local device{'s' if len(local) != 1 else ''}"
    if isinstance(spec, str):
        if spec != "all":
            raise ValueError(f"devices must be {DEVICES_HELP}; got {spec!r} ({have})")
        return local
    if isinstance(spec, int | np.integer) and not isinstance(spec, bool):
        if not 1 <= spec <= len(local):
            raise ValueError(f"devices={spec} asks for {spec} devices, but {have}")
        return local[: int(spec)]
    if isinstance(spec, Sequence) and not isinstance(spec, bytes):
        chosen = tuple(spec)
        if not chosen:
            raise ValueError(f"devices must be {DEVICES_HELP}; got an empty sequence ({have})")
        for device in chosen:
            if not isinstance(device, jax.Device):
                raise TypeError(f"devices must be {DEVICES_HELP}; got an item {device!r}")
            if device not in local:
                raise ValueError(f"devices: {device} is not a local device; {have}: {local}")
        if len(set(chosen)) != len(chosen):
            raise ValueError(f"devices names a device more than once: {chosen}")
        return chosen
    raise TypeError(f"devices must be {DEVICES_HELP}; got {spec!r} ({have})")


def several_processes() -> bool:
    """Whether this fit runs in several processes (``jax.distributed`` initialised with more
    than one; see :func:`blayers_core.distributed.initialize`)."""
    return bool(jax.process_count() > 1)


def _every_process_devices(spec: Any) -> tuple[Any, ...]:
    """Several processes: ``None`` and ``"all"`` mean every device of every process, ordered
    by process (so that each process's devices are consecutive on the mesh); anything else
    raises."""
    if spec is None or (isinstance(spec, str) and spec == "all"):
        return tuple(sorted(jax.devices(), key=lambda d: (d.process_index, d.id)))
    raise ValueError(
        f"devices={spec!r}: this fit runs in {jax.process_count()} processes "
        "(jax.distributed), and then it uses every device of every process; leave devices= "
        "unset (or 'all'). To use fewer devices, start each process with fewer "
        "(e.g. CUDA_VISIBLE_DEVICES, or local_device_ids= in blayers_core.distributed.initialize)"
    )


def require_one_process(what: str) -> None:
    """Raise when the fit runs in several processes, for ``what`` (a method) that runs in one."""
    if several_processes():
        raise ValueError(
            f"{what} runs in one process, but this fit runs in "
            f"{jax.process_count()} (jax.distributed): use method='svi', which splits the rows "
            "across processes, or run this method in a single process"
        )


def row_mesh(devices: Sequence[Any]) -> Mesh:
    """The one-axis mesh (axis :data:`ROW_AXIS`) of ``devices``, in their order."""
    return Mesh(np.array(list(devices)), (ROW_AXIS,))


def require_one_device(devices: tuple[Any, ...] | None, method: str) -> None:
    """Raise when ``devices`` names more than one device (or one that is not the default), for
    a method that runs on one device only."""
    require_one_process(f"method {method!r}")
    if devices is None or devices == (jax.devices()[0],):
        return
    raise ValueError(
        f"method {method!r} runs on one device and cannot use devices={list(devices)}; "
        "leave devices= unset, or use method='svi', 'nuts' or 'hmc', which split the work "
        "across devices"
    )


def check_batch_split(num_rows: int, batch_size: int | None, num_devices: int) -> None:
    """Raise unless every batch (``batch_size`` rows; ``None``: all ``num_rows``) splits evenly
    across ``num_devices`` devices."""
    rows = num_rows if batch_size is None else min(batch_size, num_rows)
    if rows % num_devices == 0:
        return
    given = (
        f"batch_size={batch_size}" if batch_size is not None else f"batch_size=None ({rows} rows)"
    )
    raise ValueError(
        f"{given} cannot be split evenly across devices={num_devices}: each device computes an "
        f"equal share of every batch; choose a batch_size divisible by {num_devices} (e.g. "
        f"{max(num_devices, rows // num_devices * num_devices)}) or other devices"
    )


def device_slot_order(schedule: BatchSchedule, num_devices: int) -> np.ndarray:
    """``(num_slots,)``: the slot at each position of the row arrays on the mesh.

    Positions ``d * S B / D .. (d + 1) * S B / D - 1`` (device ``d``'s shard) hold the blocks
    ``m = d, d + D, d + 2D, ...``, each ``b`` consecutive slots. One batch: the rows in order.
    """
    if schedule.is_full_batch:
        return np.arange(schedule.num_rows)
    b, blocks = schedule.block_size, schedule.num_blocks
    slots = np.arange(schedule.num_slots).reshape(blocks // num_devices, num_devices, b)
    return slots.transpose(1, 0, 2).reshape(-1)


def prepare_sharded_data(
    split: SplitData, schedule: BatchSchedule, seed: int, mesh: Mesh
) -> PreparedData:
    """:func:`~blayers_core.engine.runner.prepare_data` for a mesh: the same once-shuffled rows
    in the same slots, laid out by :func:`device_slot_order` and sharded along the rows (each
    device receives only its shard); the array constants replicated."""
    n, d = split.num_rows, mesh.size
    if schedule.is_full_batch:
        order = np.arange(n)
    else:
        order = np.random.default_rng(seed).permutation(n) if schedule.shuffle else np.arange(n)
    slots = device_slot_order(schedule, d)
    layout = order[schedule.slot_rows()][slots] if not schedule.is_full_batch else order
    rows_sharding = NamedSharding(mesh, _spec(ROW_AXIS))
    rows = {
        k: jax.device_put(_host(np.asarray(v)[layout]), rows_sharding)
        for k, v in split.rows.items()
    }
    array_constants, static = split_constants(split.constants)
    constants = {k: replicate(_host(np.asarray(v)), mesh) for k, v in array_constants.items()}
    positions = None if schedule.is_full_batch else np.argsort(slots)
    return PreparedData(rows, constants, static, order, n, positions)


def _spec(*axes: str) -> PartitionSpec:
    """``PartitionSpec(*axes)``: split along those mesh axes; none: replicated."""
    make: Any = PartitionSpec
    return make(*axes)  # type: ignore[no-any-return]


def _host(value: np.ndarray) -> np.ndarray:
    """``value`` in JAX's dtype for it (float64 -> float32 without x64)."""
    return value.astype(jax.dtypes.canonicalize_dtype(value.dtype), copy=False)


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Every array of ``tree`` replicated on every device of ``mesh``."""
    return jax.device_put(tree, NamedSharding(mesh, _spec()))


def blocks_by_device(blocks: Array, num_devices: int) -> Array:
    """``(P,)`` the batch's blocks grouped by device: device ``d``'s (``m mod D == d``) in the
    ``d``-th ``P / D`` entries, each group in batch order. Traceable."""
    return blocks[jnp.argsort(blocks % num_devices, stable=True)]


class ShardedTrainingProgram(TrainingProgram):
    """A :class:`~blayers_core.engine.program.TrainingProgram` whose batches are gathered on
    the devices of ``mesh``, each from its own shard (see the module docstring); the loss and
    the update are the one-device program's, partitioned by XLA."""

    def __init__(
        self,
        svi: Any,
        schedule: BatchSchedule,
        chunk_size: int,
        static_constants: Mapping[str, Any],
        mesh: Mesh,
        per_device: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__(svi, schedule, chunk_size, static_constants, mesh)
        self.mesh: Mesh = mesh
        self.per_device = per_device
        self._gather = self._local_gather()

    def _local_gather(self) -> Callable[..., Any]:
        """``(rows, grouped blocks) -> batch``: each device's ``B / D`` rows from its shard."""
        d, b = self.mesh.size, self.schedule.block_size

        def local(rows: Mapping[str, Array], mine: Array) -> dict[str, Array]:
            return {k: gather_blocks(v, mine // d, b) for k, v in rows.items()}

        split = _spec(ROW_AXIS)
        return jax.shard_map(local, mesh=self.mesh, in_specs=(split, split), out_specs=split)

    def _gather_batch(
        self, rows: Mapping[str, Array], blocks: Array, mask: Array
    ) -> tuple[dict[str, Array], Array]:
        """The batch with each device's ``B / D`` rows copied from its own shard, and the
        real-slot mask in that (device-grouped) order."""
        grouped = blocks_by_device(blocks, self.mesh.size)
        real = (
            self.schedule.real_slots(grouped)
            if self.per_device is None
            else self._real_in_shards(grouped)
        )
        return self._gather(dict(rows), grouped), real

    def _real_in_shards(self, blocks: Array) -> Array:
        """Several processes: ``(len(blocks) * b,)`` bool, whether each slot of ``blocks`` holds
        one of the real rows of its device (the first ``r_d`` of device ``d``'s shard)."""
        d, b = self.mesh.size, self.schedule.block_size
        real = jnp.asarray(np.array(self.per_device, dtype=np.int32))[blocks % d]
        local_slots = (blocks // d)[:, None] * b + jnp.arange(b, dtype=blocks.dtype)
        return (local_slots < real[:, None]).reshape(-1)


def sharded_program_for(
    svi_key: Any,
    build_svi: Callable[[], Any],
    data: Any,
    schedule: BatchSchedule,
    chunk_size: int,
    mesh: Mesh,
    per_device: tuple[int, ...] | None = None,
) -> ShardedTrainingProgram:
    """The cached program for this SVI, schedule, chunk size, data layout and mesh (and, with
    several processes, the real rows on each device)."""
    key = (
        "sharded",
        svi_key,
        (
            schedule.num_rows,
            schedule.batch_size,
            schedule.shuffle,
            schedule.num_devices,
            schedule.steps_per_epoch,
            schedule.always_blocks,
        ),
        per_device,
        chunk_size,
        tuple(device.id for device in mesh.devices.flat),
        data_signature(data.rows),
        data_signature(data.array_constants),
        static_key(data.static_constants),
    )
    program = get_program(
        key,
        lambda: ShardedTrainingProgram(
            build_svi(), schedule, chunk_size, data.static_constants, mesh, per_device
        ),
    )
    assert isinstance(program, ShardedTrainingProgram)
    return program


@attrs.frozen
class ProcessRows:
    r"""How the rows of several processes share the mesh (``jax.process_count() > 1``).

    Process ``p`` gives ``n_p`` rows (the rows given to ``fit`` there) and owns ``L_p``
    consecutive devices of the mesh; its rows are dealt to them as evenly as possible, device
    ``d`` holding ``r_d`` real rows at the start of its share of ``Z = S B / D`` slots, the rest
    of the share padding (repeats of its rows, masked out of the loss). No row moves between
    processes.

    The schedule is the one-device schedule of ``N = sum_p n_p`` rows, with enough steps per
    epoch that every share holds its rows:

    .. math::
        S = \max\Big(\big\lceil N / B \big\rceil,\;
            \big\lceil D \max_d r_d / B \big\rceil\Big),

    and each batch takes ``B / D`` slots of every device (see the module docstring), so a
    batch mixes the rows of every process. Every real row weighs ``S`` in its batch (the
    row weight ``S B / N`` on top of the loss's ``N / B``): one epoch's mean loss is the
    full-data loss, as on one device.

    Attributes:
        counts: ``n_p`` by process.
        per_device: ``r_d`` in mesh order.
    """

    counts: tuple[int, ...]
    per_device: tuple[int, ...]

    @property
    def num_rows(self) -> int:
        """``N``: the rows of every process together."""
        return sum(self.counts)

    def min_steps_per_epoch(self, batch_size: int) -> int:
        """Steps an epoch needs so that every device's share holds its real rows."""
        return math.ceil(len(self.per_device) * max(self.per_device) / batch_size)


def process_row_counts(num_local_rows: int) -> tuple[int, ...]:
    """The rows every process gave ``fit``, by process (gathered from all of them; every
    process must call it). One process: ``(num_local_rows,)``."""
    if not several_processes():
        return (int(num_local_rows),)
    gathered = multihost_utils.process_allgather(np.array(num_local_rows, np.int64))
    return tuple(int(c) for c in gathered)


def process_rows(num_local_rows: int, mesh: Mesh) -> ProcessRows:
    """Every process's row count (gathered from all of them) and the real rows of each device.

    Raises:
        DataError: a process has fewer rows than devices.
    """
    counts = process_row_counts(num_local_rows)
    owners = [device.process_index for device in mesh.devices.flat]
    per_device: list[int] = []
    for process, count in enumerate(counts):
        devices = owners.count(process)
        if count < devices:
            raise DataError(
                f"process {process} gave fit {count} rows but has {devices} devices: every "
                "device needs at least one row. Give each process at least as many rows as it "
                "has devices (the rows given to fit in each process are that process's share)"
            )
        share, extra = divmod(count, devices)
        per_device += [share + (i < extra) for i in range(devices)]
    return ProcessRows(counts, tuple(per_device))


def prepare_process_data(
    split: SplitData, schedule: BatchSchedule, seed: int, mesh: Mesh, layout: ProcessRows
) -> PreparedData:
    """Several processes: this process's rows (``split``), shuffled once on the host (a
    permutation drawn from ``seed`` and the process index), dealt to its devices (``r_d``
    each, :class:`ProcessRows`), each device's share padded to ``Z`` slots by repeating its
    rows, and assembled into global row arrays with
    ``jax.make_array_from_process_local_data``; the array constants replicated (every process
    passes the same)."""
    me = jax.process_index()
    share = schedule.num_slots // mesh.size
    n = split.num_rows
    order = np.random.default_rng([seed, me]).permutation(n) if schedule.shuffle else np.arange(n)
    pieces, start = [], 0
    for index, device in enumerate(mesh.devices.flat):
        if device.process_index != me:
            continue
        real = layout.per_device[index]
        pieces.append(order[start : start + real][np.arange(share) % real])
        start += real
    local = np.concatenate(pieces)
    sharding = NamedSharding(mesh, _spec(ROW_AXIS))
    rows = {}
    for name, value in split.rows.items():
        host = _host(np.asarray(value)[local])
        global_shape = (mesh.size * share, *host.shape[1:])
        rows[name] = jax.make_array_from_process_local_data(  # type: ignore[no-untyped-call]
            sharding, host, global_shape
        )
    array_constants, static = split_constants(split.constants)
    constants = {k: replicate(_host(np.asarray(v)), mesh) for k, v in array_constants.items()}
    return PreparedData(rows, constants, static, local, n, processes=jax.process_count())


def process_local(tree: Any) -> Any:
    """``tree`` with every array as a NumPy array of this process: a result of several
    processes (replicated arrays spanning every process) for ``predict`` and ``save`` here."""

    def local(leaf: Any) -> Any:
        if not isinstance(leaf, jax.Array) or leaf.is_fully_addressable:
            return leaf
        if leaf.is_fully_replicated:
            return np.asarray(leaf.addressable_data(0))
        return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))

    return jax.tree_util.tree_map(local, tree)


def every_process_fingerprint(fingerprint: str) -> str:
    """One fingerprint of every process's data: the SHA-256 of each process's ``fingerprint``
    (hex), gathered in process order."""
    mine = np.frombuffer(bytes.fromhex(fingerprint), dtype=np.uint8)
    every = np.asarray(multihost_utils.process_allgather(mine))
    return hashlib.sha256(every.tobytes()).hexdigest()
