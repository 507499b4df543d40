"""What ``fit`` hands an inference method, and what the method hands back.

An inference method (the ``method`` component kind) turns a model and its data into posterior
draws. ``fit`` validates and encodes the data, splits them into row arrays and constants, checks
them by running the model once over every row (the dry run), and calls
``method.run(problem)`` with one :class:`FitProblem`. The method returns an
:class:`InferenceOutcome`: draws of every latent site, plus what it has of a fitted guide, a loss
history or Markov chains. ``fit`` wraps the outcome in a :class:`~blayers_core.FitResult`, so
``predict``, ``summary``, ``to_arviz`` and ``save`` work the same for every method.

Data streamed from disk (Parquet larger than memory) reach the method as a :class:`RowStream`
instead of :class:`SplitData`: batches read on demand, the same for the same seed and step. Only
the dry run's first rows are checked before the method runs.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from typing import Any

import attrs
import numpy as np

from blayers_core.contract._typing import GuideFn, ModelFn
from blayers_core.contract.errors import DataError


@attrs.frozen
class SplitData:
    """Row data (leading dimension ``num_rows``) and constants, each by argument name."""

    rows: dict[str, Any]
    constants: dict[str, Any]
    num_rows: int


@attrs.frozen(kw_only=True)
class HostBatch:
    """One training step's rows from a :class:`RowStream`, on the host.

    Attributes:
        rows: ``{argument: (B, ...)}``; slots past the real rows repeat real rows (finite).
        mask: ``(B,)`` bool, ``True`` for the real rows.
        row_ids: ``(B,)`` int64: each slot's row, counted in the data's own order.
    """

    rows: dict[str, np.ndarray]
    mask: np.ndarray
    row_ids: np.ndarray


class RowStream(abc.ABC):
    """Row data read in batches from outside memory (e.g. Parquet files), as a method sees it.

    ``fit`` hands a method one of these as ``FitProblem.data`` instead of :class:`SplitData` when
    the rows do not live in memory. Its batches are a deterministic function of ``(seed, step)``:
    a run that resumes at step ``s`` gets the same batches as one that never stopped. Every row
    is in exactly one batch of each epoch of ``S = ceil(num_rows / B)`` steps; the last batch of
    an epoch may be short, its padding slots masked out (:attr:`HostBatch.mask`).

    Attributes:
        num_rows: ``N``, the rows of the data.
        constants: the model's other arguments, passed whole to every call.
    """

    num_rows: int
    constants: dict[str, Any]

    @property
    def rows(self) -> dict[str, Any]:
        """Not available: the rows are not in memory. A method that needs every row at once
        (``problem.data.rows``) cannot fit a stream."""
        raise TypeError(
            "this inference method needs the data in memory (problem.data.rows), but the data "
            "are streamed from disk; stream Parquet with method='svi' and batch_size=..., or "
            "read the data into memory (e.g. with pandas) first"
        )

    @property
    @abc.abstractmethod
    def row_layout(self) -> dict[str, tuple[tuple[int, ...], np.dtype[Any]]]:
        """``{argument: (trailing shape, dtype)}`` of the rows of every batch."""

    @abc.abstractmethod
    def describe(self) -> str:
        """What the rows are read from, for messages (``"Parquet file data.parquet"``)."""

    @abc.abstractmethod
    def fingerprint(self) -> str:
        """A hash of what fixes the batches (files, row counts, columns), for checkpoints."""

    @abc.abstractmethod
    def first_rows(self, count: int) -> dict[str, np.ndarray]:
        """At least ``min(count, num_rows)`` rows from the start of the data, in order."""

    @abc.abstractmethod
    def batches(
        self,
        *,
        batch_size: int,
        seed: int,
        shuffle: bool,
        first_step: int = 0,
        steps_per_epoch: int | None = None,
    ) -> Iterator[HostBatch]:
        """The batches of steps ``first_step, first_step + 1, ...`` (epoch after epoch, without
        end), ``batch_size`` slots each; the same for the same arguments.

        ``steps_per_epoch`` (at least ``ceil(num_rows / batch_size)``, the default): an epoch
        ends with batches of padding only (every slot masked) up to that many steps; several
        processes, each streaming its own part, use it to agree on the epoch's length."""

    @abc.abstractmethod
    def part(self, index: int, count: int) -> RowStream:
        """Part ``index`` of ``count`` disjoint parts that hold every row together (what
        process ``index`` of ``count`` reads); its ``HostBatch.row_ids`` still count in the
        whole data."""


def in_memory(data: SplitData | RowStream, method: str) -> SplitData:
    """``data``, when its rows are in memory; for a :class:`RowStream`, a :class:`DataError`
    saying that ``method`` (its name, for the message) needs them there."""
    if isinstance(data, RowStream):
        raise DataError(
            f"method {method!r} needs the data in memory, but {data.describe()} is streamed from "
            "disk; stream Parquet with method='svi' and batch_size=..., or read the data into "
            "memory (e.g. with pandas) first"
        )
    return data


@attrs.frozen(kw_only=True)
class FitProblem:
    """One fit, as a method sees it; the data are already checked.

    The model is called as ``model(**data.rows, **data.constants)``.

    Attributes:
        model: the NumPyro model function.
        data: the row arrays (leading dimension ``data.num_rows``) and the constants; or a
            :class:`RowStream` when the rows are read from disk in batches (only methods that
            train on minibatches can fit those).
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
    data: SplitData | RowStream
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
