"""blayers' first-party plugin: the built-in layers, links, losses, guides, optimizers and
inference methods.

It is registered through the ``blayers.plugins`` entry point exactly as a third-party plugin is;
blayers_core never imports it. The classes are importable for class-based use::

    from blayers_plugins import AdaptiveLayer, FMLayer, GaussianLink, gaussian_link_exp
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from blayers_core.plugin import Register, hookimpl
from blayers_plugins.guides import GUIDES
from blayers_plugins.layers import *  # noqa: F403 - every first-party layer class
from blayers_plugins.layers import (
    LAYERS,
    AdaptiveLayer,
    FixedPriorLayer,
    FMLayer,
    LowRankInteractionLayer,
)
from blayers_plugins.links import *  # noqa: F403 - every first-party link class
from blayers_plugins.links import LINKS, GaussianLink, gaussian_link_exp
from blayers_plugins.losses import LOSSES, Batched_Trace_ELBO
from blayers_plugins.methods import HMC, METHODS, NUTS, SVGD, SVI
from blayers_plugins.optimizers import OPTIMIZERS
from blayers_plugins.reparam import autoreparam, autoreshape

#: The plugin API version (blayers_core.plugin.PLUGIN_API_VERSION) this plugin targets.
BLAYERS_PLUGIN_API = 1


def _register_all(
    register: Register, table: Mapping[str, Callable[..., Any] | tuple[Callable[..., Any], str]]
) -> None:
    for name, entry in table.items():
        factory, description = entry if isinstance(entry, tuple) else (entry, None)
        register(name, factory, description=description)


@hookimpl
def register_layers(register: Register) -> None:
    _register_all(register, LAYERS)


@hookimpl
def register_links(register: Register) -> None:
    _register_all(register, LINKS)


@hookimpl
def register_losses(register: Register) -> None:
    _register_all(register, LOSSES)


@hookimpl
def register_guides(register: Register) -> None:
    _register_all(register, GUIDES)


@hookimpl
def register_optimizers(register: Register) -> None:
    _register_all(register, OPTIMIZERS)


@hookimpl
def register_methods(register: Register) -> None:
    _register_all(register, METHODS)


__all__ = [
    "autoreparam",
    "autoreshape",
    "AdaptiveLayer",
    "Batched_Trace_ELBO",
    "FMLayer",
    "HMC",
    "NUTS",
    "SVGD",
    "SVI",
    "FixedPriorLayer",
    "GaussianLink",
    "LowRankInteractionLayer",
    "gaussian_link_exp",
]
