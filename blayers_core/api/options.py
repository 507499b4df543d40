"""The options of ``fit``, validated before anything is traced.

``fit``'s keyword arguments become frozen objects: :class:`FitOptions`, read by every method (the
seed, the draws kept, the progress bar, the number of rows), and the options of the chosen method,
:class:`VIOptions` or :class:`NUTSOptions`. Every field has a validator that raises a
``TypeError`` or ``ValueError`` naming the argument, so a bad value fails when ``fit`` is called,
not deep inside a JAX trace.

An option of one method passed to ``fit`` with the other raises (``fit(..., method="nuts",
batch_size=64)``: "batch_size is an option of method='vi'; method='nuts' does not use it").
``fit`` tells a passed option from one left out by its signature's defaults, which come from
:func:`defaults`: they show as the plain value (``help(fit)`` reads ``batch_size=None``) but are
:class:`Default` objects that no caller passes.
"""

from __future__ import annotations

import os
import types
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

import attrs
import numpy as np

from blayers_core.contract.registry import check_protocol
from blayers_core.engine.runner import DEFAULT_CHUNK_SIZE

T = TypeVar("T")
M = TypeVar("M")

#: Steps when neither ``num_steps`` nor ``num_epochs`` is given.
DEFAULT_NUM_STEPS = 2000
#: Learning rate of a named optimizer when ``lr`` is not given.
DEFAULT_LEARNING_RATE = 1e-2


# -------------------------------------------------------------------------- told-apart defaults
@attrs.frozen(repr=False)
class Default(Generic[T]):
    """A parameter default that ``fit`` tells apart from the same value passed; shows as it."""

    value: T

    def __repr__(self) -> str:
        return repr(self.value)


def defaults(options_type: type[Any]) -> Any:
    """The defaults of an options class as :class:`Default` objects, one attribute per option
    (``defaults(VIOptions).batch_size``): ``fit``'s signature takes its defaults from here."""
    return types.SimpleNamespace(
        **{field.name: Default(field.default) for field in attrs.fields(options_type)}
    )


def passed(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options that were passed, leaving out those left at their :func:`defaults`."""
    return {name: value for name, value in options.items() if not isinstance(value, Default)}


# ------------------------------------------------------------------------------ validators
def plain_int(value: Any) -> Any:
    """A NumPy integer as a Python int (so the option can be written to JSON); else unchanged."""
    return int(value) if isinstance(value, np.integer) else value


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def positive_int(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """An int of at least 1."""
    if not _is_int(value) or value < 1:
        raise ValueError(f"{attribute.name} must be a positive int, got {value!r}")


def non_negative_int(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """An int of at least 0."""
    if not _is_int(value) or value < 0:
        raise ValueError(f"{attribute.name} must be a non-negative int, got {value!r}")


def positive_int_or_none(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """``None`` or an int of at least 1."""
    if value is not None and (not _is_int(value) or value < 1):
        raise ValueError(f"{attribute.name} must be a positive int or None, got {value!r}")


def boolean(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """``True`` or ``False``."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{attribute.name} must be True or False, got {value!r}")


def an_int(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """Any int (a seed)."""
    if not _is_int(value):
        raise TypeError(f"{attribute.name} must be an int, got {value!r}")


def probability(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A number strictly between 0 and 1."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
        raise ValueError(f"{attribute.name} must be a probability in (0, 1), got {value!r}")
    if not 0 < value < 1:
        raise ValueError(f"{attribute.name} must be a probability in (0, 1), got {value!r}")


def _loss(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str):
        check_protocol("loss", value, origin=type(value).__name__)


def _guide(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) and not callable(value):
        raise TypeError(
            "guide must be a registered name such as 'auto_normal' or a NumPyro guide callable; "
            f"got {type(value).__name__}"
        )


def _optimizer(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, str):
        return
    if not (callable(getattr(value, "init", None)) and callable(getattr(value, "update", None))):
        raise TypeError(
            "optimizer must be a registered name such as 'adam', an optax GradientTransformation, "
            f"or a numpyro.optim optimizer; got {type(value).__name__}"
        )


def _learning_rate(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None or callable(value):
        return
    if isinstance(value, bool | str) or (
        isinstance(value, int | float | np.number) and not value > 0
    ):
        raise ValueError(
            f"lr must be a positive number or an optax schedule (a callable), got {value!r}"
        )


def _folder(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not isinstance(value, str | os.PathLike):
        raise TypeError(f"{attribute.name} must be a folder path or None, got {value!r}")


# ------------------------------------------------------------------------------ the options
def _int_field(default: int | None, validator: Any) -> Any:
    """An int option: a NumPy integer becomes a Python int, then ``validator`` checks it."""
    return attrs.field(default=default, converter=plain_int, validator=validator)


_optional_positive_int = attrs.validators.optional(positive_int)


@attrs.frozen(kw_only=True)
class FitOptions(Generic[M]):
    """All the options of one ``fit``: the chosen method's, and those every method reads.

    Attributes:
        method: the options of the chosen method (:class:`VIOptions`, :class:`NUTSOptions`).
        seed: seeds everything random in the fit.
        num_samples: posterior draws kept on the result (per chain for NUTS).
        progress_bar: show a progress bar.
        num_obs: rows in the data; default: the largest leading dimension of the arrays.
    """

    method: M
    seed: int = _int_field(0, an_int)
    num_samples: int = _int_field(1000, positive_int)
    progress_bar: bool = attrs.field(default=True, validator=boolean)
    num_obs: int | None = _int_field(None, positive_int_or_none)


@attrs.frozen(kw_only=True)
class VIOptions:
    """Stochastic variational inference: the loss, guide and optimizer, the minibatch loop and its
    checkpoints (see :func:`blayers_core.fit` for each)."""

    loss: Any = attrs.field(default="batched_elbo", validator=_loss)
    guide: Any = attrs.field(default="auto_diagonal_normal", validator=_guide)
    optimizer: Any = attrs.field(default="adam", validator=_optimizer)
    lr: Any = attrs.field(default=None, validator=_learning_rate)
    batch_size: int | None = _int_field(None, positive_int_or_none)
    num_steps: int | None = _int_field(None, _optional_positive_int)
    num_epochs: int | None = _int_field(None, _optional_positive_int)
    shuffle: bool = attrs.field(default=True, validator=boolean)
    chunk_size: int = _int_field(DEFAULT_CHUNK_SIZE, positive_int)
    checkpoint_dir: str | os.PathLike[str] | None = attrs.field(default=None, validator=_folder)
    checkpoint_every: int | None = _int_field(None, _optional_positive_int)
    resume: bool = attrs.field(default=False, validator=boolean)

    def __attrs_post_init__(self) -> None:
        if self.num_steps is not None and self.num_epochs is not None:
            raise ValueError(
                "give exactly one of num_steps= and num_epochs= "
                f"(got num_steps={self.num_steps!r}, num_epochs={self.num_epochs!r})"
            )
        if self.lr is not None and not isinstance(self.optimizer, str):
            raise ValueError(
                "lr= configures a named optimizer only; set the rate on the optimizer object "
                "instead"
            )
        if self.resume and self.checkpoint_dir is None:
            raise ValueError("resume=True needs checkpoint_dir= (where the checkpoints are)")
        if self.checkpoint_every is not None and self.checkpoint_dir is None:
            raise ValueError("checkpoint_every= needs checkpoint_dir= (where the checkpoints go)")

    @property
    def learning_rate(self) -> Any:
        """``lr``, or :data:`DEFAULT_LEARNING_RATE` when it was not given."""
        return DEFAULT_LEARNING_RATE if self.lr is None else self.lr

    def total_steps(self, steps_per_epoch: int) -> int:
        """Steps to run: ``num_steps``, ``num_epochs`` epochs, or :data:`DEFAULT_NUM_STEPS`."""
        if self.num_epochs is not None:
            return int(self.num_epochs) * steps_per_epoch
        return DEFAULT_NUM_STEPS if self.num_steps is None else int(self.num_steps)


@attrs.frozen(kw_only=True)
class NUTSOptions:
    """The No-U-Turn sampler on the full data.

    Attributes:
        num_warmup: warm-up iterations per chain.
        num_chains: chains (run in parallel when there are as many devices, else one by one).
        target_accept_prob: the step size adaptation's target acceptance probability.
    """

    num_warmup: int = _int_field(1000, non_negative_int)
    num_chains: int = _int_field(1, positive_int)
    target_accept_prob: float = attrs.field(default=0.8, validator=probability)
