"""What ``fit`` returns: fitted parameters, the loss history, posterior draws and ``predict``."""

from __future__ import annotations

from typing import Any

import attrs
import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer import Predictive

from blayers_core._typing import Array, GuideFn, ModelFn
from blayers_core.data import check_row_array
from blayers_core.dry_run import dry_run
from blayers_core.errors import DataError
from blayers_core.frames import DataEncoder, Level, Unseen, predict_from_data


@attrs.frozen
class Predictions:
    """Posterior predictive draws of one observed site and their summaries.

    Attributes:
        site: the observed site's name (e.g. ``"obs"``).
        mean: ``(n, ...)`` posterior predictive mean.
        sd: ``(n, ...)`` posterior predictive standard deviation.
        draws: ``(num_samples, n, ...)`` draws.
    """

    site: str
    mean: Array
    sd: Array
    draws: Array = attrs.field(repr=False)

    @property
    def std(self) -> Array:
        """Alias of :attr:`sd`, as in BLayers."""
        return self.sd


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
        encoder: how the training DataFrame became arguments (``None`` when fitted on arrays).
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
    encoder: DataEncoder | None = attrs.field(repr=False, default=None)

    @property
    def levels(self) -> dict[str, tuple[Level, ...]]:
        """Levels of the categorical training columns, ``{"group": ("a", "b")}``; code ``i`` is
        level ``i``. Empty when fitted on arrays."""
        return {} if self.encoder is None else self.encoder.levels

    def predict(
        self,
        *,
        site: str | None = None,
        num_samples: int | None = None,
        seed: int = 1,
        data: Any = None,
        unseen: Unseen = "error",
        **new_data: Any,
    ) -> Predictions:
        """Posterior predictive draws of an observed site for new (or training) data.

        Leave the target out (the model's ``y=None`` default makes the link draw it). Constants
        given to ``fit`` are passed again unless overridden. ``data=`` takes a DataFrame (encoded
        as in training; see :mod:`blayers_core.frames`) or a mapping; ``unseen="population"``
        predicts categorical levels not seen in training at the population level instead of
        raising.
        """
        if data is not None or unseen != "error":  # a DataFrame, or the population policy
            kwargs = {"site": site, "num_samples": num_samples, "seed": seed, **new_data}
            return predict_from_data(self, data, unseen, **kwargs)
        data = new_data
        site = self._observed_site(site)
        samples = self.posterior_samples
        if num_samples is not None:
            available = next(iter(samples.values())).shape[0]
            if not 1 <= num_samples <= available:
                raise ValueError(
                    f"num_samples must be between 1 and {available} (the posterior draws kept "
                    f"by fit), got {num_samples}"
                )
            samples = {k: v[:num_samples] for k, v in samples.items()}
        arrays = {k: v for k, v in data.items() if hasattr(v, "shape") and np.ndim(v) >= 1}
        lengths = {k: np.shape(v)[0] for k, v in arrays.items()}
        if len(set(lengths.values())) > 1:
            raise DataError(f"predict's array arguments have different numbers of rows: {lengths}")
        for name, value in arrays.items():
            check_row_array(name, value)
        others = {k: v for k, v in data.items() if k not in arrays}
        dry_run(self.model, arrays, {**self.constants, **others}, seed=seed)  # raises on bad input
        predictive = Predictive(self.model, posterior_samples=samples, return_sites=[site])
        draws = predictive(jax.random.PRNGKey(seed), **{**self.constants, **data})[site]
        return Predictions(site=site, mean=jnp.mean(draws, 0), sd=jnp.std(draws, 0), draws=draws)

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
