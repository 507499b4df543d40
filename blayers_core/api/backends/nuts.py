"""The NUTS back end of ``fit``: the No-U-Turn sampler on every row, with Stan's warnings."""

from __future__ import annotations

import numpy as np

from blayers_core.api.options import FitOptions, NUTSOptions
from blayers_core.api.result import FitResult
from blayers_core.contract._typing import ModelFn
from blayers_core.engine.data import SplitData
from blayers_core.engine.dry_run import dry_run
from blayers_core.engine.mcmc import fit_nuts


class NUTSBackend:
    """``method="nuts"``: ``num_chains`` chains of ``num_warmup`` warm-up iterations and
    ``num_samples`` draws each (see :func:`blayers_core.engine.mcmc.fit_nuts`)."""

    name = "nuts"
    options_type = NUTSOptions

    def run(self, model: ModelFn, data: SplitData, options: FitOptions[NUTSOptions]) -> FitResult:
        """Check the data with a dry run, sample, and wrap the draws in a result."""
        observed = dry_run(model, data.rows, data.constants, seed=options.seed).observed_sites
        nuts = options.method
        outcome = fit_nuts(
            model,
            data,
            num_warmup=nuts.num_warmup,
            num_samples=options.num_samples,
            num_chains=nuts.num_chains,
            seed=options.seed,
            progress_bar=options.progress_bar,
            target_accept_prob=float(nuts.target_accept_prob),
        )
        return FitResult(
            model=model,
            guide=None,
            params={},
            losses=np.zeros(0, dtype=np.float32),
            posterior_samples=outcome.posterior_samples,
            observed_sites=observed,
            constants=data.constants,
            num_rows=data.num_rows,
            method="nuts",
            mcmc=outcome.mcmc,
            num_chains=outcome.num_chains,
            components=outcome.components,
        )
