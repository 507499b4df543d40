r"""``FitResult.summary()``: one row per scalar parameter, as a pandas DataFrame.

For each element :math:`\theta_j` of each latent site, over its :math:`S` posterior draws: the
mean, the standard deviation and the central ``interval`` (the :math:`(1 \mp p)/2` quantiles);
for an MCMC fit also the split R-hat and the bulk and tail effective sample sizes of
:func:`blayers_core.engine.mcmc.diagnostics` (NumPyro's estimators).

Rows are labelled ``site[i,j]`` with the indices of the site's axes longer than one, so an
``(8, 1)`` coefficient site gives ``beta/beta[0]`` ... ``beta/beta[7]`` and a scalar site just
its name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd


def element_labels(site: str, shape: Sequence[int]) -> list[str]:
    """Row labels of the elements of a site of ``shape``, in C order."""
    shape = tuple(int(s) for s in shape)
    kept = [axis for axis, size in enumerate(shape) if size > 1]
    if not kept:
        return [site] * int(np.prod(shape, dtype=int))
    return [f"{site}[{','.join(str(index[a]) for a in kept)}]" for index in np.ndindex(*shape)]


def percent_label(level: float) -> str:
    """``0.05`` -> ``"5%"``; ``0.025`` -> ``"2.5%"``."""
    return f"{100 * level:g}%"


def select_sites(samples: Mapping[str, Any], sites: Iterable[str] | None) -> list[str]:
    """The sites to report, in the order given (default: all, sorted); unknown names raise."""
    if sites is None:
        return sorted(samples)
    if isinstance(sites, str):
        sites = [sites]
    chosen = list(sites)
    unknown = [s for s in chosen if s not in samples]
    if unknown:
        raise KeyError(f"no posterior site(s) {unknown}; sites: {sorted(samples)}")
    return chosen


def summarize(
    samples: Mapping[str, Any],
    *,
    interval: float = 0.9,
    num_chains: int = 1,
    diagnostics: bool = False,
    sites: Iterable[str] | None = None,
) -> pd.DataFrame:
    """The summary table of ``{site: (num_chains * draws, ...)}`` posterior draws.

    Args:
        samples: the draws, chains one after the other along axis 0.
        interval: the central interval's probability.
        num_chains: how many chains axis 0 holds (for the diagnostics).
        diagnostics: add ``r_hat``, ``ess_bulk`` and ``ess_tail`` columns.
        sites: report these sites only.
    """
    if isinstance(interval, bool) or not isinstance(interval, int | float) or not 0 < interval < 1:
        raise ValueError(f"interval must be a probability in (0, 1), e.g. 0.9; got {interval!r}")
    lo, hi = (1 - interval) / 2, (1 + interval) / 2
    names = select_sites(samples, sites)
    frames = []
    for name in names:
        arr = np.asarray(samples[name], dtype=np.float64)
        flat = arr.reshape(arr.shape[0], -1)
        columns: dict[str, np.ndarray] = {
            "mean": flat.mean(0),
            "sd": flat.std(0),
            percent_label(lo): np.quantile(flat, lo, axis=0),
            percent_label(hi): np.quantile(flat, hi, axis=0),
        }
        if diagnostics:
            from blayers_core.engine.mcmc import diagnostics as mcmc_diagnostics

            grouped = flat.reshape(num_chains, flat.shape[0] // num_chains, flat.shape[1])
            columns.update(mcmc_diagnostics({name: grouped})[name])
        frames.append(pd.DataFrame(columns, index=element_labels(name, arr.shape[1:])))
    table = pd.concat(frames) if frames else pd.DataFrame()
    table.index.name = "parameter"
    return table
