"""``fit``: resolve the inference method, encode and check the data, and run the method.

The method is a registered component (``method="nuts"``, or configured,
``method=blayers_core.method("nuts", target_accept_prob=0.95)``); its options are checked when it
is built, before the data are read. The data are encoded, split into row arrays and constants
(:mod:`blayers_core.engine.data`) and checked by running the model once over every row
(:func:`~blayers_core.engine.dry_run.dry_run`), for every method, first-party or not. The method's
:class:`~blayers_core.contract.inference.InferenceOutcome` becomes the
:class:`~blayers_core.api.result.FitResult`.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from blayers_core.api.options import METHOD_DEFAULT, FitOptions, passed
from blayers_core.api.result import FitResult
from blayers_core.contract._typing import GuideFn, ModelFn
from blayers_core.contract.errors import DataError
from blayers_core.contract.inference import FitProblem, InferenceOutcome, RowStream, SplitData
from blayers_core.contract.methods import DEFAULT_METHOD, ConfiguredMethod, method, option_names
from blayers_core.contract.protocols import InferenceMethod, Loss
from blayers_core.contract.registry import get_registry
from blayers_core.engine.data import (
    DataSignature,
    data_signature,
    leading_dimension,
    split_rows_and_constants,
)
from blayers_core.engine.devices import process_row_counts
from blayers_core.engine.dry_run import dry_run
from blayers_core.engine.runner import NonFiniteLossError
from blayers_core.engine.streamed import dry_run_rows
from blayers_core.io.frames import (
    DataEncoder,
    check_fit_data_not_empty,
    encode_fit_data,
    encode_series,
)
from blayers_core.io.parquet import is_parquet_source, open_parquet


def fit(
    model: ModelFn,
    *,
    data: Mapping[str, Any] | Any | None = None,
    columns: Mapping[str, str | Sequence[str]] | DataEncoder | None = None,
    method: str | InferenceMethod = DEFAULT_METHOD,
    loss: str | Loss = METHOD_DEFAULT,
    guide: str | GuideFn = METHOD_DEFAULT,
    optimizer: Any = METHOD_DEFAULT,
    lr: Any = METHOD_DEFAULT,
    batch_size: int | None = METHOD_DEFAULT,
    num_steps: int | None = METHOD_DEFAULT,
    num_epochs: int | None = METHOD_DEFAULT,
    num_samples: int | None = None,
    num_warmup: int = METHOD_DEFAULT,
    num_chains: int = METHOD_DEFAULT,
    seed: int = 0,
    shuffle: bool = METHOD_DEFAULT,
    progress_bar: bool = True,
    chunk_size: int = METHOD_DEFAULT,
    checkpoint_dir: str | os.PathLike[str] | None = METHOD_DEFAULT,
    checkpoint_every: int | None = METHOD_DEFAULT,
    resume: bool = METHOD_DEFAULT,
    num_obs: int | None = None,
    devices: str | int | Sequence[Any] | None = None,
    **data_kwargs: Any,
) -> FitResult:
    """Fit ``model`` to data with an inference method chosen by name (default: ``"svi"``).

    The first-party methods are ``"svi"`` (minibatch stochastic variational inference),
    ``"nuts"``, ``"hmc"`` and ``"svgd"``; a plugin can add more (``blayers plugins`` lists
    them). Every component can be given by its registered name or as an object::

        fit(model, x=x, y=y, loss="batched_elbo", guide="auto_normal", optimizer="adam",
            lr=0.01, batch_size=512, num_epochs=50)
        fit(model, x=x, y=y, method="nuts", num_warmup=500, num_samples=1000, num_chains=2)
        fit(model, x=x, y=y, method=blayers_core.method("nuts", target_accept_prob=0.95,
                                                         max_tree_depth=8, dense_mass=True))

    The method options below are shortcuts for the first-party methods' options; any option of
    any method can be given through :func:`blayers_core.method`. An option the chosen method does
    not take raises, naming it and the methods that take it ("method 'nuts' does not take
    batch_size=64; it is an option of method 'svi'").

    Args:
        model: a NumPyro model called as ``model(**data)``.
        data: the data as a mapping (added to ``**data_kwargs``), or a pandas or polars
            DataFrame: model arguments named like a column get that column, numbers as
            ``float32``, categories as ``int32`` codes (see :mod:`blayers_core.io.frames`); the
            result keeps the encoder (``result.levels``, ``result.predict(data=new_df)``). An
            argument given as a categorical pandas or polars Series becomes codes the same way,
            its levels recorded under the argument's name.
            Or Parquet data larger than memory: a ``.parquet`` file, a folder of them, or a
            ``pyarrow.dataset.Dataset``, streamed from disk a few row groups at a time with the
            same ``columns=`` (``method="svi"`` with a ``batch_size``; keyword arguments are
            then constants; see :mod:`blayers_core.io.parquet`); or such a stream opened
            beforehand with :func:`~blayers_core.io.parquet.open_parquet` (to choose its
            ``shuffle_rows``), or any :class:`~blayers_core.plugin.RowStream`.
        columns: with a DataFrame or Parquet data, ``{"x": ["age", "bmi"], "g": "group"}`` maps
            an argument to a list of columns (an ``(n, k)`` matrix) or one column (``(n,)``); or a
            :class:`~blayers_core.io.frames.DataEncoder` built beforehand with ``from_frame``.
        method: a registered method name, a method built by :func:`blayers_core.method`, or any
            object with ``run(problem)`` (:class:`~blayers_core.contract.protocols.InferenceMethod`).
        loss: svi: a loss name (``"batched_elbo"``, ``"trace_elbo"``, ...) or a loss object.
        guide: svi: a guide name (``"auto_normal"``, ...) or a guide built on ``model``.
        optimizer: svi, svgd: an optimizer name (``"adam"``, ...) or an optax transformation.
        lr: svi, svgd: learning rate (a float or an optax schedule) of a named optimizer.
        batch_size: svi: rows per step; ``None`` uses every row at every step.
        num_steps: svi, svgd: optimisation steps; svi also takes ``num_epochs``.
        num_epochs: svi: passes over the data.
        num_samples: posterior draws kept on the result (per chain for MCMC); default 1000.
            SVGD's draws are its particles (``num_particles``).
        num_warmup: nuts, hmc: warm-up iterations per chain.
        num_chains: nuts, hmc: chains.
        seed: seeds initialisation, the method's randomness and the posterior draws.
        shuffle: svi: reshuffle minibatches every epoch.
        progress_bar: show a tqdm progress bar.
        chunk_size: svi: steps per compiled ``lax.scan`` chunk.
        checkpoint_dir: svi: write checkpoints there (atomically, the last three kept).
        checkpoint_every: svi: steps between checkpoints (rounded up to whole chunks).
        resume: svi: continue from the newest valid checkpoint in ``checkpoint_dir``, if there
            is one; bit for bit on CPU the same parameters as an uninterrupted run.
        num_obs: rows in the data; default: the largest leading dimension of the array arguments.
            Arrays with that many rows are batched; every other value is a constant.
        devices: split the work across several local devices: ``"all"``, the first ``n``
            (an int), or a sequence of ``jax.Device``. svi: each device holds an equal share of
            the rows and computes its share of every batch (``batch_size`` divisible by the
            number of devices); nuts, hmc: the chains are split across them (``num_chains``
            divisible by it); svgd raises. ``None`` (the default): one device, as always. In
            several processes (:mod:`blayers_core.distributed`), every device of every
            process, each process giving its own rows; ``devices=`` must be left unset.
        **data_kwargs: the model's arguments.

    Raises:
        ValueError / TypeError: a bad option, or an option the method does not take, naming it,
            before the data are read; a keyword that is not an argument of ``model``.
        ComponentNotFoundError: no installed plugin registers the method (or component) named.
        DataError: unusable data (no rows, non-numeric or non-finite rows, integers that do not
            fit the device's integer dtype, ...), before anything compiles.
        NonFiniteLossError: a loss or gradient turned non-finite; ``.result`` holds the fit at the
            last finite state, ``.step`` and ``.rows`` say where.
    """
    chosen = resolve_method(
        method,
        passed(
            {
                "loss": loss,
                "guide": guide,
                "optimizer": optimizer,
                "lr": lr,
                "batch_size": batch_size,
                "num_steps": num_steps,
                "num_epochs": num_epochs,
                "shuffle": shuffle,
                "chunk_size": chunk_size,
                "checkpoint_dir": checkpoint_dir,
                "checkpoint_every": checkpoint_every,
                "resume": resume,
                "num_warmup": num_warmup,
                "num_chains": num_chains,
            }
        ),
    )
    options = FitOptions(
        seed=seed,
        num_samples=num_samples,
        progress_bar=progress_bar,
        num_obs=num_obs,
        devices=devices,
    )
    check_model_arguments(model, data_kwargs, preferred=getattr(chosen, "name", None))
    if is_parquet_source(data) or isinstance(data, RowStream):  # rows read from disk in batches
        streamed, stream_encoder, signature = _stream_problem(
            model, data, columns, data_kwargs, chosen, options
        )
        num_rows = streamed.data.num_rows
        return _run(chosen, _Wrap(streamed, chosen, stream_encoder, signature, num_rows))
    check_fit_data_not_empty(data, data_kwargs)
    encoded, encoder = encode_fit_data(model, data, columns, data_kwargs)
    arguments, series = encode_series(_merge_data(encoded, data_kwargs))
    if series:
        encoder = DataEncoder(series) if encoder is None else encoder.with_arguments(series)
    split = split_rows_and_constants(arguments, options.num_obs)
    problem = _problem(model, split, options)
    # several processes: each gave its share; the result counts every process's rows
    num_rows = sum(process_row_counts(split.num_rows))
    return _run(chosen, _Wrap(problem, chosen, encoder, data_signature(split.rows), num_rows))


def _run(chosen: ConfiguredMethod | InferenceMethod, as_result: _Wrap) -> FitResult:
    """Run the method on the problem and wrap its outcome (or a fault's) as the result."""
    try:
        outcome = chosen.run(as_result.problem)
    except NonFiniteLossError as error:
        if isinstance(error.result, InferenceOutcome):
            error.result = as_result(error.result)
        raise
    return as_result(outcome)


#: Methods that need every row in memory, and so cannot fit a stream.
IN_MEMORY_METHODS = ("nuts", "hmc", "svgd")


def _stream_problem(
    model: ModelFn,
    data: Any,
    columns: Mapping[str, str | Sequence[str]] | DataEncoder | None,
    keywords: Mapping[str, Any],
    chosen: ConfiguredMethod | InferenceMethod,
    options: FitOptions,
) -> tuple[FitProblem, DataEncoder | None, DataSignature]:
    """The fit of rows streamed from Parquet (``data=`` a path or a pyarrow Dataset, or a
    :class:`~blayers_core.contract.inference.RowStream` opened beforehand), after the dry run on
    its first rows; the keywords are constants.

    Raises:
        DataError: a method that needs the rows in memory, a keyword with one value per row, or
            unreadable columns (:func:`~blayers_core.io.parquet.open_parquet`).
        ValueError: no ``batch_size``, or ``num_obs=``.
    """
    name = getattr(chosen, "name", None)
    if name in IN_MEMORY_METHODS:
        raise DataError(
            f"method {name!r} needs the data in memory; stream Parquet with method='svi' and "
            "batch_size=..., or read it with pandas (pd.read_parquet) and pass the DataFrame"
        )
    config = getattr(chosen, "config", {})
    if name == DEFAULT_METHOD and config.get("batch_size") is None:
        raise ValueError(
            "batch_size= is needed to stream Parquet data: the rows are read from disk in "
            "batches of that many rows; pass e.g. batch_size=1024"
        )
    if options.num_obs is not None:
        raise ValueError(
            f"num_obs={options.num_obs} does not apply to Parquet data: its rows are counted "
            "from the files' metadata, and keyword arguments are constants; leave num_obs= out"
        )
    if isinstance(data, RowStream):  # opened beforehand, e.g. open_parquet(..., shuffle_rows=)
        if columns is not None or keywords:
            raise DataError(
                "data= is a stream opened beforehand: give its columns and constants when "
                "opening it (open_parquet(path, model=..., columns=..., constants=...)), not to "
                "fit"
            )
        stream = data
    else:
        stream = open_parquet(data, model=model, columns=columns, constants=keywords)
    for key, value in keywords.items():
        if leading_dimension(value) == stream.num_rows and stream.num_rows > 1:
            raise DataError(
                f"argument {key!r} has one value per row ({stream.num_rows}), but with Parquet "
                "data= the rows come from the files: add it as a column (and to columns=), or "
                "pass a constant"
            )
    batch_size = config.get("batch_size") or stream.num_rows
    first = stream.first_rows(dry_run_rows(batch_size))
    # The dry run checks the first rows; the others are checked for missing and non-finite
    # values as they are read.
    problem = _problem(model, stream, options, checked=(first, stream.constants))
    return problem, getattr(stream, "encoder", None), data_signature(first)


def resolve_method(
    spec: str | InferenceMethod, options: Mapping[str, Any]
) -> ConfiguredMethod | InferenceMethod:
    """The method ``fit`` runs: ``spec`` built by name, or configured further with ``options``.

    Raises:
        ValueError: an option the method does not take, or options given with a method object
            that was not built by :func:`blayers_core.method`.
        TypeError: ``spec`` is neither a name nor a method.
    """
    if isinstance(spec, str):
        return method(spec, **options)
    if isinstance(spec, ConfiguredMethod):
        return spec.with_options(options) if options else spec
    if isinstance(spec, InferenceMethod):
        if options:
            raise ValueError(
                f"{', '.join(options)} cannot be given to fit with a method object "
                f"({type(spec).__name__}); set them on the method itself"
            )
        return spec
    raise TypeError(
        "method must be a registered name such as 'svi' or 'nuts', blayers_core.method(name, "
        f"**options), or an object with run(problem); got {spec!r}"
    )


def check_model_arguments(
    model: ModelFn, keywords: Mapping[str, Any], *, preferred: str | None = None
) -> None:
    """Raise when a keyword given to ``fit`` is not an argument of ``model``, before the data
    are read; a method option passed as data is named as such (the methods that take it,
    ``preferred``, the chosen one, first).

    A model that takes ``**kwargs`` (or whose signature cannot be read) accepts anything.
    """
    try:
        parameters = inspect.signature(model).parameters.values()
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return
    accepted = {p.name for p in parameters if p.kind is not inspect.Parameter.VAR_POSITIONAL}
    unknown = [name for name in keywords if name not in accepted]
    if not unknown:
        return
    name = unknown[0]
    owners = sorted(
        (
            c.name
            for c in get_registry().components("method")
            if name in (option_names(c.factory) or ())
        ),
        key=lambda owner: owner != preferred,
    )
    if owners:
        raise ValueError(
            f"{name}={keywords[name]!r} is not an argument of the model; it is an option of "
            f"{' and '.join(f'method {o!r}' for o in owners)}: pass it on the method, "
            f"fit(..., method=blayers_core.method({owners[0]!r}, {name}={keywords[name]!r}))"
        )
    raise DataError(
        f"{name}= is not an argument of the model {getattr(model, '__name__', model)!r} "
        f"(its arguments: {', '.join(sorted(accepted)) or 'none'}); remove it or add it to the "
        "model's signature"
    )


def _problem(
    model: ModelFn,
    data: SplitData | RowStream,
    options: FitOptions,
    *,
    checked: tuple[Mapping[str, Any], Mapping[str, Any]] | None = None,
) -> FitProblem:
    """The fit as a method sees it, after the dry run checked the rows (bad input raises):
    every row in memory, or the ``(rows, constants)`` of ``checked`` (a stream's first rows)."""
    if checked is None:
        assert isinstance(data, SplitData)
        checked = (data.rows, data.constants)
    rows, constants = checked
    checked_run = dry_run(model, rows, constants, seed=options.seed)
    return FitProblem(
        model=model,
        data=data,
        seed=options.seed,
        num_samples=options.num_samples,
        progress_bar=options.progress_bar,
        observed_sites=checked_run.observed_sites,
        deterministic_sites=checked_run.deterministic_sites,
        devices=options.devices,
    )


@attrs.frozen
class _Wrap:
    """Turns a method's outcome into the :class:`FitResult` of this fit."""

    problem: FitProblem
    method: ConfiguredMethod | InferenceMethod
    encoder: DataEncoder | None
    signature: DataSignature
    num_rows: int  # of every process (several processes: each gave its share)

    def __call__(self, outcome: InferenceOutcome) -> FitResult:
        name, record = _method_record(self.method)
        return FitResult(
            model=self.problem.model,
            guide=outcome.guide,
            params=outcome.params,
            losses=outcome.losses,
            posterior_samples=outcome.posterior_samples,
            observed_sites=self.problem.observed_sites,
            constants=self.problem.data.constants,
            num_rows=self.num_rows,
            state=outcome.state,
            steps_done=outcome.steps_done,
            interrupted=outcome.interrupted,
            method=name,
            num_chains=outcome.num_chains,
            markov_chains=outcome.markov_chains,
            components={"method": record, **outcome.components},
            extra=outcome.extra,
            encoder=self.encoder,
            data_signature=self.signature,
        )


def _method_record(chosen: ConfiguredMethod | InferenceMethod) -> tuple[str, dict[str, Any]]:
    """The method's name on the result, and its record: name and options (an option that is
    not a plain value is recorded by its type)."""
    if not isinstance(chosen, ConfiguredMethod):
        kind = type(chosen)
        return kind.__name__, {"name": None, "type": f"{kind.__module__}.{kind.__qualname__}"}
    config = {key: _plain(value) for key, value in chosen.config.items()}
    return chosen.name, {"name": chosen.name, "config": config}


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    kind = type(value)
    return {"type": f"{kind.__module__}.{kind.__qualname__}"}


def _merge_data(data: Mapping[str, Any] | None, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``data=`` and the keyword data in one mapping; an argument given in both raises."""
    merged = dict(data or {})
    clash = sorted(set(merged) & set(kwargs))
    if clash:
        raise DataError(
            f"arguments {clash} are given both in data= and as keywords; give each once"
        )
    merged.update(kwargs)
    return merged
