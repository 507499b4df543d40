"""Sampling-based methods from a :class:`~blayers_core.contract.inference.FitProblem` to an
:class:`~blayers_core.contract.inference.InferenceOutcome`.

Plugins build their inference methods from these (through :mod:`blayers_core.plugin`):

* :func:`sample_with_kernel` runs any NumPyro MCMC kernel (NUTS, HMC, a third-party kernel) with
  the compile-once driver of :mod:`blayers_core.engine.mcmc`, then warns as Stan does;
* :func:`stein_variational` runs Stein variational gradient descent
  (:mod:`blayers_core.engine.svgd`) and returns its particles as the posterior draws.

SVI's is :func:`blayers_core.engine.svi.train_svi`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from blayers_core.contract._typing import ModelFn
from blayers_core.contract.inference import FitProblem, InferenceOutcome, in_memory
from blayers_core.engine.components import (
    component_key,
    learning_rate_key,
    resolve_optimizer,
)
from blayers_core.engine.devices import require_one_device, require_one_process

#: Draws per chain when ``fit`` is not given ``num_samples``.
DEFAULT_DRAWS_PER_CHAIN = 1000


def sample_with_kernel(
    problem: FitProblem,
    *,
    kernel: Callable[[ModelFn], Any],
    kernel_key: Hashable,
    num_warmup: int,
    num_chains: int,
) -> InferenceOutcome:
    """Run ``num_chains`` chains of ``kernel(model)``: ``num_warmup`` warm-up iterations, then
    ``problem.num_samples`` draws each (default :data:`DEFAULT_DRAWS_PER_CHAIN`).

    The sampling program is compiled once per model, ``kernel_key`` (what identifies the kernel's
    configuration; a frozen attrs method object will do), iteration counts and data layout: a
    second fit with new data of the same shapes, or a new seed, compiles nothing.

    Warns (:class:`~blayers_core.engine.mcmc.SamplingWarning`) on divergences, R-hat above 1.01
    and low effective sample sizes. With ``problem.devices`` the chains are split across those
    devices.

    Raises:
        NonFiniteDensityError: no initial point has a finite log density; names the site and row.
    """
    from blayers_core.engine.mcmc import check_diagnostics, sample_mcmc  # imported when used

    require_one_process("Markov chain Monte Carlo (nuts, hmc)")
    draws = sample_mcmc(
        problem.model,
        in_memory(problem.data, getattr(kernel_key, "name", type(kernel_key).__name__.lower())),
        kernel=kernel,
        kernel_key=kernel_key,
        num_warmup=num_warmup,
        num_samples=problem.draws(DEFAULT_DRAWS_PER_CHAIN),
        num_chains=num_chains,
        seed=problem.seed,
        progress_bar=problem.progress_bar,
        devices=problem.devices,
    )
    check_diagnostics(draws)
    extra = {} if draws.diverging is None else {"diverging": draws.diverging}
    return InferenceOutcome(
        posterior_samples=draws.flat(),
        num_chains=draws.num_chains,
        markov_chains=True,
        extra=extra,
    )


def stein_variational(
    problem: FitProblem,
    *,
    num_particles: int,
    num_steps: int,
    optimizer: Any,
    learning_rate: Any,
    kernel: str,
) -> InferenceOutcome:
    """Move ``num_particles`` particles for ``num_steps`` steps of Stein variational gradient
    descent; the particles are the posterior draws. ``optimizer`` is a registered name (built
    with ``learning_rate``) or an optax transformation.

    Raises:
        ValueError: ``fit`` was given ``num_samples`` other than ``num_particles`` (SVGD's draws
            are its particles), or several devices (SVGD runs on one).
    """
    require_one_device(problem.devices, "svgd")
    if problem.num_samples is not None and problem.num_samples != num_particles:
        raise ValueError(
            f"num_samples={problem.num_samples} was given, but SVGD's posterior draws are its "
            f"{num_particles} particles: set num_particles={problem.num_samples} on the method "
            "instead, method('svgd', num_particles=...)"
        )
    from blayers_core.engine.svgd import run_svgd  # NumPyro's Stein VI, imported when used

    outcome = run_svgd(
        problem.model,
        in_memory(problem.data, "svgd"),
        num_particles=num_particles,
        num_steps=num_steps,
        optimizer=resolve_optimizer(optimizer, learning_rate),
        # A named optimizer is built afresh every call: identify it by name and rate instead.
        optimizer_key=component_key("optimizer", optimizer, learning_rate_key(learning_rate)),
        kernel=kernel,
        seed=problem.seed,
        progress_bar=problem.progress_bar,
    )
    return InferenceOutcome(
        posterior_samples=outcome.samples,
        params=dict(outcome.params),
        losses=outcome.losses,
        steps_done=num_steps,
    )
