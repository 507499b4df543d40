"""The options of ``fit`` that every method reads, validated before anything is traced.

The method's own options (``batch_size``, ``num_warmup``, ...) are checked by the method when it
is built (:func:`blayers_core.method`); :class:`FitOptions` holds the rest: the seed, the draws
kept, the progress bar, the number of rows and the devices. Every field has a validator that raises a
``TypeError`` or ``ValueError`` naming the argument.

``fit``'s method options default to :data:`METHOD_DEFAULT`, which no caller passes, so ``fit``
hands a method only the options that were given (:func:`passed`), and the method's own defaults
apply to the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs

from blayers_core.contract.validators import (
    boolean,
    plain_int,
    positive_int_or_none,
)
from blayers_core.engine.devices import resolve_devices


class _MethodDefault:
    """The default of a method option in ``fit``'s signature: the chosen method's own."""

    def __repr__(self) -> str:
        return "<method's default>"


#: What ``fit``'s method options default to; shows as ``<method's default>`` in ``help(fit)``.
METHOD_DEFAULT: Final[Any] = _MethodDefault()


def passed(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options that were passed, leaving out those left at :data:`METHOD_DEFAULT`."""
    return {name: value for name, value in options.items() if value is not METHOD_DEFAULT}


def _seed(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{attribute.name} must be an int, got {value!r}")


@attrs.frozen(kw_only=True)
class FitOptions:
    """The options of ``fit`` that every method reads.

    Attributes:
        seed: seeds everything random in the fit.
        num_samples: posterior draws kept on the result (per chain for MCMC); ``None``: the
            method's default.
        progress_bar: show a progress bar.
        num_obs: rows in the data; default: the largest leading dimension of the arrays.
        devices: the local devices to split the work across, resolved from ``"all"``, a
            positive int ``n`` (the first ``n``, at most ``jax.local_device_count()``) or a
            non-empty sequence of distinct ``jax.Device``; ``None``: the default device.
    """

    seed: int = attrs.field(default=0, converter=plain_int, validator=_seed)
    num_samples: int | None = attrs.field(
        default=None, converter=plain_int, validator=positive_int_or_none
    )
    progress_bar: bool = attrs.field(default=True, validator=boolean)
    num_obs: int | None = attrs.field(
        default=None, converter=plain_int, validator=positive_int_or_none
    )
    devices: tuple[Any, ...] | None = attrs.field(default=None, converter=resolve_devices)
