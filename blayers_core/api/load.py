"""``load(path)``: a :class:`FitResult` back from the file ``FitResult.save`` wrote."""

from __future__ import annotations

import os

from blayers_core.api.result import FitResult
from blayers_core.contract._typing import ModelFn
from blayers_core.io.persistence import read_result


def load(
    path: str | os.PathLike[str],
    model: ModelFn | None = None,
    *,
    allow_missing_sites: bool = False,
) -> FitResult:
    """Read a result written by :meth:`FitResult.save`.

    Args:
        path: the file.
        model: the model function; default: imported by the ``module:qualname`` saved with it.
        allow_missing_sites: let the model have latent sites the file has no draws of; its
            predictions then draw those sites from the prior (with a warning). By default such a
            model is refused.

    The model is checked against the file: it is traced abstractly (nothing computed) on the
    recorded layout of the training rows, and its latent sites must be those the file holds
    draws of, with the same shapes. A file that does not record them (written by an older
    version, or from a result not made by ``fit``) is read with a warning that the model cannot
    be checked.

    The loaded result predicts exactly as the saved one did (same draws, same constants). It has
    no optimizer state or ``MCMC`` object, so training cannot be continued from it.

    Raises:
        ResultFileError: not a blayers result, corrupt, or of another format version.
        ComponentNotFoundError: the fit used a component by name that no installed plugin provides.
        ModelMismatchError: the model's latent sites differ from the file's (a site missing on
            either side, another shape, or the model does not run on the recorded data layout);
            the message names the first difference.
        ValueError / ImportError: the model cannot be found; pass ``model=``.
    """
    return FitResult(**read_result(path, model, allow_missing_sites=allow_missing_sites))
