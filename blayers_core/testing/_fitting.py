"""Tiny fits: a few rows, a few minibatch steps, a few posterior draws, then ``predict``.

They show that a component works inside :func:`blayers_core.fit` (the dry run, the compiled
training loop, the posterior draws) and :meth:`~blayers_core.FitResult.predict`, not that it
fits well.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from blayers_core.api.fit import fit
from blayers_core.api.result import FitResult
from blayers_core.contract._typing import ModelFn

#: Rows of the training data.
FIT_ROWS = 8
#: Rows of a minibatch (fewer than :data:`FIT_ROWS`, so the fit is minibatched).
BATCH_SIZE = 4
#: Optimisation steps.
FIT_STEPS = 4
#: Posterior draws kept on the result.
POSTERIOR_DRAWS = 8
#: Rows of the new data ``predict`` is called on.
PREDICT_ROWS = 5


def short_fit(model: ModelFn, data: Mapping[str, Any], **options: Any) -> FitResult:
    """``fit(model, **data)`` for :data:`FIT_STEPS` steps; every loss must be finite."""
    settings: dict[str, Any] = {
        "batch_size": BATCH_SIZE,
        "num_steps": FIT_STEPS,
        "chunk_size": FIT_STEPS,
        "num_samples": POSTERIOR_DRAWS,
        "progress_bar": False,
        "seed": 0,
    }
    settings.update(options)
    result = fit(model, **settings, **data)
    losses = np.asarray(result.losses)
    if losses.shape != (FIT_STEPS,) or not np.isfinite(losses).all():
        raise AssertionError(f"fit returned the losses {losses}, not {FIT_STEPS} finite values")
    return result


def require_finite_predictions(result: FitResult, data: Mapping[str, Any], rows: int) -> None:
    """``result.predict(**data)`` gives finite means and sds of shape ``(rows,)``."""
    predictions = result.predict(**data)
    for what in ("mean", "sd"):
        value = np.asarray(getattr(predictions, what))
        if value.shape != (rows,):
            raise AssertionError(
                f"predict on {rows} new rows gave a {what} of shape {value.shape}, not ({rows},)"
            )
        if not np.isfinite(value).all():
            raise AssertionError(f"predict gave non-finite {what}s: {value}")
