"""The interface every inference method of ``fit`` implements: :class:`Backend`.

``fit`` validates its options, encodes and splits the data, then hands the model, the split data
and one :class:`~blayers_core.api.options.FitOptions` to the back end of the chosen method, which
returns the :class:`~blayers_core.api.result.FitResult`. VI and NUTS are two such back ends,
siblings behind this one interface; a third method implements the same two attributes and one
method.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import attrs

from blayers_core.contract._typing import ModelFn
from blayers_core.engine.data import SplitData

if TYPE_CHECKING:
    from blayers_core.api.options import FitOptions
    from blayers_core.api.result import FitResult

M = TypeVar("M")


class Backend(Protocol[M]):
    """An inference method behind ``fit(..., method=name)``.

    Attributes:
        name: the ``method=`` that selects it (``"vi"``, ``"nuts"``).
        options_type: the frozen attrs class of its own options; ``fit`` builds it from the
            options passed to it (validating them) and refuses any option it lacks.
    """

    name: str
    options_type: type[M]

    def run(self, model: ModelFn, data: SplitData, options: FitOptions[M]) -> FitResult:
        """Fit ``model`` to ``data`` (row arrays and constants, already checked).

        ``options.method`` holds this method's options, the other fields those every method
        reads. Raises what the model raises on bad input, before any compiled step.
        """
        ...


def option_names(backend: Backend[Any]) -> tuple[str, ...]:
    """The options ``backend`` reads, as ``fit`` names them."""
    return tuple(field.name for field in attrs.fields(backend.options_type))  # type: ignore[misc]
