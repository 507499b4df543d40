"""Weighting a sample site's log density: what minibatch handlers and losses share.

A NumPyro effect handler that reweights observed rows (the runner's mask of padded rows, a
minibatch loss scaling a batch up to the full data) multiplies the site's ``scale`` by a factor,
exactly as ``numpyro.handlers.scale`` would, so that handlers compose by multiplication.

In a training step of ``fit`` an observed row's weight is the product of such factors: ``N / B``
from a subsampling plate or else from the minibatch loss (the loss leaves a site whose scale is
already set alone), then the padding handler's ``S B / N`` when ``B`` does not divide ``N``
(``S = ceil(N / B)`` steps per epoch). Every real row so weighs ``S`` per batch and
one epoch's mean loss is the full-data loss. NumPyro runs ``process_message`` from the innermost
handler out, so a handler that skips scaled sites must be inside those that scale
unconditionally: the loss wraps the model, and the padding handler wraps the call to the loss.
"""

from __future__ import annotations

from typing import Any


def multiply_scale(msg: Any, factor: Any) -> None:
    """Multiply a sample site's log-density scale by ``factor``, as ``numpyro.handlers.scale``.

    ``msg`` is the site's message in a handler's ``process_message``; its ``scale`` becomes
    ``factor * scale`` (``factor`` when unset), and so does ``plate_to_scale[None]``, which
    ``numpyro.handlers.scale`` updates too. ``factor`` is a scalar or broadcasts against the
    site's batch shape.
    """
    msg["scale"] = factor if msg.get("scale") is None else factor * msg["scale"]
    plate_to_scale = msg.setdefault("plate_to_scale", {})
    previous = plate_to_scale.get(None)
    plate_to_scale[None] = factor if previous is None else factor * previous
