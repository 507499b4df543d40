r"""Stein variational gradient descent (SVGD): a set of particles moved to the posterior.

:func:`run_svgd` drives NumPyro's :class:`numpyro.contrib.einstein.SVGD` (a
:class:`~numpyro.contrib.einstein.SteinVI` with an ``AutoDelta`` guide, one point mass per
particle). The ``m`` particles :math:`x_1, \dots, x_m` (every latent site, in the unconstrained
space, raveled into one vector of length ``d`` per particle, an ``(m, d)`` matrix) move together
along the direction that most decreases the KL divergence from the posterior ``p`` within the unit
ball of the kernel's RKHS (Liu and Wang 2016):

.. math::

    \phi(x) = \frac{1}{m} \sum_{j=1}^{m}
        \bigl[ k(x_j, x) \, \nabla_{x_j} \log p(x_j) + \nabla_{x_j} k(x_j, x) \bigr],
    \qquad x_i \leftarrow x_i + \epsilon \, \phi(x_i),

where ``k`` is the kernel (``"rbf"``: :math:`k(x, y) = \exp(-\lVert x - y \rVert^2 / h)` with
the median heuristic :math:`h = \mathrm{med}^2 / \log m`; ``"imq"``:
:math:`(1 + \lVert x - y \rVert^2)^{-1/2}`; ``"linear"``: :math:`x^\top y + 1`). The first term
drives particles up the log density, smoothed over their neighbours; the second pushes them apart,
so that they spread over the posterior instead of collapsing onto its mode. With one particle SVGD
is MAP by gradient ascent. The step :math:`\epsilon \phi` is taken by the ``optax`` optimizer
(per particle and coordinate, so an adaptive optimizer such as Adam rescales it).

**Target in the unconstrained space.** NumPyro's ``AutoDelta`` scores the model at the constrained
value, so for a site with a constrained support (a scale, a simplex) it would move the particles
by the gradient of :math:`\log p(\theta(u))` without the Jacobian :math:`\log |d\theta/du|`, and the
particles would settle on the wrong distribution (for a positive scale :math:`\sigma = e^u`, on
:math:`p(\sigma)/\sigma`). So every latent site with a constrained support is reparameterised first
(:class:`_Unconstrain`): it is drawn in the unconstrained space from the transformed prior, whose
log density carries the Jacobian, and the original site becomes a deterministic site of the
constrained value. The particles are then draws from the posterior in the unconstrained space,
and their constrained values draws from the posterior.

**Shapes.** A latent site of shape ``s`` gives a parameter ``"{site}_unconstrained_auto_loc"`` of
shape ``(m, *s)`` in :attr:`SvgdOutcome.params` (``m`` = ``num_particles``), and the constrained
particles ``(m, *s)`` in :attr:`SvgdOutcome.samples`, which also holds the model's deterministic
sites ``(m, ...)``, computed once per particle at the end. ``losses`` has one value per step: the
Euclidean norm of the Stein force :math:`\phi` over all particles (what NumPyro's ``SteinVI``
reports; it falls towards 0 as the particles settle, it is not an ELBO).

**Compilation.** Three programs (initialisation, a chunk of steps in ``lax.scan``, and the draws)
are compiled once per model, number of particles, chunk length (``min(200, num_steps)``), kernel,
optimizer (its identity, or the caller's ``optimizer_key``), data layout (names, shapes, dtypes)
and static constants, and kept in a process-wide
:class:`~blayers_core.engine.program_cache.ProgramCache`. Data, key, first step and number of steps
are arguments, so a second call with a new seed or new data of the same shapes compiles nothing.
``SteinVI.init`` sets Python attributes (the transforms, the guide's prototype) that its ``update``
reads; so that no program reads values traced by another, each program builds its own ``SVGD``
and runs ``init`` inside its own trace (in the chunk and the draws its result is discarded and
removed by the compiler).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any

import attrs
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import optax
from numpyro import handlers
from numpyro.contrib.einstein import SVGD, IMQKernel, LinearKernel, RBFKernel
from numpyro.contrib.einstein.steinvi import SteinVIState
from numpyro.distributions import TransformedDistribution, biject_to, constraints
from numpyro.infer.initialization import init_to_uniform
from numpyro.infer.reparam import Reparam
from numpyro.optim import optax_to_numpyro
from tqdm.auto import tqdm

from blayers_core.contract._typing import Array, ModelFn
from blayers_core.contract.inference import SplitData
from blayers_core.engine.compile_once import jit_once
from blayers_core.engine.data import split_constants
from blayers_core.engine.program_cache import ProgramCache, data_signature, static_key

#: Kernels by name: the NumPyro kernel class each builds (with its default settings).
KERNELS: dict[str, Callable[[], Any]] = {
    "rbf": RBFKernel,
    "imq": IMQKernel,
    "linear": LinearKernel,
}

#: Steps per compiled ``lax.scan`` chunk (the progress bar advances between chunks).
DEFAULT_CHUNK_SIZE = 200

#: Half-width of the box, in the unconstrained space, the particles start in (as NUTS does).
INIT_RADIUS = 2.0

#: Suffix of the unconstrained site that stands for a constrained latent site.
UNCONSTRAINED_SUFFIX = "_unconstrained"

#: Marks, in a site's ``infer`` dict, an unconstrained site made by :class:`_Unconstrain`.
_UNCONSTRAINED_MARK = "_blayers_svgd_unconstrained"

#: SVGD programs kept per process.
SVGD_PROGRAM_CACHE_SIZE = 8

_PROGRAMS: ProgramCache[_SvgdProgram] = ProgramCache(SVGD_PROGRAM_CACHE_SIZE)


@attrs.frozen
class SvgdOutcome:
    """What an SVGD run produced.

    Attributes:
        samples: every latent site's particles in the constrained space and every deterministic
            site, ``(num_particles, ...)`` each: the posterior draws.
        losses: the norm of the Stein force at each step, ``(num_steps,)``.
        params: the final particles as NumPyro parameters (``"{site}_unconstrained_auto_loc"``
            for a constrained site, ``"{site}_auto_loc"`` otherwise), ``(num_particles, ...)``.
    """

    samples: dict[str, np.ndarray]
    losses: np.ndarray
    params: dict[str, np.ndarray]


class _Unconstrain(Reparam):  # type: ignore[misc]
    """Draw a constrained latent site in its unconstrained space, Jacobian included.

    ``name`` becomes a deterministic site of the constrained value; the new sample site
    ``name + "_unconstrained"`` has the prior pushed through ``biject_to(support).inv``.
    """

    def __call__(self, name: str, fn: Any, obs: Any) -> tuple[Any, Any]:
        transform = biject_to(fn.support).inv
        unconstrained = numpyro.sample(
            name + UNCONSTRAINED_SUFFIX,
            TransformedDistribution(fn, transform),
            infer={_UNCONSTRAINED_MARK: True},
        )
        return None, transform.inv(unconstrained)


def _unconstrain_config(msg: Any) -> Reparam | None:
    if msg["is_observed"] or msg["infer"].get(_UNCONSTRAINED_MARK):
        return None
    support = msg["fn"].support
    if support.is_discrete:
        return None  # SteinVI refuses discrete latent sites itself
    real = support is constraints.real or (
        isinstance(support, constraints.independent) and support.base_constraint is constraints.real
    )
    return None if real else _Unconstrain()


def unconstrained_model(model: ModelFn) -> ModelFn:
    """``model`` with every constrained latent site drawn in its unconstrained space."""
    return handlers.reparam(model, config=_unconstrain_config)  # type: ignore[no-any-return]


class _SvgdProgram:
    """Compiled initialisation, chunk of SVGD steps and draws, for one model and data layout."""

    def __init__(
        self,
        model: ModelFn,
        num_particles: int,
        chunk_size: int,
        kernel: str,
        optimizer: optax.GradientTransformation,
        static_constants: Mapping[str, Any],
    ) -> None:
        self.model = model
        self.target = unconstrained_model(model)
        self.num_particles = num_particles
        self.chunk_size = chunk_size
        self.kernel = kernel
        self.optimizer = optimizer
        self.static_constants = dict(static_constants)
        self._init = jit_once(self._init_state)
        self._run_chunk = jax.jit(self._chunk)
        self._draw = jit_once(self._draws)

    def _svgd(self, rng_key: Array, arrays: Mapping[str, Any]) -> tuple[Any, SteinVIState]:
        """A fresh ``SVGD``, initialised inside the current trace."""
        svgd = SVGD(
            self.target,
            optax_to_numpyro(self.optimizer),
            KERNELS[self.kernel](),
            num_stein_particles=self.num_particles,
            guide_kwargs={"init_loc_fn": init_to_uniform(radius=INIT_RADIUS)},
        )
        state = svgd.init(rng_key, **arrays, **self.static_constants)
        return svgd, state

    # ------------------------------------------------------------------ tracing
    def _init_state(self, rng_key: Array, arrays: dict[str, Any]) -> SteinVIState:
        _, state = self._svgd(rng_key, arrays)
        return state

    def _chunk(
        self,
        state: SteinVIState,
        first_step: Array,
        num_steps: Array,
        rng_key: Array,
        arrays: dict[str, Any],
    ) -> tuple[SteinVIState, Array]:
        svgd, _ = self._svgd(rng_key, arrays)
        data = {**arrays, **self.static_constants}
        nan = jnp.array(jnp.nan, dtype=jnp.result_type(float))

        def step(state: SteinVIState) -> tuple[SteinVIState, Array]:
            new_state, force = svgd.update(state, **data)
            return new_state, jnp.asarray(force, dtype=nan.dtype)

        def body(state: SteinVIState, index: Array) -> tuple[SteinVIState, Array]:
            out: tuple[SteinVIState, Array] = jax.lax.cond(
                index < num_steps, step, lambda s: (s, nan), state
            )
            return out

        steps = first_step + jnp.arange(self.chunk_size, dtype=jnp.int32)
        result: tuple[SteinVIState, Array] = jax.lax.scan(body, state, steps)
        return result

    def _draws(
        self, state: SteinVIState, rng_key: Array, arrays: dict[str, Any]
    ) -> tuple[dict[str, Array], dict[str, Array]]:
        svgd, _ = self._svgd(rng_key, arrays)
        data = {**arrays, **self.static_constants}
        params = svgd.get_params(state)
        axes = {k: 0 if k in svgd.guide_sites else None for k in params}

        def one(particle: dict[str, Array]) -> dict[str, Array]:
            guide = handlers.substitute(handlers.seed(svgd.guide, rng_key), data=particle)
            latents = {
                k: site["value"]
                for k, site in handlers.trace(guide).get_trace(**data).items()
                if site["type"] == "sample"
            }
            model = handlers.substitute(
                handlers.seed(self.target, rng_key), data={**particle, **latents}
            )
            trace = handlers.trace(model).get_trace(**data)
            return {
                name: site["value"]
                for name, site in trace.items()
                if site["type"] == "deterministic"
                or (
                    site["type"] == "sample"
                    and not site["is_observed"]
                    and not site["infer"].get(_UNCONSTRAINED_MARK)
                )
            }

        samples: dict[str, Array] = jax.vmap(one, in_axes=(axes,))(params)
        return samples, params

    # -------------------------------------------------------------------- calls
    def init(self, rng_key: Array, arrays: dict[str, Any]) -> SteinVIState:
        return self._init(rng_key, arrays)

    def run_chunk(
        self,
        state: SteinVIState,
        first_step: int,
        num_steps: int,
        rng_key: Array,
        arrays: dict[str, Any],
    ) -> tuple[SteinVIState, Array]:
        """Steps ``first_step .. first_step + chunk_size - 1``; those ``>= num_steps`` are skipped."""
        return self._run_chunk(  # type: ignore[no-any-return]
            state, jnp.int32(first_step), jnp.int32(num_steps), rng_key, arrays
        )

    def draws(
        self, state: SteinVIState, rng_key: Array, arrays: dict[str, Any]
    ) -> tuple[dict[str, Array], dict[str, Array]]:
        return self._draw(state, rng_key, arrays)  # type: ignore[no-any-return]


def clear_svgd_program_cache() -> None:
    """Forget every cached SVGD program (their compiled code is freed with them)."""
    _PROGRAMS.clear()


def _check_arguments(num_particles: int, num_steps: int, kernel: str) -> None:
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {sorted(KERNELS)}, got {kernel!r}")
    for name, value in (("num_particles", num_particles), ("num_steps", num_steps)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def run_svgd(
    model: ModelFn,
    split: SplitData,
    *,
    num_particles: int,
    num_steps: int,
    optimizer: optax.GradientTransformation,
    kernel: str = "rbf",
    seed: int,
    progress_bar: bool,
    optimizer_key: Hashable | None = None,
) -> SvgdOutcome:
    r"""Move ``num_particles`` Stein particles to the posterior of ``model`` on all rows.

    Each step is one full-batch SVGD update of every particle (see the module docstring):
    :math:`x_i \leftarrow x_i + \epsilon\,\phi(x_i)` with
    :math:`\phi(x) = \frac{1}{m}\sum_j [k(x_j, x)\nabla_{x_j}\log p(x_j) + \nabla_{x_j}k(x_j, x)]`,
    the step taken by ``optimizer``. The model is called as ``model(**split.rows,
    **split.constants)``. Steps run in compiled chunks of up to :data:`DEFAULT_CHUNK_SIZE`; a tqdm
    bar advances between chunks when ``progress_bar``.

    Args:
        model: a NumPyro model; its latent sites must be continuous.
        split: the data (rows and constants).
        num_particles: Stein particles ``m``, the number of posterior draws returned.
        num_steps: SVGD steps.
        optimizer: an ``optax`` transformation, e.g. ``optax.adam(0.05)``; wrapped for NumPyro
            with :func:`numpyro.optim.optax_to_numpyro`.
        kernel: ``"rbf"`` (median-heuristic bandwidth), ``"imq"`` or ``"linear"``.
        seed: seeds the particles' starting points, uniform in ``(-2, 2)`` in the unconstrained
            space.
        progress_bar: show a tqdm bar.
        optimizer_key: what identifies ``optimizer`` in the program-cache key; default its
            ``id``. Give it when the optimizer is rebuilt for every call (``optax.adam(0.05)``
            makes new closures each time), e.g. ``("adam", 0.05)``, or every call compiles
            again. Calls with equal keys must mean the same optimizer: the program keeps the
            first one's.

    Returns:
        :class:`SvgdOutcome`: ``samples`` ``(num_particles, ...)`` per latent and deterministic
        site, ``losses`` ``(num_steps,)`` (the Stein force's norm), ``params`` (the particles).

    Raises:
        ValueError: an unknown ``kernel`` (naming the choices), or ``num_particles`` or
            ``num_steps`` not a positive int.
        FloatingPointError: the Stein force or the particles became non-finite; the message
            names the first step at fault. The run stops at the end of that chunk.
    """
    _check_arguments(num_particles, num_steps, kernel)
    array_constants, static = split_constants(split.constants)
    arrays = {k: jnp.asarray(v) for k, v in {**split.rows, **array_constants}.items()}
    chunk_size = min(DEFAULT_CHUNK_SIZE, int(num_steps))
    key = (
        "svgd",
        id(model),
        int(num_particles),
        chunk_size,
        kernel,
        ("object", id(optimizer)) if optimizer_key is None else ("key", optimizer_key),
        data_signature(arrays),
        static_key(static),
    )
    program = _PROGRAMS.get(
        key,
        lambda: _SvgdProgram(model, int(num_particles), chunk_size, kernel, optimizer, static),
    )
    init_key, draw_key = jax.random.split(jax.random.PRNGKey(seed))
    state = program.init(init_key, arrays)
    history: list[np.ndarray] = []
    step = 0
    with tqdm(total=num_steps, disable=not progress_bar, unit="step", leave=False) as bar:
        while step < num_steps:
            state, device_losses = program.run_chunk(state, step, num_steps, init_key, arrays)
            done = min(chunk_size, num_steps - step)
            chunk_losses = np.asarray(device_losses)[:done]
            history.append(chunk_losses)
            bad = np.flatnonzero(~np.isfinite(chunk_losses))
            if bad.size:
                first = step + int(bad[0])
                before = f"step {first - 1} was the last finite one" if first else "at the start"
                raise FloatingPointError(
                    f"SVGD's Stein force became non-finite at step {first} (0-based) of "
                    f"{num_steps}: {float(chunk_losses[bad[0]])} ({before}). The particles left "
                    "the region where the model's log density and its gradient are finite: lower "
                    "the optimizer's step size, or check the priors and the data"
                )
            step += done
            bar.update(done)
            bar.set_postfix(stein_force=f"{float(chunk_losses[-1]):.4g}")
    losses = np.concatenate(history)
    samples, params = program.draws(state, draw_key, arrays)
    host_samples = {k: np.asarray(v) for k, v in samples.items()}
    host_params = {k: np.asarray(v) for k, v in params.items()}
    for name, value in host_samples.items():
        if np.issubdtype(value.dtype, np.inexact) and not np.isfinite(value).all():
            raise FloatingPointError(
                f"after {num_steps} SVGD steps the particles of site {name!r} are not finite "
                "although every step's Stein force was: lower the optimizer's step size, or "
                "check the priors and the data"
            )
    return SvgdOutcome(samples=host_samples, losses=losses, params=host_params)
