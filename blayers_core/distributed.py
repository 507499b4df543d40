"""Several processes and machines, on JAX's own multi-controller runtime (``jax.distributed``).

Start the same program once per process (one per machine, or one per accelerator). Each calls
:func:`initialize` before anything else touches JAX, then the same ``fit`` with **its own rows**::

    import blayers_core
    from blayers_core import distributed

    distributed.initialize("10.0.0.1:1234", num_processes=2, process_id=rank)
    x, y = load_my_share(rank)                       # this process's rows only
    result = blayers_core.fit(model, x=x, y=y, batch_size=1024, num_epochs=20)
    result.predict(x=x_new)                          # in any process

What a fit does in several processes (``jax.process_count() > 1``):

* the row arrays given to ``fit`` in process ``p`` are that process's share of the data; the fit
  is over the ``N = sum_p n_p`` rows of every process (the loss scales by ``N``). No row moves
  between processes: each process's rows are put on its own devices, and every batch of ``B``
  rows takes ``B / D`` of them from each of the ``D`` devices (``batch_size`` divisible by
  ``D``; see :class:`~blayers_core.engine.devices.ProcessRows`);
* the constants (non-row arguments), the model, the options and the seed must be the same in
  every process;
* every process runs the same compiled step, and XLA's collectives sum the log-likelihood and
  the gradients across processes, so every process ends with the **same** parameters, losses
  and posterior draws (bit for bit); the result holds them as this process's NumPy arrays, so
  ``predict``, ``summary`` and ``save`` work in any process;
* with ``checkpoint_dir=`` (a folder every process can read: a shared file system), process 0
  writes the checkpoints and every process resumes from them with ``resume=True``;
* only ``method="svi"`` runs in several processes; the others raise.

This module is a thin layer over :func:`jax.distributed.initialize`: it checks the arguments
before JAX sees them and selects CPU collectives (Gloo), which a CPU-only JAX needs to reduce
across processes and which accelerators ignore (they use their own, e.g. NCCL).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import jax

#: ``host:port`` of the coordinator.
_ADDRESS = re.compile(r"^\[?[A-Za-z0-9_.:\-]+\]?:\d{1,5}$")


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    local_device_ids: int | Sequence[int] | None = None,
    cpu_collectives: str = "gloo",
    **options: Any,
) -> None:
    """Join this process to a multi-process JAX run; call it first, in every process.

    Args:
        coordinator_address: ``"host:port"`` of process 0, which runs the coordination service
            (any free port). ``None``: detected on SLURM, Open MPI and Kubernetes (JobSet/
            indexed Jobs) and on cloud TPUs, as :func:`jax.distributed.initialize` does.
        num_processes: how many processes take part (``None``: detected).
        process_id: this process's index, ``0 .. num_processes - 1`` (``None``: detected).
        local_device_ids: the local devices this process uses (e.g. one GPU per process);
            ``None``: all of them.
        cpu_collectives: the CPU backend's collectives, ``"gloo"`` (default) or ``"mpi"``;
            accelerators ignore it.
        **options: passed on to :func:`jax.distributed.initialize` (e.g.
            ``initialization_timeout``).

    Raises:
        ValueError / TypeError: a malformed address, a count that is not a positive int, or a
            ``process_id`` outside ``0 .. num_processes - 1``.
        RuntimeError: JAX's, e.g. when JAX already ran a computation in this process (call
            this first) or the coordinator cannot be reached.
    """
    _check_arguments(coordinator_address, num_processes, process_id, cpu_collectives)
    jax.config.update(  # type: ignore[no-untyped-call]
        "jax_cpu_collectives_implementation", cpu_collectives
    )
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
        local_device_ids=local_device_ids,
        **options,
    )


def shutdown() -> None:
    """Leave the multi-process run (:func:`jax.distributed.shutdown`); JAX also does this at
    exit."""
    jax.distributed.shutdown()  # type: ignore[no-untyped-call]


def is_main_process() -> bool:
    """Whether this is process 0: the one that should print, plot and write files."""
    return jax.process_index() == 0


def _check_arguments(
    address: str | None, num_processes: int | None, process_id: int | None, collectives: str
) -> None:
    if address is not None and (not isinstance(address, str) or not _ADDRESS.match(address)):
        raise ValueError(
            f"coordinator_address must be 'host:port' (e.g. '10.0.0.1:1234'), got {address!r}"
        )
    for name, value in (("num_processes", num_processes), ("process_id", process_id)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise TypeError(f"{name} must be an int or None, got {value!r}")
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"num_processes must be at least 1, got {num_processes}")
    if process_id is not None and (
        process_id < 0 or (num_processes is not None and process_id >= num_processes)
    ):
        upper = "num_processes - 1" if num_processes is None else str(num_processes - 1)
        raise ValueError(f"process_id must be in 0 .. {upper}, got {process_id}")
    if collectives not in ("gloo", "mpi"):
        raise ValueError(f"cpu_collectives must be 'gloo' or 'mpi', got {collectives!r}")


__all__ = ["initialize", "is_main_process", "shutdown"]
