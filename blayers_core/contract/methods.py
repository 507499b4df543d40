"""Inference methods by name: ``method("nuts", target_accept_prob=0.95)``.

``fit(model, method="nuts")`` and ``fit(model, method=method("nuts", dense_mass=True))`` both
look the method up in the registry (the ``method`` component kind) and build it with its options.
A method's options are its factory's keyword parameters; an option it does not take raises a
``ValueError`` naming the option, the options the method has, and the methods that take it,
before the data are read.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from blayers_core.contract.inference import FitProblem, InferenceOutcome
from blayers_core.contract.protocols import InferenceMethod
from blayers_core.contract.registry import Component, get_registry

#: The method ``fit`` runs when none is named.
DEFAULT_METHOD = "svi"
#: Older names of methods, still accepted.
METHOD_ALIASES = {"vi": "svi"}


@attrs.frozen
class ConfiguredMethod:
    """A registered method and the options it was built with; an
    :class:`~blayers_core.contract.protocols.InferenceMethod` itself.

    Attributes:
        name: the registered name (``"nuts"``; ``"plugin:name"`` for a third-party method).
        config: the options given, ``{"target_accept_prob": 0.95}``.
        method: the built method.
    """

    name: str
    config: Mapping[str, Any] = attrs.field(converter=dict)
    method: InferenceMethod = attrs.field(repr=False, eq=False)

    def run(self, problem: FitProblem) -> InferenceOutcome:
        """Run the built method."""
        return self.method.run(problem)

    def with_options(self, options: Mapping[str, Any]) -> ConfiguredMethod:
        """The same method with ``options`` added to its own.

        Raises:
            ValueError: an option is given both here and in ``config`` with another value, or
                the method does not take it.
        """
        clash = sorted(k for k in options if k in self.config and options[k] != self.config[k])
        if clash:
            raise ValueError(
                f"{', '.join(clash)} given both to fit and in method({self.name!r}, ...) with "
                "different values; give each option once"
            )
        return method(self.name, **{**self.config, **options})


def option_names(factory: Callable[..., Any]) -> tuple[str, ...] | None:
    """The keyword options ``factory`` takes, or ``None`` when it takes any (``**config``)."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return tuple(p.name for p in parameters if p.kind in keyword)


def method(name: str, /, **config: Any) -> ConfiguredMethod:
    """The inference method registered as ``name``, built with ``config``.

    >>> fit(model, method=method("nuts", target_accept_prob=0.95, max_tree_depth=8), x=x, y=y)
    ... # doctest: +SKIP

    Raises:
        ComponentNotFoundError: no installed plugin registers a method called ``name``.
        ValueError: an option the method does not take (naming the methods that take it), or a
            bad value (the method's own validators).
    """
    name = METHOD_ALIASES.get(name, name) if isinstance(name, str) else name
    component = get_registry().get("method", name)
    _check_options(component, config)
    built = get_registry().build("method", name, **config)
    return ConfiguredMethod(name=name, config=config, method=built)


def _check_options(component: Component, config: Mapping[str, Any]) -> None:
    accepted = option_names(component.factory)
    if accepted is None:
        return
    unknown = [option for option in config if option not in accepted]
    if not unknown:
        return
    problems = []
    for option in unknown:
        owners = [
            other.name
            for other in get_registry().components("method")
            if other.name != component.name and option in (option_names(other.factory) or ())
        ]
        where = (
            f"; it is an option of {' and '.join(f'method {o!r}' for o in owners)}"
            if owners
            else ""
        )
        problems.append(
            f"method {component.name!r} does not take {option}={config[option]!r}{where}"
        )
    raise ValueError(
        "; ".join(problems)
        + f". The options of {component.name!r} are: "
        + (", ".join(accepted) or "none")
    )
