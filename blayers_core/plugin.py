"""The plugin API: everything a plugin author imports, from one module.

A plugin is a module named by an entry point in the ``blayers.plugins`` group::

    from blayers_core.plugin import hookimpl

    BLAYERS_PLUGIN_API = 1  # the plugin API version this plugin targets

    @hookimpl
    def register_layers(register):
        register("student_t_prior", StudentTLayer)

A layer or a link subclasses :class:`BaseLayer` or :class:`BaseLink` and writes only its math;
the base's final ``__call__`` scopes its sites under the layer's (link's) name and checks inputs,
rows and output shapes. The validators check constructor arguments (attrs ``validator=``),
naming the argument; :func:`check_data` checks data values before anything is compiled.

An inference method (``register_methods``) is an object with ``run(problem) -> InferenceOutcome``;
it builds on the engine's runs: :func:`train_svi` (minibatch SVI), :func:`sample_with_kernel` (any
NumPyro MCMC kernel, compiled once, with Stan's warnings) and :func:`stein_variational` (SVGD).

Everything else in ``blayers_core`` may change between versions; this module is the contract.
"""

from __future__ import annotations

from blayers_core.contract.bases import BaseLayer, BaseLink
from blayers_core.contract.checks import check_data
from blayers_core.contract.errors import DataError, DuplicateLayerError, PluginError
from blayers_core.contract.hookspecs import ENTRY_POINT_GROUP, Register, hookimpl
from blayers_core.contract.inference import (
    FitProblem,
    HostBatch,
    InferenceOutcome,
    RowStream,
    SplitData,
)
from blayers_core.contract.population import (
    POPULATION_CODE,
    allow_population_codes,
    population_codes_allowed,
)
from blayers_core.contract.protocols import (
    GuideFactory,
    InferenceMethod,
    Layer,
    Link,
    Loss,
    MinibatchLoss,
    OptimizerFactory,
)
from blayers_core.contract.scaling import multiply_scale
from blayers_core.contract.shapes import align_to_target, layer_input
from blayers_core.contract.validators import (
    boolean,
    loc_scale_family,
    non_negative_int,
    plain_int,
    positive_int,
    positive_int_or_none,
    positive_number,
    positive_number_or_none,
    positive_prior,
    probability,
    real_prior,
    site_name,
    unit_interval_prior,
)
from blayers_core.contract.version import PLUGIN_API_VERSION
from blayers_core.engine.method_runs import sample_with_kernel, stein_variational
from blayers_core.engine.svi import SVISettings, train_svi

__all__ = [
    "ENTRY_POINT_GROUP",
    "PLUGIN_API_VERSION",
    "POPULATION_CODE",
    "BaseLayer",
    "BaseLink",
    "DataError",
    "DuplicateLayerError",
    "FitProblem",
    "GuideFactory",
    "HostBatch",
    "InferenceMethod",
    "InferenceOutcome",
    "Layer",
    "Link",
    "Loss",
    "MinibatchLoss",
    "OptimizerFactory",
    "PluginError",
    "Register",
    "RowStream",
    "SVISettings",
    "SplitData",
    "align_to_target",
    "allow_population_codes",
    "boolean",
    "check_data",
    "hookimpl",
    "layer_input",
    "loc_scale_family",
    "multiply_scale",
    "non_negative_int",
    "plain_int",
    "population_codes_allowed",
    "positive_int",
    "positive_number",
    "positive_int_or_none",
    "positive_number_or_none",
    "positive_prior",
    "probability",
    "real_prior",
    "sample_with_kernel",
    "site_name",
    "stein_variational",
    "train_svi",
    "unit_interval_prior",
]
