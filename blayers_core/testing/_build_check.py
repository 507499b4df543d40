"""The first check of every kind: the factory builds the component from its configuration."""

from __future__ import annotations

from blayers_core.testing._candidate import Candidate
from blayers_core.testing._optimizer_checks import LEARNING_RATE
from blayers_core.testing._tiny import tiny_model


def check_component_builds(candidate: Candidate) -> None:
    """``factory(**config)`` (``factory(model, **config)`` for a guide, ``factory(learning_rate,
    **config)`` for an optimizer) returns without raising."""
    leading = {"guide": ("model",), "optimizer": ("learning_rate",)}.get(candidate.kind, ())
    args = {"guide": (tiny_model,), "optimizer": (LEARNING_RATE,)}.get(candidate.kind, ())
    try:
        candidate.build(*args)
    except Exception as exc:
        shown = ", ".join([*leading, *(f"{k}={v!r}" for k, v in candidate.config.items())])
        hint = (
            ""
            if candidate.config
            else " If it needs arguments, declare them on the factory as example_config = "
            "{...} (see blayers_core.testing), or pass them to the check."
        )
        raise AssertionError(f"factory({shown}) raised {type(exc).__name__}: {exc}.{hint}") from exc
