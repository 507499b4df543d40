"""What the kit checks: a component's kind, its factory, the configuration it is built with."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import numpy as np

from blayers_core.contract._typing import COMPONENT_KINDS, ComponentKind
from blayers_core.contract.registry import Component

#: ``inputs(n, rng)``: a layer's positional inputs for ``n`` rows.
InputsFn = Callable[[int, np.random.Generator], tuple[Any, ...]]
#: ``target(n, rng)``: ``n`` observed values a link accepts.
TargetFn = Callable[[int, np.random.Generator], Any]


def unwrap(factory: Any) -> Any:
    """The function or class behind a ``functools.partial``."""
    while hasattr(factory, "func") and hasattr(factory, "keywords"):
        factory = factory.func
    return factory


def factory_name(factory: Any) -> str:
    """A readable name for a factory: its qualified name, or its type's for an instance."""
    target = unwrap(factory)
    if inspect.isclass(target) or inspect.isfunction(target) or inspect.ismethod(target):
        return str(target.__qualname__)
    return type(target).__qualname__


def example_config(factory: Any) -> dict[str, Any]:
    """The ``example_config`` a factory declares (a mapping of constructor arguments), or ``{}``."""
    declared = getattr(unwrap(factory), "example_config", None)
    if declared is None:
        return {}
    if not isinstance(declared, Mapping):
        raise TypeError(
            f"{factory_name(factory)}.example_config must be a mapping of constructor arguments, "
            f"got {declared!r}"
        )
    return dict(declared)


def _check_kind(kind: str) -> ComponentKind:
    if kind not in COMPONENT_KINDS:
        raise ValueError(f"kind must be one of {', '.join(COMPONENT_KINDS)}; got {kind!r}")
    return kind  # type: ignore[return-value]


@attrs.frozen(eq=False)
class Candidate:
    """One component to check: its kind, its factory and the configuration to build it with.

    Args:
        kind: ``"layer"``, ``"link"``, ``"loss"``, ``"guide"``, ``"optimizer"`` or ``"method"``.
        factory: what builds the component: ``factory(**config)`` for a layer, link or loss,
            ``factory(model, **config)`` for a guide, ``factory(learning_rate, **config)`` for an
            optimizer.
        config: the constructor arguments.
        label: the name shown in test ids and messages (default: the factory's name).
        origin: where the component comes from, shown in messages (e.g. ``plugin:name``).
        inputs: ``inputs(n, rng)``, a layer's inputs for ``n`` rows (default: what the layer
            declares; see :mod:`blayers_core.testing`).
        target: ``target(n, rng)``, ``n`` observed values a link accepts (default: the link's
            own draws).
    """

    kind: ComponentKind = attrs.field(converter=_check_kind)
    factory: Callable[..., Any]
    config: Mapping[str, Any] = attrs.field(factory=dict, converter=dict)
    label: str | None = None
    origin: str | None = None
    inputs: InputsFn | None = None
    target: TargetFn | None = None

    @classmethod
    def from_component(cls, component: Component) -> Candidate:
        """A registered component, built with the ``example_config`` its factory declares."""
        return cls(
            component.kind,
            component.factory,
            example_config(component.factory),
            label=component.name,
            origin=component.qualified_name,
        )

    @property
    def name(self) -> str:
        """The label, or the factory's name."""
        return self.label if self.label is not None else factory_name(self.factory)

    @property
    def id(self) -> str:
        """``kind:name``, the start of a test id (``layer:adaptive``)."""
        return f"{self.kind}:{self.name}"

    def describe(self) -> str:
        """``layer 'adaptive' (blayers:adaptive)``, as error messages name the component."""
        where = f" ({self.origin})" if self.origin and self.origin != self.name else ""
        return f"{self.kind} {self.name!r}{where}"

    def build(self, *args: Any) -> Any:
        """Call the factory: ``factory(*args, **config)``."""
        return self.factory(*args, **self.config)

    def with_config(self, **changes: Any) -> Candidate:
        """The same candidate with some constructor arguments changed."""
        return attrs.evolve(self, config={**self.config, **changes})

    def __repr__(self) -> str:
        return f"<{self.id}>"
