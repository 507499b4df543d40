"""``fit``: validate the options, encode and split the data, and run the chosen method's back end.

The options are checked first (:mod:`blayers_core.api.options`), before the data are read or
anything is traced; the method is a :class:`~blayers_core.api.backends.base.Backend` (VI or NUTS,
:mod:`blayers_core.api.backends`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from blayers_core.api.backends import backend_for, method_options
from blayers_core.api.options import FitOptions, NUTSOptions, VIOptions, defaults, passed
from blayers_core.api.result import FitResult
from blayers_core.contract._typing import GuideFn, ModelFn
from blayers_core.contract.errors import DataError
from blayers_core.contract.protocols import Loss
from blayers_core.engine.data import data_signature, split_rows_and_constants
from blayers_core.engine.runner import NonFiniteLossError
from blayers_core.io.frames import (
    DataEncoder,
    check_fit_data_not_empty,
    encode_fit_data,
    encode_series,
)

#: The defaults of the methods' options, as ``fit``'s signature shows them; ``fit`` tells them
#: from a value passed, so an option of the other method raises only when it is passed.
VI_DEFAULTS = defaults(VIOptions)
NUTS_DEFAULTS = defaults(NUTSOptions)


def fit(
    model: ModelFn,
    *,
    data: Mapping[str, Any] | Any | None = None,
    columns: Mapping[str, str | Sequence[str]] | DataEncoder | None = None,
    method: str = "vi",
    loss: str | Loss = VI_DEFAULTS.loss,
    guide: str | GuideFn = VI_DEFAULTS.guide,
    optimizer: Any = VI_DEFAULTS.optimizer,
    lr: Any = VI_DEFAULTS.lr,
    batch_size: int | None = VI_DEFAULTS.batch_size,
    num_steps: int | None = VI_DEFAULTS.num_steps,
    num_epochs: int | None = VI_DEFAULTS.num_epochs,
    num_samples: int = 1000,
    num_warmup: int = NUTS_DEFAULTS.num_warmup,
    num_chains: int = NUTS_DEFAULTS.num_chains,
    seed: int = 0,
    shuffle: bool = VI_DEFAULTS.shuffle,
    progress_bar: bool = True,
    chunk_size: int = VI_DEFAULTS.chunk_size,
    checkpoint_dir: str | os.PathLike[str] | None = VI_DEFAULTS.checkpoint_dir,
    checkpoint_every: int | None = VI_DEFAULTS.checkpoint_every,
    resume: bool = VI_DEFAULTS.resume,
    num_obs: int | None = None,
    **data_kwargs: Any,
) -> FitResult:
    """Fit ``model`` to data: stochastic variational inference (default) or NUTS.

    Every component can be given by its registered name or as an object::

        fit(model, x=x, y=y, loss="batched_elbo", guide="auto_normal", optimizer="adam",
            lr=0.01, batch_size=512, num_epochs=50)
        fit(model, x=x, y=y, method="nuts", num_warmup=500, num_samples=1000, num_chains=2)

    An option of the other method raises: ``fit(..., method="nuts", batch_size=64)`` is an error
    ("batch_size is an option of method='vi'; method='nuts' does not use it").

    Args:
        model: a NumPyro model called as ``model(**data)``.
        data: the data as a mapping (added to ``**data_kwargs``), or a pandas or polars
            DataFrame: model arguments named like a column get that column, numbers as
            ``float32``, categories as ``int32`` codes (see :mod:`blayers_core.io.frames`); the
            result keeps the encoder (``result.levels``, ``result.predict(data=new_df)``). An
            argument given as a categorical pandas or polars Series becomes codes the same way,
            its levels recorded under the argument's name.
        columns: with a DataFrame, ``{"x": ["age", "bmi"], "g": "group"}`` maps an argument to
            a list of columns (an ``(n, k)`` matrix) or one column (``(n,)``); or a
            :class:`~blayers_core.io.frames.DataEncoder` built beforehand with ``from_frame``.
        method: ``"vi"`` (minibatch SVI) or ``"nuts"`` (NUTS on the full data).
        loss: VI: a loss name (``"batched_elbo"``, ``"trace_elbo"``, ...) or a loss object.
        guide: VI: a guide name (``"auto_normal"``, ...) or a guide built on ``model``.
        optimizer: VI: an optimizer name (``"adam"``, ...) or an optax transformation.
        lr: VI: learning rate (a float or an optax schedule) for a named optimizer; default 0.01.
        batch_size: VI: rows per step; ``None`` uses every row at every step.
        num_steps: VI: optimisation steps; or give ``num_epochs``. Default: 2000 steps.
        num_epochs: VI: passes over the data.
        num_samples: posterior draws kept on the result (per chain for NUTS).
        num_warmup: NUTS: warm-up iterations per chain.
        num_chains: NUTS: chains.
        seed: seeds initialisation, the ELBO's draws, the batch order and the posterior draws.
        shuffle: VI: reshuffle minibatches every epoch.
        progress_bar: show a tqdm progress bar.
        chunk_size: VI: steps per compiled ``lax.scan`` chunk.
        checkpoint_dir: VI: write checkpoints there (atomically, the last three kept).
        checkpoint_every: VI: steps between checkpoints (rounded up to whole chunks); default: at
            the end and on Ctrl-C only.
        resume: VI: continue from the newest valid checkpoint in ``checkpoint_dir``, if there is
            one. The resumed run gives the same parameters, bit for bit on CPU, as an
            uninterrupted one.
        num_obs: rows in the data; default: the largest leading dimension of the array arguments.
            Arrays with that many rows are batched; every other value is a constant.
        **data_kwargs: the model's arguments.

    Raises:
        ValueError / TypeError: a bad option, or an option the method does not use, naming it,
            before the data are read.
        DataError: unusable data (no rows, non-numeric or non-finite rows, integers that do not
            fit the device's integer dtype, ...), before anything compiles.
        NonFiniteLossError: a loss or gradient turned non-finite; ``.result`` holds the fit at the
            last finite state, ``.step`` and ``.rows`` say where.
    """
    backend = backend_for(method)
    chosen = method_options(
        backend,
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
        method=chosen,
        seed=seed,
        num_samples=num_samples,
        progress_bar=progress_bar,
        num_obs=num_obs,
    )
    check_fit_data_not_empty(data, data_kwargs)
    encoded, encoder = encode_fit_data(model, data, columns, data_kwargs)
    arguments, series = encode_series(_merge_data(encoded, data_kwargs))
    if series:
        encoder = DataEncoder(series) if encoder is None else encoder.with_arguments(series)
    split = split_rows_and_constants(arguments, options.num_obs)
    signature = data_signature(split.rows)
    try:
        result = backend.run(model, split, options)
    except NonFiniteLossError as error:
        if error.result is not None:
            error.result = attrs.evolve(error.result, encoder=encoder, data_signature=signature)
        raise
    return attrs.evolve(result, encoder=encoder, data_signature=signature)


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
