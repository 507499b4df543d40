"""Compiled MCMC programs: every chain of a NUTS or HMC run, compiled once per model and layout.

A :class:`McmcProgram` drives a NumPyro kernel through its own API (``init``, ``sample`` and
``postprocess_fn``) rather than ``numpyro.infer.MCMC``, which builds and compiles its loop again
for every run. It compiles two functions, once:

* ``init(key, arrays) -> (states, buffers, valid)``: splits the run's key into one key per chain,
  initialises every chain (``kernel.init``) and allocates the draw buffers. It runs once per run,
  so it is compiled for build speed (:func:`~blayers_core.engine.compile_once.jit_once`);
* ``run_chunk(states, buffers, first, arrays) -> (states, buffers)``: iterations
  ``first .. first + chunk_size - 1`` of every chain in one ``lax.scan``. Iterations at or past
  ``num_warmup`` write their constrained draw (latent sites and deterministic sites, from
  ``kernel.postprocess_fn``) and the ``diverging`` flag into the buffers; the last chunk may run a
  few iterations past the end, which are not kept. Warm-up adaptation follows the state's own
  iteration counter, so cutting the run into chunks (for a progress bar) does not change the
  draws. The draws are those of ``numpyro.infer.MCMC`` with the same kernel and seed (its
  ``"vectorized"`` chain method for several chains on one device).

The data (row arrays and array constants) and the key are arguments of the compiled functions, so
a new seed or new data of the same shapes reuse them; the static constants are fixed when they are
traced and are part of the cache key (:func:`get_mcmc_program`).

Chains are vectorised with ``jax.vmap`` on one device (a single chain per device runs without it:
tracing NUTS under ``vmap`` costs seconds). With several local devices the chain axis is split
across ``gcd(num_chains, devices)`` of them by ``jax.shard_map``, each device running its chains
vectorised; with devices chosen (``fit(..., devices=...)``, ``McmcLayout.device_ids``) across
exactly those, ``num_chains`` being a multiple of their number.

NumPyro kernels keep closures over the model's arguments from their last ``init``. ``run_chunk``
therefore calls ``kernel.init`` once more while it is traced (on the traced data, result unused
and removed by the compiler), so nothing it calls closes over values of the other trace.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import attrs
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from numpyro.infer.mcmc import MCMCKernel

from blayers_core.contract._typing import Array
from blayers_core.engine.compile_once import jit_once
from blayers_core.engine.program_cache import ProgramCache

#: Compiled MCMC programs kept per process (each holds one kernel and two executables).
MCMC_PROGRAM_CACHE_SIZE = 8

#: Progress-bar updates per run: the run is cut into this many chunks when a bar is shown.
PROGRESS_UPDATES = 20

#: The mesh axis the chains are split along.
CHAIN_AXIS = "chains"

#: ``(states, buffers)``: every chain's kernel state and its draws so far, chain axis first.
Carry = tuple[Any, dict[str, Any]]

_PROGRAMS: ProgramCache[McmcProgram] = ProgramCache(MCMC_PROGRAM_CACHE_SIZE)


@attrs.frozen
class McmcLayout:
    """How many iterations and chains a program runs, and how many iterations per chunk.

    Attributes:
        num_warmup: warm-up (adaptation) iterations per chain, not kept.
        num_samples: kept iterations per chain.
        num_chains: chains.
        chunk_size: iterations per call of ``run_chunk``.
        num_devices: devices the chain axis is split across (1: vectorised on the default one).
        device_ids: the ids of the devices chosen with ``fit(..., devices=...)``, in mesh order
            (``num_devices`` of them); ``None``: the first ``num_devices`` local devices.
    """

    num_warmup: int
    num_samples: int
    num_chains: int
    chunk_size: int
    num_devices: int
    device_ids: tuple[int, ...] | None = None

    @property
    def num_iterations(self) -> int:
        """Warm-up and kept iterations of one chain."""
        return self.num_warmup + self.num_samples

    @property
    def num_chunks(self) -> int:
        """Calls of ``run_chunk`` per run."""
        return -(-self.num_iterations // self.chunk_size)


def chunk_size_for(num_iterations: int, progress_bar: bool) -> int:
    """Iterations per chunk: all of them in one without a bar, else about
    :data:`PROGRESS_UPDATES` chunks."""
    if not progress_bar:
        return max(num_iterations, 1)
    return max(-(-num_iterations // PROGRESS_UPDATES), 1)


def devices_for(num_chains: int) -> int:
    """Local devices the chains are split across: the most that divides ``num_chains`` evenly."""
    return math.gcd(num_chains, jax.local_device_count())


def check_chain_split(num_chains: int, devices: tuple[Any, ...]) -> None:
    """Raise unless ``num_chains`` splits evenly across the chosen ``devices``."""
    if num_chains % len(devices):
        raise ValueError(
            f"num_chains={num_chains} cannot be split evenly across the {len(devices)} devices "
            f"of devices=: give a multiple of {len(devices)} chains, or fewer devices"
        )


def chain_keys(key: Array, num_chains: int) -> Array:
    """``(num_chains, *key_shape)`` keys, as ``numpyro.infer.MCMC`` makes them: ``key`` itself for
    one chain, ``random.split(key, num_chains)`` for more."""
    return key[None] if num_chains == 1 else jax.random.split(key, num_chains)


def _all_finite(tree: Any) -> Array:
    """Whether every value of every leaf of ``tree`` is finite (a scalar bool)."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def _empty_buffer(value: Array, num_samples: int) -> Array:
    """Zeros of shape ``(num_samples, *value.shape)`` and ``value``'s dtype."""
    return jnp.zeros((num_samples, *jnp.shape(value)), dtype=jnp.result_type(value))


class McmcProgram:
    """The compiled initialisation and chunk of iterations of one kernel on one data layout.

    Args:
        kernel: a NumPyro MCMC kernel built on the model (``NUTS(model, ...)``); the program owns
            it (its ``init`` is called while the program is traced).
        layout: iterations, chains, chunk size and devices.
        static_constants: the model's arguments fixed at trace time (numbers, strings, ``None``).
    """

    def __init__(
        self, kernel: MCMCKernel, layout: McmcLayout, static_constants: Mapping[str, Any]
    ) -> None:
        self.kernel = kernel
        self.layout = layout
        self.static_constants = dict(static_constants)
        self.mesh = _chain_mesh(layout.num_devices, layout.device_ids)
        self.has_diverging = False
        self._init = jit_once(self._init_all)
        self._run_chunk = jax.jit(self._chunk_all, donate_argnums=(0, 1))

    # ------------------------------------------------------------------ tracing
    def _data(self, arrays: Mapping[str, Array]) -> dict[str, Any]:
        return {**arrays, **self.static_constants}

    def _collect(self, state: Any, data: Mapping[str, Any]) -> dict[str, Any]:
        """One chain's draw: its constrained latent and deterministic sites, and ``diverging``."""
        z = getattr(state, self.kernel.sample_field)
        fields: dict[str, Any] = {"samples": self.kernel.postprocess_fn((), data)(z)}
        if self.has_diverging:
            fields["diverging"] = state.diverging
        return fields

    def _init_chain(self, key: Array, arrays: Mapping[str, Array]) -> tuple[Any, Any, Array]:
        """One chain: its initial state, empty ``(num_samples, ...)`` buffers and whether its
        start has a finite potential energy and gradient."""
        data = self._data(arrays)
        state = self.kernel.init(key, self.layout.num_warmup, None, (), data)
        self.has_diverging = hasattr(state, "diverging")
        buffers = jax.tree_util.tree_map(
            lambda v: _empty_buffer(v, self.layout.num_samples), self._collect(state, data)
        )
        valid = _all_finite(
            (getattr(state, "potential_energy", 0.0), getattr(state, "z_grad", 0.0))
        )
        return state, buffers, valid

    def _init_local(self, keys: Array, arrays: Mapping[str, Array]) -> tuple[Any, Any, Array]:
        """The chains of one device: ``keys`` is ``(local_chains, *key_shape)``."""
        init = self._map_chains(self._init_chain, chain_args=(True, False))
        return init(keys, arrays)  # type: ignore[no-any-return]

    def _init_all(self, key: Array, arrays: Mapping[str, Array]) -> tuple[Any, Any, Array]:
        keys = chain_keys(key, self.layout.num_chains)
        init = self._over_devices(self._init_local, chain_args=(True, False))
        return init(keys, arrays)  # type: ignore[no-any-return]

    def _iteration(self, carry: Carry, index: Array, data: Mapping[str, Any]) -> Carry:
        """Iteration ``index`` of one chain: sample, and keep the draw once warm-up is over and
        before the end (the last chunk may run past it; those iterations are not kept)."""
        state, buffers = carry
        total, warmup = self.layout.num_iterations, self.layout.num_warmup
        state = self.kernel.sample(state, (), data)

        def write(buffers: Any) -> Any:
            draw = self._collect(state, data)
            return jax.tree_util.tree_map(
                lambda b, v: jax.lax.dynamic_update_index_in_dim(b, v, index - warmup, 0),
                buffers,
                draw,
            )

        keep = (index >= warmup) & (index < total)
        buffers = jax.lax.cond(keep, write, lambda b: b, buffers)
        return state, buffers

    def _chunk_local(
        self, states: Any, buffers: Any, first: Array, arrays: Mapping[str, Array]
    ) -> Carry:
        """``chunk_size`` iterations of one device's chains (chain axis first)."""
        data = self._data(arrays)
        self._rebind(data)
        indices = first + jnp.arange(self.layout.chunk_size, dtype=jnp.int32)

        def one_chain(state: Any, buffer: Any) -> Carry:
            def body(carry: Carry, index: Array) -> tuple[Carry, None]:
                return self._iteration(carry, index, data), None

            carry, _ = jax.lax.scan(body, (state, buffer), indices)
            return carry

        run = self._map_chains(one_chain, chain_args=(True, True))
        return run(states, buffers)  # type: ignore[no-any-return]

    def _chunk_all(
        self, states: Any, buffers: Any, first: Array, arrays: Mapping[str, Array]
    ) -> Carry:
        run = self._over_devices(self._chunk_local, chain_args=(True, True, False, False))
        return run(states, buffers, first, arrays)  # type: ignore[no-any-return]

    def _rebind(self, data: Mapping[str, Any]) -> None:
        """Point the kernel's closures at this trace's data (see the module docstring)."""
        self.kernel.init(jax.random.PRNGKey(0), self.layout.num_warmup, None, (), data)

    def _map_chains(
        self, fn: Callable[..., Any], *, chain_args: tuple[bool, ...]
    ) -> Callable[..., Any]:
        """``fn`` of one chain mapped over the chain axis (axis 0) of the arguments flagged in
        ``chain_args`` and of its outputs: ``jax.vmap``, or, for one chain per device, ``fn`` on
        that chain (tracing NUTS under ``vmap`` costs seconds)."""
        if self.layout.num_chains > self.layout.num_devices:
            return jax.vmap(fn, in_axes=tuple(0 if split else None for split in chain_args))

        def single(*args: Any) -> Any:
            inner = [_first(a) if split else a for a, split in zip(args, chain_args, strict=True)]
            return jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], fn(*inner))

        return single

    def _over_devices(
        self, fn: Callable[..., Any], *, chain_args: tuple[bool, ...]
    ) -> Callable[..., Any]:
        """``fn`` with the chain axis (axis 0) of its outputs and of the arguments flagged in
        ``chain_args`` split across the mesh, the other arguments replicated; ``fn`` itself on
        one device."""
        if self.mesh is None:
            return fn
        chains, replicated = _spec(CHAIN_AXIS), _spec()
        return jax.shard_map(
            fn,
            mesh=self.mesh,
            in_specs=tuple(chains if split else replicated for split in chain_args),
            out_specs=chains,
            check_vma=False,
        )

    # -------------------------------------------------------------------- calls
    def put(self, arrays: Mapping[str, Any]) -> dict[str, Array]:
        """The data on the device(s), once per run (replicated across the mesh)."""
        if self.mesh is None:
            return {k: jnp.asarray(v) for k, v in arrays.items()}
        sharding = NamedSharding(self.mesh, _spec())
        return {k: jax.device_put(v, sharding) for k, v in arrays.items()}

    def init(self, key: Array, arrays: Mapping[str, Array]) -> tuple[Carry, np.ndarray]:
        """``((states, buffers), valid)``: every chain initialised; ``valid`` ``(num_chains,)``
        tells whose start has a finite potential energy and gradient."""
        states, buffers, valid = self._init(key, dict(arrays))
        return (states, buffers), np.asarray(valid)

    def run_chunk(self, carry: Carry, first: int, arrays: Mapping[str, Array]) -> Carry:
        """Iterations ``first .. first + chunk_size - 1`` of every chain (``carry`` is consumed)."""
        states, buffers = carry
        return self._run_chunk(  # type: ignore[no-any-return]
            states, buffers, jnp.int32(first), dict(arrays)
        )


def _spec(*axes: str) -> PartitionSpec:
    """``PartitionSpec(*axes)``: split along those mesh axes; none: replicated."""
    make: Any = PartitionSpec
    return make(*axes)  # type: ignore[no-any-return]


def _first(tree: Any) -> Any:
    """Element 0 of the leading axis of every leaf of ``tree``."""
    return jax.tree_util.tree_map(lambda x: x[0], tree)


def _chain_mesh(num_devices: int, device_ids: tuple[int, ...] | None = None) -> Mesh | None:
    """A one-axis mesh of the chosen devices (``device_ids``), else of the first
    ``num_devices`` local devices; ``None`` for one device not chosen."""
    if device_ids is not None:
        by_id = {device.id: device for device in jax.local_devices()}
        return Mesh(np.array([by_id[i] for i in device_ids]), (CHAIN_AXIS,))
    if num_devices <= 1:
        return None
    return Mesh(np.array(jax.local_devices()[:num_devices]), (CHAIN_AXIS,))


def get_mcmc_program(key: Hashable, build: Callable[[], McmcProgram]) -> McmcProgram:
    """The cached program for ``key`` (and the current trace settings), built on a miss."""
    return _PROGRAMS.get(key, build)


def clear_mcmc_programs() -> None:
    """Forget every cached MCMC program (their compiled code is freed with them)."""
    _PROGRAMS.clear()
