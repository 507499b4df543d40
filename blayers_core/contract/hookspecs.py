"""The plugin hooks: one per component kind, each handed a ``register`` callback.

A plugin is any module (or object) named by an entry point in the ``blayers.plugins`` group. It
declares the plugin API version it targets and implements some of these hooks with
:data:`hookimpl`::

    from blayers_core.plugin import hookimpl

    BLAYERS_PLUGIN_API = 1  # blayers_core.plugin.PLUGIN_API_VERSION

    @hookimpl
    def register_layers(register):
        register("my_layer", MyLayer, description="x @ beta with a Student-t prior")

``register(name, factory, *, description=None)`` records one component. ``factory(**config)``
builds it: a class (attrs classes validate their arguments there) or a function. The description
defaults to the first line of the factory's docstring.

The entry point's name is the plugin name, the prefix of its components' qualified names
(``my_plugin:my_layer``). It must be unique in an environment: if several distributions declare
it, none of them is loaded and its names raise
:class:`~blayers_core.contract.errors.PluginConflictError`; ``blayers`` is reserved for the
first-party plugin. A plugin that does not set ``BLAYERS_PLUGIN_API``, or sets another version than
:data:`~blayers_core.plugin.PLUGIN_API_VERSION`, is skipped with a warning naming both
versions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import pluggy

PROJECT_NAME = "blayers"
#: The entry-point group that first-party and third-party plugins alike are found through.
ENTRY_POINT_GROUP = "blayers.plugins"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class Register(Protocol):
    """The callback a hook receives: ``register(name, factory, *, description=None)``."""

    def __call__(
        self, name: str, factory: Callable[..., Any], *, description: str | None = None
    ) -> None: ...


@hookspec
def register_layers(register: Register) -> None:
    """Register layer factories: ``factory(**config)`` returns a :class:`~blayers_core.Layer`."""


@hookspec
def register_links(register: Register) -> None:
    """Register link factories: ``factory(**config)`` returns a :class:`~blayers_core.Link`."""


@hookspec
def register_losses(register: Register) -> None:
    """Register loss factories: ``factory(**config)`` returns a :class:`~blayers_core.Loss`."""


@hookspec
def register_guides(register: Register) -> None:
    """Register guide factories: ``factory(model, **config)`` returns a NumPyro guide."""


@hookspec
def register_optimizers(register: Register) -> None:
    """Register optimizer factories: ``factory(learning_rate, **config)`` returns optax."""


@hookspec
def register_methods(register: Register) -> None:
    """Register inference methods: ``factory(**config)`` returns a
    :class:`~blayers_core.contract.protocols.InferenceMethod` (``.run(problem)``)."""


#: Hook name for each component kind.
HOOK_FOR_KIND = {
    "layer": "register_layers",
    "link": "register_links",
    "loss": "register_losses",
    "guide": "register_guides",
    "optimizer": "register_optimizers",
    "method": "register_methods",
}
