"""What ``fit`` returns: fitted parameters, the loss history, posterior draws, and what to do with
them. The work is done in small modules: :mod:`blayers_core.results.predictive` (``predict``),
:mod:`blayers_core.results.summary`, :mod:`blayers_core.io.arviz_export`, :mod:`blayers_core.io.plots` and
:mod:`blayers_core.io.persistence` (``save``/``load``)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from blayers_core.contract._typing import Array, GuideFn, ModelFn
from blayers_core.contract.errors import DataError
from blayers_core.contract.population import allow_population_codes
from blayers_core.engine.data import DataSignature
from blayers_core.io.frames import (
    DataEncoder,
    Level,
    Unseen,
    encode_prediction_data,
    encode_prediction_series,
)
from blayers_core.io.parquet import (
    is_parquet_source,
    open_for_prediction,
    pieces_in_order,
    write_predictions,
)
from blayers_core.results import predictive
from blayers_core.results.predictive import Predictions, join_predictions
from blayers_core.results.summary import summarize

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FitResult", "Predictions"]


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
        method: the inference method's registered name (``"svi"``, ``"nuts"``, ...).
        num_chains: chains laid one after the other in ``posterior_samples`` (1 for SVI, SVGD).
        markov_chains: the draws are Markov chains (NUTS, HMC): ``summary`` reports R-hat and
            effective sample sizes.
        components: how the method and its parts were given to ``fit``:
            ``{"method": {"name": "svi", "config": {"batch_size": 64}}, "guide": {"name":
            "auto_normal", "config": {}}, ...}``; a component given as an object is recorded as
            ``{"name": None, "type": "module.Class"}``.
        extra: what else the method reported, e.g. ``{"diverging": (chains, draws) bool}``
            for NUTS (not saved).
        encoder: how the training DataFrame (or categorical Series) became arguments (``None``
            when fitted on arrays).
        data_signature: ``{argument: (trailing shape, dtype kind)}`` of the training rows;
            ``predict`` checks new rows against it before tracing. ``None`` when unknown (a file
            saved by an older version), and then nothing is checked.
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
    method: str = "svi"
    num_chains: int = 1
    markov_chains: bool = False
    components: dict[str, Any] = attrs.field(factory=dict, repr=False)
    extra: dict[str, Any] = attrs.field(factory=dict, repr=False)

    def __repr__(self) -> str:
        return describe(self)

    encoder: DataEncoder | None = attrs.field(repr=False, default=None)
    data_signature: DataSignature | None = attrs.field(repr=False, default=None)

    @property
    def levels(self) -> dict[str, tuple[Level, ...]]:
        """Levels of the categorical training columns, ``{"group": ("a", "b")}``; code ``i`` is
        level ``i``. Empty when fitted on arrays."""
        return {} if self.encoder is None else self.encoder.levels

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
        data: Any = None,
        unseen: Unseen = "error",
        output: str | os.PathLike[str] | None = None,
        **new_data: Any,
    ) -> Predictions | Path:
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
            data: a DataFrame (encoded as in training; see :mod:`blayers_core.io.frames`), a
                mapping of the model's arguments, or Parquet data (a ``.parquet`` file, a folder
                of them, a ``pyarrow.dataset.Dataset``) read a few row groups at a time, in order
                (:mod:`blayers_core.io.parquet`).
            unseen: ``"error"`` (default) raises on a categorical level not seen in training;
                ``"population"`` predicts such rows at the population level.
            output: with Parquet ``data``, write the predictions to this Parquet file instead of
                returning them (columns ``mean``, ``sd``, ``q0.05``, ..., the input's rows in
                order, memory bounded) and return its path.
            **new_data: the model's row arrays (and constants to override); a categorical
                Series is encoded with the levels it had in training.

        Raises:
            DataError: unusable rows, or rows unlike the training rows (another number of
                columns, floats where the model was fitted on integer codes), before anything is
                traced; an unseen level with ``unseen="error"``.
        """
        options: dict[str, Any] = {
            "kind": kind,
            "num_samples": num_samples,
            "seed": seed,
            "interval": interval,
            "quantiles": quantiles,
            "return_draws": return_draws,
            "chunk_rows": chunk_rows,
        }
        if is_parquet_source(data):
            return self._predict_parquet(data, output, site, unseen, options, new_data)
        if output is not None:
            raise ValueError(
                "output= writes the predictions of Parquet data= to a file; with other data "
                "predict returns them (leave output= out)"
            )
        arguments = encode_prediction_series(
            self.encoder,
            {
                **encode_prediction_data(self.model, self.encoder, data, unseen, new_data),
                **new_data,
            },
            unseen,
        )
        with allow_population_codes() if unseen == "population" else contextlib.nullcontext():
            return predictive.predict(
                self.model,
                self.posterior_samples,
                self.constants,
                self._observed_site(site),
                arguments,
                data_signature=self.data_signature,
                **options,
            )

    def _predict_parquet(
        self,
        data: Any,
        output: str | os.PathLike[str] | None,
        site: str | None,
        unseen: Unseen,
        options: Mapping[str, Any],
        new_data: Mapping[str, Any],
    ) -> Predictions | Path:
        """:meth:`predict` on Parquet rows read a few row groups at a time, in order."""
        if self.encoder is None:
            raise DataError(
                "this result was fitted on arrays, so it has no column encoder to read Parquet "
                "columns with; pass the new data as arrays (predict(x=...)), or fit on a "
                "DataFrame or on Parquet data"
            )
        if output is not None and options["return_draws"]:
            raise ValueError("return_draws=True cannot be written to output=; leave one out")
        dataset, _ = open_for_prediction(data)

        def parts() -> Iterator[Predictions]:
            for table in pieces_in_order(dataset):
                part = self.predict(data=table, site=site, unseen=unseen, **options, **new_data)
                assert isinstance(part, Predictions)
                yield part

        if output is not None:
            return write_predictions(
                ((p.mean, p.sd, p.quantile_levels, p.quantiles) for p in parts()), output
            )
        return join_predictions(list(parts()))

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

    def summary(self, interval: float = 0.9, *, sites: Iterable[str] | None = None) -> pd.DataFrame:
        """Posterior mean, sd and central ``interval`` of every latent element, as a DataFrame.

        The index is the parameter (``beta/beta[3]``); columns ``mean``, ``sd``, the interval
        bounds (``5%``, ``95%``) and, for Markov chains (NUTS, HMC), ``r_hat``, ``ess_bulk`` and
        ``ess_tail``.
        ``sites`` restricts the table to those sites.
        """
        return summarize(
            self.posterior_samples,
            interval=interval,
            num_chains=self.num_chains,
            diagnostics=self.markov_chains,
            sites=sites,
        )

    def to_arviz(
        self,
        *,
        seed: int = 0,
        chunk_rows: int | None = None,
        coords: Mapping[str, Any] | None = None,
        dims: Mapping[str, list[str]] | None = None,
        **data: Any,
    ) -> Any:
        """An ArviZ ``InferenceData`` (ArviZ 0.x) or ``DataTree`` (1.x); see
        :func:`blayers_core.io.arviz_export.to_arviz`. Pass the training data (target included) to
        add ``observed_data``, ``log_likelihood`` and ``posterior_predictive`` for ``az.loo``;
        a pandas or polars Series is read as in training (a categorical one as its codes)."""
        from blayers_core.io.arviz_export import to_arviz

        arrays = encode_prediction_series(self.encoder, data, "error")
        return to_arviz(self, seed=seed, chunk_rows=chunk_rows, coords=coords, dims=dims, **arrays)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the fit to one ``.npz`` file without pickle (draws, parameters, losses, component
        names and configs, constants); read it back with :func:`blayers_core.load`."""
        from blayers_core.io.persistence import save

        return save(self, path)

    def plot(self, path: str | os.PathLike[str] | None = None, **options: Any) -> Any:
        """The loss curve and a forest plot in one figure, written to ``path`` when given; see
        :func:`blayers_core.io.plots.plot_result` for ``sites=``, ``labels=``, ``interval=``."""
        from blayers_core.io.plots import plot_result

        return plot_result(self, path, **options)


def describe(result: FitResult) -> str:
    """A few lines on a fit: method, rows, steps, final loss and the sites with their shapes."""
    num_draws = (
        len(next(iter(result.posterior_samples.values()))) if result.posterior_samples else 0
    )
    head = f"FitResult(method={result.method!r}, rows={result.num_rows}"
    if result.steps_done:
        head += f", steps={result.steps_done}"
        if len(result.losses):
            tail = np.asarray(result.losses[-min(100, len(result.losses)) :], dtype=float)
            head += f", final loss={float(np.mean(tail)):.4g}"
    if result.markov_chains:
        head += f", chains={result.num_chains}"
    head += f", draws={num_draws // max(result.num_chains, 1)}"
    if result.interrupted:
        head += ", interrupted"
    lines = [head + ")"]
    sites = ", ".join(
        f"{k} {tuple(np.shape(v)[1:])}" for k, v in sorted(result.posterior_samples.items())
    )
    lines.append(f"  latent: {sites or 'none'}")
    lines.append(f"  observed: {', '.join(result.observed_sites) or 'none'}")
    return "\n".join(lines)
