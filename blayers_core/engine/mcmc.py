"""NUTS on the same model and data, with Stan's post-sampling warnings.

After sampling, :func:`check_diagnostics` warns, as Stan does, when any transition diverged, when a
parameter's split R-hat exceeds 1.01, or when its bulk or tail effective sample size is below 100
per chain. Bulk ESS is NumPyro's ESS of the draws; tail ESS is the smaller ESS of the indicators
``draw <= q05`` and ``draw >= q95`` (Vehtari et al. 2021).

When NumPyro finds no initial point with a finite log density, the model is re-evaluated outside
``jit`` at the prior median and the error names the site, the row and the value at fault
(:func:`~blayers_core.engine.diagnose.no_valid_start_error`).
"""

from __future__ import annotations

import warnings
from typing import Any

import attrs
import jax
import numpy as np
from numpyro.diagnostics import effective_sample_size, split_gelman_rubin
from numpyro.infer import MCMC, NUTS

from blayers_core.contract._typing import ModelFn
from blayers_core.engine.data import SplitData
from blayers_core.engine.diagnose import NUMPYRO_NO_VALID_START, no_valid_start_error

#: Stan's thresholds.
MAX_RHAT = 1.01
MIN_ESS_PER_CHAIN = 100


class SamplingWarning(UserWarning):
    """NUTS finished, but its draws should not be trusted as they are (divergences, R-hat, ESS)."""


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


def check_diagnostics(mcmc: MCMC, num_chains: int) -> list[str]:
    """Warn (and return the messages) about divergences, R-hat and low ESS."""
    messages = []
    divergences = int(np.sum(np.asarray(mcmc.get_extra_fields()["diverging"])))
    if divergences:
        messages.append(
            f"{divergences} divergent transitions after warm-up: the posterior has regions NUTS "
            "cannot explore (e.g. a funnel); reparameterise (non-centre the hierarchical scales "
            "with blayers_plugins.reparam.autoreparam) or raise target_accept_prob"
        )
    min_ess = MIN_ESS_PER_CHAIN * num_chains
    for name, stats in diagnostics(mcmc.get_samples(group_by_chain=True)).items():
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
        warnings.warn(message, SamplingWarning, stacklevel=3)
    return messages


@attrs.frozen
class NutsOutcome:
    """What a NUTS run produced: the ``MCMC`` object, its draws (chains one after the other) and
    how the sampler was configured."""

    mcmc: Any
    posterior_samples: dict[str, Any]
    num_chains: int
    components: dict[str, Any]


def fit_nuts(
    model: ModelFn,
    split: SplitData,
    *,
    num_warmup: int,
    num_samples: int,
    num_chains: int,
    seed: int,
    progress_bar: bool,
    target_accept_prob: float = 0.8,
) -> NutsOutcome:
    """Sample the posterior of ``model`` on all rows with NUTS; warn as Stan does.

    The arguments are taken as valid (``fit`` checks them, see
    :class:`~blayers_core.api.options.NUTSOptions`).

    Raises:
        NonFiniteDensityError: no initial point has a finite log density; names the site and row.
    """
    sampler_config = {
        "num_warmup": num_warmup,
        "num_samples": num_samples,
        "num_chains": num_chains,
        "target_accept_prob": target_accept_prob,
        "seed": seed,
    }
    kernel = NUTS(model, target_accept_prob=target_accept_prob)
    mcmc = MCMC(
        kernel,
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method="sequential" if jax.local_device_count() < num_chains else "parallel",
        progress_bar=progress_bar,
    )
    arguments = {**split.rows, **split.constants}
    try:
        mcmc.run(jax.random.PRNGKey(seed), **arguments, extra_fields=("diverging",))
    except RuntimeError as error:
        if NUMPYRO_NO_VALID_START not in str(error):
            raise
        raise no_valid_start_error(
            "NUTS",
            model,
            arguments,
            num_rows=split.num_rows,
            row_ids=np.arange(split.num_rows),
            error=error,
        ) from error
    check_diagnostics(mcmc, num_chains)
    return NutsOutcome(
        mcmc=mcmc,
        posterior_samples=mcmc.get_samples(),
        num_chains=num_chains,
        components={"sampler": {"name": "nuts", "config": sampler_config}},
    )
