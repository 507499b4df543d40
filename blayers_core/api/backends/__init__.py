"""The inference methods of ``fit``, each a :class:`~blayers_core.api.backends.base.Backend`.

* ``"vi"``: :class:`~blayers_core.api.backends.vi.VIBackend`, minibatch SVI;
* ``"nuts"``: :class:`~blayers_core.api.backends.nuts.NUTSBackend`, NUTS on the full data.

:func:`method_options` turns the method options passed to ``fit`` into the chosen back end's
options object, refusing an option that method does not use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from blayers_core.api.backends.base import Backend, option_names
from blayers_core.api.backends.nuts import NUTSBackend
from blayers_core.api.backends.vi import VIBackend

#: The back ends by ``method=`` name.
BACKENDS: dict[str, Backend[Any]] = {"vi": VIBackend(), "nuts": NUTSBackend()}


def backend_for(method: str) -> Backend[Any]:
    """The back end of ``method``.

    Raises:
        ValueError: no method has that name.
    """
    backend = BACKENDS.get(method) if isinstance(method, str) else None
    if backend is None:
        names = " or ".join(repr(name) for name in BACKENDS)
        raise ValueError(f"method must be {names}, got {method!r}")
    return backend


def method_options(backend: Backend[Any], passed: Mapping[str, Any]) -> Any:
    """``backend``'s options object built from the method options passed to ``fit``.

    Raises:
        ValueError: an option passed is one that ``backend`` does not read (naming it and the
            methods that do), or (from the options' validators) an option has a bad value.
        TypeError: an option has a value of the wrong kind.
    """
    unused = [name for name in passed if name not in option_names(backend)]
    if unused:
        raise ValueError("; ".join(_not_used(name, backend.name) for name in unused))
    return backend.options_type(**passed)


def _not_used(option: str, method: str) -> str:
    owners = [name for name, other in BACKENDS.items() if option in option_names(other)]
    of = " or ".join(f"method={name!r}" for name in owners) or "no method"
    return f"{option} is an option of {of}; method={method!r} does not use it"


__all__ = ["BACKENDS", "Backend", "backend_for", "method_options"]
