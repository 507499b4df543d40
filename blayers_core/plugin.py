"""The plugin API: everything a plugin author imports, from one module.

A plugin is a module named by an entry point in the ``blayers.plugins`` group::

    from blayers_core.plugin import hookimpl

    BLAYERS_PLUGIN_API = 1  # the plugin API version this plugin targets

    @hookimpl
    def register_layers(register):
        register("student_t_prior", StudentTLayer)

Everything else in ``blayers_core`` may change between versions; this module is the contract.
"""

from __future__ import annotations

from blayers_core.contract.checks import check_data
from blayers_core.contract.errors import DataError, PluginError
from blayers_core.contract.hookspecs import ENTRY_POINT_GROUP, Register, hookimpl
from blayers_core.contract.population import (
    POPULATION_CODE,
    allow_population_codes,
    population_codes_allowed,
)
from blayers_core.contract.protocols import (
    GuideFactory,
    Layer,
    Link,
    Loss,
    MinibatchLoss,
    OptimizerFactory,
)
from blayers_core.contract.shapes import align_to_target, layer_input
from blayers_core.contract.version import PLUGIN_API_VERSION

__all__ = [
    "ENTRY_POINT_GROUP",
    "PLUGIN_API_VERSION",
    "POPULATION_CODE",
    "DataError",
    "GuideFactory",
    "Layer",
    "Link",
    "Loss",
    "MinibatchLoss",
    "OptimizerFactory",
    "PluginError",
    "Register",
    "align_to_target",
    "allow_population_codes",
    "check_data",
    "hookimpl",
    "layer_input",
    "population_codes_allowed",
]
