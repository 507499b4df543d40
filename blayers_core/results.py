"""What ``fit`` returns: fitted parameters, the loss history, posterior draws and ``predict``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np

from blayers_core import predictive
from blayers_core._typing import Array, GuideFn, ModelFn
from blayers_core.predictive import Predictions

__all__ = ["FitResult", "Predictions", "SiteSummary", "Summary"]


@attrs.frozen
class SiteSummary:
    """Posterior summary of one latent site, element by element (flattened)."""

    site: str
    shape: tuple[int, ...]
    mean: np.ndarray
    sd: np.ndarray
    q_low: np.ndarray
    q_high: np.ndarray


@attrs.frozen
class Summary:
    """Posterior summaries of every latent site; ``str()`` gives a table."""

    sites: tuple[SiteSummary, ...]
    interval: float

    def __getitem__(self, site: str) -> SiteSummary:
        for s in self.sites:
            if s.site == site:
                return s
        raise KeyError(f"no site {site!r}; sites: {[s.site for s in self.sites]}")

    def __str__(self) -> str:
        lo, hi = (1 - self.interval) / 2 * 100, (1 + self.interval) / 2 * 100
        header = f"{'parameter':<28}{'mean':>10}{'sd':>10}{f'{lo:g}%':>10}{f'{hi:g}%':>10}"
        lines = [header, "-" * len(header)]
        for s in self.sites:
            for i in range(s.mean.size):
                label = s.site if s.mean.size == 1 else f"{s.site}[{_index(s.shape, i)}]"
                lines.append(
                    f"{label:<28}{s.mean[i]:>10.3f}{s.sd[i]:>10.3f}"
                    f"{s.q_low[i]:>10.3f}{s.q_high[i]:>10.3f}"
                )
        return "\n".join(lines)


def _index(shape: tuple[int, ...], flat: int) -> str:
    return ",".join(str(int(i)) for i in np.unravel_index(flat, shape))


@attrs.frozen
class FitResult:
    """A fitted model.

    Attributes:
        model: the NumPyro model function that was fitted.
        guide: the variational guide.
        params: optimised variational parameters (constrained).
        losses: ``(num_steps,)`` loss at every step.
        posterior_samples: ``{site: (num_samples, ...)}`` draws from the fitted guide.
        observed_sites: names of the model's observed sites.
        constants: non-row arguments, passed again to ``predict``.
        num_rows: rows in the training data.
        state: the final ``SVIState`` (to continue training).
        steps_done: optimisation steps taken.
        interrupted: training was stopped early by Ctrl-C.
        method: ``"vi"`` or ``"nuts"``.
        mcmc: the ``numpyro.infer.MCMC`` object of a NUTS fit.
    """

    model: ModelFn
    guide: GuideFn | None
    params: dict[str, Any] = attrs.field(repr=False)
    losses: np.ndarray = attrs.field(repr=False)
    posterior_samples: dict[str, Array] = attrs.field(repr=False)
    observed_sites: tuple[str, ...]
    constants: dict[str, Any] = attrs.field(repr=False)
    num_rows: int
    state: Any = attrs.field(repr=False, default=None)
    steps_done: int = 0
    interrupted: bool = False
    method: str = "vi"
    mcmc: Any = attrs.field(repr=False, default=None)

    def predict(
        self,
        *,
        kind: str = "response",
        site: str | None = None,
        num_samples: int | None = None,
        seed: int = 1,
        interval: float | None = None,
        quantiles: Sequence[float] | None = None,
        return_draws: bool = False,
        chunk_rows: int | None = None,
        **data: Any,
    ) -> Predictions:
        """Posterior predictive mean, sd and quantiles of an observed site for new rows.

        Leave the target out (the model's ``y=None`` default makes the link draw it). Constants
        given to ``fit`` are passed again unless overridden.

        Args:
            kind: ``"response"`` summarises draws of the observation; ``"mean"`` its expected
                value (the linear predictor through the inverse link).
            site: the observed site; needed only when the model has several.
            num_samples: use the first ``num_samples`` posterior draws (default: all).
            seed: seeds the draws of the observation.
            interval: central interval to report (quantiles ``(1 -+ interval) / 2``); default 0.9.
            quantiles: explicit quantile levels instead of ``interval`` (``()`` for none).
            return_draws: keep the ``(num_samples, n, ...)`` draws on the result.
            chunk_rows: rows per compiled chunk (default: about 8M values per chunk).
            **data: the model's row arrays (and constants to override).
        """
        return predictive.predict(
            self.model,
            self.posterior_samples,
            self.constants,
            self._observed_site(site),
            data,
            kind=kind,
            num_samples=num_samples,
            seed=seed,
            interval=interval,
            quantiles=quantiles,
            return_draws=return_draws,
            chunk_rows=chunk_rows,
        )

    def _observed_site(self, site: str | None) -> str:
        if site is None:
            if len(self.observed_sites) != 1:
                raise ValueError(
                    f"the model has observed sites {list(self.observed_sites)}: "
                    "choose one with site="
                )
            return self.observed_sites[0]
        if site not in self.observed_sites:
            raise ValueError(
                f"site {site!r} is not observed; observed: {list(self.observed_sites)}"
            )
        return site

    def summary(self, interval: float = 0.9) -> Summary:
        """Posterior mean, sd and central ``interval`` of every latent site."""
        if not 0 < interval < 1:
            raise ValueError(f"interval must be in (0, 1), got {interval}")
        lo, hi = (1 - interval) / 2, (1 + interval) / 2
        rows = []
        for name, draws in sorted(self.posterior_samples.items()):
            arr = np.asarray(draws)
            flat = arr.reshape(arr.shape[0], -1)
            rows.append(
                SiteSummary(
                    site=name,
                    shape=arr.shape[1:],
                    mean=flat.mean(0),
                    sd=flat.std(0),
                    q_low=np.quantile(flat, lo, axis=0),
                    q_high=np.quantile(flat, hi, axis=0),
                )
            )
        return Summary(sites=tuple(rows), interval=interval)
