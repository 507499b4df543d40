"""What ``fit`` hands an inference method, and what the method hands back.

An inference method (the ``method`` component kind) turns a model and its data into posterior
draws. ``fit`` validates and encodes the data, splits them into row arrays and constants, checks
them by running the model once over every row (the dry run), and calls
``method.run(problem)`` with one :class:`FitProblem`. The method returns an
:class:`InferenceOutcome`: draws of every latent site, plus what it has of a fitted guide, a loss
history or Markov chains. ``fit`` wraps the outcome in a :class:`~blayers_core.FitResult`, so
``predict``, ``summary``, ``to_arviz`` and ``save`` work the same for every method.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from blayers_core.contract._typing import GuideFn, ModelFn


@attrs.frozen
class SplitData:
    """Row data (leading dimension ``num_rows``) and constants, each by argument name."""

    rows: dict[str, Any]
    constants: dict[str, Any]
    num_rows: int


@attrs.frozen(kw_only=True)
class FitProblem:
    """One fit, as a method sees it; the data are already checked.

    The model is called as ``model(**data.rows, **data.constants)``.

    Attributes:
        model: the NumPyro model function.
        data: the row arrays (leading dimension ``data.num_rows``) and the constants.
        seed: seeds everything random in the fit.
        num_samples: posterior draws to keep (per chain for MCMC); ``None``: the method's default.
        progress_bar: show a progress bar.
        observed_sites: the model's observed sites, in trace order (from the dry run).
        deterministic_sites: its ``numpyro.deterministic`` sites.
        devices: the local ``jax.Device`` objects the fit may split its work across
            (``fit(..., devices=...)``, resolved); ``None``: the default device, as always. A
            method that cannot use several devices raises rather than ignore them.
    """

    model: ModelFn
    data: SplitData
    seed: int = 0
    num_samples: int | None = None
    progress_bar: bool = False
    observed_sites: tuple[str, ...] = ()
    deterministic_sites: tuple[str, ...] = ()
    devices: tuple[Any, ...] | None = None

    def draws(self, default: int) -> int:
        """``num_samples``, or ``default`` when ``fit`` was not given one."""
        return default if self.num_samples is None else self.num_samples


def _no_losses() -> np.ndarray:
    return np.zeros(0, dtype=np.float32)


@attrs.frozen(kw_only=True)
class InferenceOutcome:
    """What a method produced.

    Attributes:
        posterior_samples: ``{site: (num_chains * draws, ...)}`` draws of every latent (and
            deterministic) site in the constrained space; chains one after the other.
        num_chains: independent chains in ``posterior_samples`` (1 for VI and SVGD).
        markov_chains: the draws are Markov chains, so summaries report R-hat and ESS.
        components: how the method and its parts were configured,
            ``{"method": {"name": "nuts", "config": {...}}, "guide": {...}, ...}``; saved with
            the result, and looked up again when it is loaded.
        guide: a fitted variational guide, if the method has one (``predict`` still uses the
            draws).
        params: the fitted variational parameters (constrained), if any.
        losses: ``(steps,)`` the loss at every optimisation step, if any.
        state: the final optimiser state, to continue training, if any.
        steps_done: optimisation steps taken.
        interrupted: the method was stopped early by Ctrl-C.
        extra: anything else worth keeping on the result (e.g. ``{"diverging": (chains,
            draws)}``).
    """

    posterior_samples: dict[str, Any]
    num_chains: int = 1
    markov_chains: bool = False
    components: dict[str, Any] = attrs.field(factory=dict)
    guide: GuideFn | None = None
    params: dict[str, Any] = attrs.field(factory=dict)
    losses: np.ndarray = attrs.field(factory=_no_losses)
    state: Any = None
    steps_done: int = 0
    interrupted: bool = False
    extra: dict[str, Any] = attrs.field(factory=dict)
