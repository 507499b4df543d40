"""NUTS and HMC on the same model and data, compiled once, with Stan's post-sampling warnings.

:func:`sample_mcmc` runs any NumPyro HMC-family kernel (``NUTS``, ``HMC``) through a compiled
:class:`~blayers_core.engine.mcmc_program.McmcProgram`, looked up by the model, the kernel's
configuration (``kernel_key``), the numbers of iterations and chains, the layout of the data and
the static constants. A second run with new data of the same shapes or a new seed compiles
nothing, and repeated runs in one process keep memory flat. :func:`fit_nuts` is NUTS with the
settings of ``fit(method="nuts")``.

After sampling, :func:`check_diagnostics` warns, as Stan does, when any transition diverged, when a
parameter's split R-hat exceeds 1.01, or when its bulk or tail effective sample size is below 100
per chain. Bulk ESS is NumPyro's ESS of the draws; tail ESS is the smaller ESS of the indicators
``draw <= q05`` and ``draw >= q95`` (Vehtari et al. 2021).

When no chain starts at a point with a finite log density (and gradient), the model is
re-evaluated outside ``jit`` at the prior median and the error names the site, the row and the
value at fault (:func:`~blayers_core.engine.diagnose.no_valid_start_error`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn

import attrs
import jax
import numpy as np
from numpyro.diagnostics import effective_sample_size, split_gelman_rubin
from numpyro.infer.mcmc import MCMCKernel
from tqdm.auto import tqdm

from blayers_core.contract._typing import Array, ModelFn
from blayers_core.contract.errors import user_stacklevel
from blayers_core.engine.data import split_constants
from blayers_core.engine.diagnose import NUMPYRO_NO_VALID_START, no_valid_start_error
from blayers_core.engine.mcmc_program import (
    Carry,
    McmcLayout,
    McmcProgram,
    check_chain_split,
    chunk_size_for,
    devices_for,
    get_mcmc_program,
)
from blayers_core.engine.program_cache import data_signature, static_key

if TYPE_CHECKING:
    from blayers_core.contract.inference import SplitData

#: Stan's thresholds.
MAX_RHAT = 1.01
MIN_ESS_PER_CHAIN = 100

#: Builds a kernel on a model, e.g. ``functools.partial(NUTS, target_accept_prob=0.9)``.
KernelFactory = Callable[[ModelFn], MCMCKernel]


class SamplingWarning(UserWarning):
    """NUTS finished, but its draws should not be trusted as they are (divergences, R-hat, ESS)."""


@attrs.frozen
class McmcDraws:
    """The kept draws of an MCMC run, chain by chain.

    Attributes:
        samples: ``{site: (num_chains, num_samples, ...)}``, every latent site (constrained) and
            every deterministic site, as ``MCMC.get_samples(group_by_chain=True)`` gives them.
        diverging: ``(num_chains, num_samples)`` bool, whether each kept transition diverged;
            ``None`` when the kernel's state has no ``diverging`` field.
        num_chains: the chains.
    """

    samples: dict[str, np.ndarray]
    diverging: np.ndarray | None
    num_chains: int

    @property
    def num_samples(self) -> int:
        """Kept draws per chain."""
        return int(next(iter(self.samples.values())).shape[1]) if self.samples else 0

    def flat(self) -> dict[str, np.ndarray]:
        """``{site: (num_chains * num_samples, ...)}``: the chains one after the other."""
        return {k: v.reshape((-1, *v.shape[2:])) for k, v in self.samples.items()}


def sample_mcmc(
    model: ModelFn,
    split: SplitData,
    *,
    kernel: KernelFactory,
    kernel_key: Hashable,
    num_warmup: int,
    num_samples: int,
    num_chains: int,
    seed: int,
    progress_bar: bool,
    devices: tuple[Any, ...] | None = None,
) -> McmcDraws:
    """Run ``num_chains`` chains of ``num_warmup`` warm-up and ``num_samples`` kept iterations.

    Args:
        model: the NumPyro model, called as ``model(**rows, **constants)``.
        split: the data: row arrays and constants.
        kernel: builds the kernel on ``model`` (called once per compiled program).
        kernel_key: identifies ``kernel``'s configuration in the program cache: two factories
            with equal keys must build the same kernel.
        num_warmup: warm-up iterations per chain (adaptation; not kept).
        num_samples: kept iterations per chain.
        num_chains: chains, vectorised on one device or split across several.
        seed: the run's random seed (chain keys as ``numpyro.infer.MCMC`` makes them).
        progress_bar: show a tqdm bar (the run is then cut into chunks of iterations).
        devices: split the chains across these local devices (``num_chains`` a multiple of
            their number); ``None``: across ``gcd(num_chains, local devices)`` of them.

    Returns:
        The draws, ``(num_chains, num_samples, ...)`` per site.

    Raises:
        NonFiniteDensityError: a chain's initial point has no finite log density (or gradient);
            names the site and row.
        ValueError: ``num_chains`` does not split evenly across ``devices``.
    """
    array_constants, static = split_constants(split.constants)
    arrays = {**split.rows, **array_constants}
    if devices is not None:
        check_chain_split(num_chains, devices)
    layout = McmcLayout(
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chunk_size=chunk_size_for(num_warmup + num_samples, progress_bar),
        num_devices=devices_for(num_chains) if devices is None else len(devices),
        device_ids=None if devices is None else tuple(device.id for device in devices),
    )
    key = ("mcmc", model, kernel_key, layout, data_signature(arrays), static_key(static))
    program = get_mcmc_program(key, lambda: McmcProgram(kernel(model), layout, static))
    device_arrays = program.put(arrays)
    carry, valid = program.init(jax.random.PRNGKey(seed), device_arrays)
    if not valid.all():
        _raise_no_valid_start(program, model, split, valid)
    _, buffers = _run_chunks(program, carry, device_arrays, progress_bar)
    return _draws(buffers, num_chains)


def _run_chunks(
    program: McmcProgram, carry: Carry, arrays: Mapping[str, Array], progress_bar: bool
) -> Carry:
    """Every chunk of iterations, advancing the bar after each."""
    layout = program.layout
    with tqdm(total=layout.num_iterations, disable=not progress_bar, unit="it", leave=False) as bar:
        for chunk in range(layout.num_chunks):
            first = chunk * layout.chunk_size
            bar.set_description("warmup" if first < layout.num_warmup else "sample")
            carry = program.run_chunk(carry, first, arrays)
            if progress_bar:
                _wait(carry)
            bar.update(min(layout.chunk_size, layout.num_iterations - first))
    return carry


def _wait(tree: Any) -> None:
    """Block until every array of ``tree`` is computed (so the bar shows real progress)."""
    for leaf in jax.tree_util.tree_leaves(tree):
        leaf.block_until_ready()


def _draws(buffers: Mapping[str, Any], num_chains: int) -> McmcDraws:
    """The buffers of a finished run, on the host."""
    samples = {k: np.asarray(v) for k, v in buffers["samples"].items()}
    diverging = buffers.get("diverging")
    return McmcDraws(
        samples=samples,
        diverging=None if diverging is None else np.asarray(diverging, dtype=bool),
        num_chains=num_chains,
    )


def _raise_no_valid_start(
    program: McmcProgram, model: ModelFn, split: SplitData, valid: np.ndarray
) -> NoReturn:
    """Raise the error of a run where the chains ``~valid`` found no finite starting point, with
    NumPyro's message as its cause."""
    bad = [int(c) for c in np.flatnonzero(~valid)]
    error = RuntimeError(
        f"{NUMPYRO_NO_VALID_START}. Please check your model again (chains {bad} of {len(valid)})."
    )
    raise no_valid_start_error(
        type(program.kernel).__name__,
        model,
        {**split.rows, **split.constants},
        num_rows=split.num_rows,
        row_ids=np.arange(split.num_rows),
        error=error,
    ) from error


def tail_ess(draws: np.ndarray) -> float:
    """Tail ESS of ``(chains, draws)``: the smaller ESS of the 5% and 95% quantile indicators."""
    lo, hi = np.quantile(draws, [0.05, 0.95])
    indicators = [(draws <= lo).astype(float), (draws >= hi).astype(float)]
    values = [float(effective_sample_size(i)) for i in indicators if np.ptp(i) > 0]
    return min(values) if values else float("nan")


def diagnostics(samples: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """Per-site, per-element R-hat, bulk ESS and tail ESS of grouped ``(chains, draws, ...)``."""
    table: dict[str, dict[str, np.ndarray]] = {}
    for name, value in samples.items():
        arr = np.asarray(value, dtype=float)
        chains, draws = arr.shape[:2]
        flat = arr.reshape(chains, draws, -1)
        rhat = (
            np.asarray(split_gelman_rubin(flat)) if draws >= 4 else np.full(flat.shape[2], np.nan)
        )
        bulk = np.asarray(effective_sample_size(flat))
        tail = np.array([tail_ess(flat[:, :, j]) for j in range(flat.shape[2])])
        table[name] = {"r_hat": rhat, "ess_bulk": bulk, "ess_tail": tail}
    return table


def check_diagnostics(draws: McmcDraws) -> list[str]:
    """Warn (and return the messages) about divergences, R-hat and low ESS."""
    messages = []
    divergences = 0 if draws.diverging is None else int(np.sum(draws.diverging))
    if divergences:
        messages.append(
            f"{divergences} divergent transitions after warm-up: the posterior has regions NUTS "
            "cannot explore (e.g. a funnel); reparameterise (non-centre the hierarchical scales "
            "with blayers_plugins.reparam.autoreparam) or raise target_accept_prob"
        )
    num_chains = draws.num_chains
    min_ess = MIN_ESS_PER_CHAIN * num_chains
    for name, stats in diagnostics(draws.samples).items():
        if num_chains > 1 and np.nanmax(stats["r_hat"], initial=0.0) > MAX_RHAT:
            messages.append(
                f"{name}: R-hat {np.nanmax(stats['r_hat']):.3f} > {MAX_RHAT}; the chains have not "
                "mixed: run longer or reparameterise"
            )
        for kind in ("bulk", "tail"):
            ess = stats[f"ess_{kind}"]
            if np.nanmin(ess, initial=np.inf) < min_ess:
                messages.append(
                    f"{name}: {kind} ESS {np.nanmin(ess):.0f} < {min_ess} ({MIN_ESS_PER_CHAIN} per "
                    f"chain); the {kind} estimates are unreliable: run more draws"
                )
    for message in messages:
        warnings.warn(message, SamplingWarning, stacklevel=user_stacklevel())
    return messages
