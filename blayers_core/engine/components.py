"""The loss, guide and optimizer of a VI fit: built from a registered name or taken as objects.

Each component is recorded on the result as it was given (:func:`component_record`) and
identified in the training-program cache by :func:`component_key`: a named component by its name
and configuration, an object by identity.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from blayers_core.contract._typing import GuideFn, ModelFn
from blayers_core.contract.protocols import Loss, MinibatchLoss
from blayers_core.contract.registry import get_registry


def resolve_loss(spec: str | Loss, *, num_rows: int, minibatched: bool) -> Loss:
    """A loss from a registered name or an object; minibatch losses learn ``num_obs`` here.

    Raises:
        ValueError: the loss was built for another number of rows, or it does not rescale
            minibatches and ``minibatched`` is true.
    """
    built = get_registry().build("loss", spec) if isinstance(spec, str) else spec
    if isinstance(built, MinibatchLoss):
        if built.num_obs is None:
            return built.with_num_obs(num_rows)
        if built.num_obs != num_rows:
            raise ValueError(
                f"the loss was built with num_obs={built.num_obs}, but the data have {num_rows} "
                "rows; build it without num_obs and fit fills it in"
            )
        return built
    if minibatched:
        raise ValueError(
            f"loss {spec!r} does not rescale minibatches: with batch_size < {num_rows} rows each "
            "step would fit the posterior of one batch. Use loss='batched_elbo', or "
            "batch_size=None for full-batch steps."
        )
    return built  # type: ignore[no-any-return]


def resolve_guide(spec: str | GuideFn, model: ModelFn) -> GuideFn:
    """A guide from a registered name (built on ``model``), or the guide object itself."""
    if isinstance(spec, str):
        return get_registry().build("guide", spec, model)  # type: ignore[no-any-return]
    return spec


def resolve_optimizer(spec: Any, learning_rate: Any) -> Any:
    """An optax transformation from a registered name, or the transformation itself."""
    if isinstance(spec, str):
        return get_registry().build("optimizer", spec, learning_rate)
    return spec


def component_key(kind: str, spec: Any, *extra: Any) -> Hashable:
    """What identifies a component for the program cache: its name and config, or the object."""
    if isinstance(spec, str):
        return (kind, spec, *extra)
    return (kind, "object", id(spec))


def component_record(spec: Any, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """How a component was given: its registered name and config, or the object's type."""
    if isinstance(spec, str):
        return {"name": spec, "config": dict(config or {})}
    kind = type(spec)
    return {"name": None, "type": f"{kind.__module__}.{kind.__qualname__}"}


def learning_rate_config(lr: Any) -> dict[str, Any]:
    """The learning rate as recorded with a named optimizer: a number, or a schedule's type."""
    if isinstance(lr, int | float) and not isinstance(lr, bool):
        return {"learning_rate": float(lr)}
    kind = type(lr)
    return {"learning_rate": None, "learning_rate_type": f"{kind.__module__}.{kind.__qualname__}"}


def learning_rate_key(lr: Any) -> Hashable:
    """The learning rate in a program-cache key: by value when hashable, else by identity."""
    try:
        hash(lr)
        return ("value", lr)
    except TypeError:
        return ("object", id(lr))
