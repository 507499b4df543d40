"""Population codes: the code ``-1`` read as "no level" by index layers, only when allowed.

``predict(..., unseen="population")`` gives a categorical level not seen in training the code
:data:`POPULATION_CODE` and runs the model inside :func:`allow_population_codes`. Index layers
(plugins) ask :func:`population_codes_allowed` whether ``-1`` means the population level (a zero
row of their parameter table) or is out of range. The state is a context variable, so threads
and async tasks each see their own.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

#: The code given to an unseen level under ``unseen="population"``.
POPULATION_CODE = -1

_population_codes: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "blayers_population_codes", default=False
)


@contextlib.contextmanager
def allow_population_codes() -> Iterator[None]:
    """Within this block, index layers read the code ``-1`` as the population level.

    The code ``-1`` then contributes nothing: a zero row of the layer's parameter table (random
    effects, embeddings, fixed effects, factorization-machine factors). ``predict(...,
    unseen="population")`` runs inside this block; outside it ``-1`` is out of range and raises.
    """
    token = _population_codes.set(True)
    try:
        yield
    finally:
        _population_codes.reset(token)


def population_codes_allowed() -> bool:
    """Whether the code ``-1`` currently means the population level (see above)."""
    return _population_codes.get()
