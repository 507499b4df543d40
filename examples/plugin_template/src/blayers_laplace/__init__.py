"""blayers-laplace: a template blayers plugin (a Laplace-prior layer and a Laplace link).

Everything it needs from blayers comes from one module, :mod:`blayers_core.plugin`. After
``pip install``, the components are found by name::

    from blayers_core import layer, link

    coef = layer("laplace_prior", scale=0.5)  # or layer("laplace:laplace_prior", ...)
    lik = link("laplace")
"""

from __future__ import annotations

from blayers_core.plugin import Register, hookimpl
from blayers_laplace.layers import LaplacePriorLayer
from blayers_laplace.links import LaplaceLink

#: The plugin API version this plugin is written against (blayers_core.plugin.PLUGIN_API_VERSION).
#: blayers-core skips a plugin that targets another version, saying which.
BLAYERS_PLUGIN_API = 1


@hookimpl
def register_layers(register: Register) -> None:
    """The layers of this plugin; each description defaults to its docstring's first line."""
    register("laplace_prior", LaplacePriorLayer)


@hookimpl
def register_links(register: Register) -> None:
    """The links of this plugin."""
    register("laplace", LaplaceLink)


__all__ = ["LaplaceLink", "LaplacePriorLayer"]
