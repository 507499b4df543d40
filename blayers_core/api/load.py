"""``load(path)``: a :class:`FitResult` back from the file ``FitResult.save`` wrote."""

from __future__ import annotations

import os

from blayers_core.api.result import FitResult
from blayers_core.contract._typing import ModelFn
from blayers_core.io.persistence import read_result


def load(path: str | os.PathLike[str], model: ModelFn | None = None) -> FitResult:
    """Read a result written by :meth:`FitResult.save`.

    Args:
        path: the file.
        model: the model function; default: imported by the ``module:qualname`` saved with it.

    The loaded result predicts exactly as the saved one did (same draws, same constants). It has
    no optimizer state or ``MCMC`` object, so training cannot be continued from it.

    Raises:
        ResultFileError: not a blayers result, corrupt, or of another format version.
        ComponentNotFoundError: the fit used a component by name that no installed plugin provides.
        ValueError / ImportError: the model cannot be found; pass ``model=``.
    """
    return FitResult(**read_result(path, model))
