"""blayers_core: protocols, the plugin registry and the minibatch training runner.

Components are looked up by name through the plugin registry::

    from blayers_core import fit, layer, link

    adaptive, gaussian = layer("adaptive"), link("gaussian")

    def model(x, y=None):
        return gaussian(adaptive("mu", x), y)

    result = fit(model, x=x, y=y, batch_size=256, num_epochs=100)

    result = fit(model, x=x, y=y, method=method("nuts", target_accept_prob=0.95))

blayers_core never imports a plugin; the first-party layers, links, losses, guides, optimizers and
inference methods are found through the same entry-point group as third-party ones.
"""

from blayers_core.api.fit import fit
from blayers_core.api.load import load
from blayers_core.api.result import FitResult, Predictions
from blayers_core.contract.checks import check_data
from blayers_core.contract.errors import (
    AmbiguousComponentError,
    ComponentNotFoundError,
    DataError,
    DuplicateLayerError,
    ModelMismatchError,
    PluginConflictError,
    PluginError,
    PluginWarning,
    ResultFileError,
)
from blayers_core.contract.hookspecs import ENTRY_POINT_GROUP, hookimpl
from blayers_core.contract.inference import FitProblem, InferenceOutcome, SplitData
from blayers_core.contract.methods import ConfiguredMethod, method
from blayers_core.contract.population import allow_population_codes, population_codes_allowed
from blayers_core.contract.protocols import (
    GuideFactory,
    InferenceMethod,
    Layer,
    Link,
    Loss,
    MinibatchLoss,
    OptimizerFactory,
)
from blayers_core.contract.registry import (
    Component,
    PluginFailure,
    Registry,
    components,
    get_registry,
    guide,
    layer,
    link,
    loss,
    optimizer,
    plugin_failures,
)
from blayers_core.contract.scaling import multiply_scale
from blayers_core.contract.shapes import align_to_target, layer_input
from blayers_core.contract.version import __version__
from blayers_core.engine.checkpoint import CheckpointError
from blayers_core.engine.compilation_cache import enable_compilation_cache, enable_from_environment
from blayers_core.engine.data import split_rows_and_constants
from blayers_core.engine.diagnose import NonFiniteDensityError
from blayers_core.engine.mcmc import SamplingWarning
from blayers_core.engine.minibatch import BatchSchedule, padded_rows
from blayers_core.engine.runner import NonFiniteLossError, svi_run_batched
from blayers_core.io.frames import DataEncoder
from blayers_core.io.plots import plot_forest, plot_loss, plot_result
from blayers_core.results.prior import sample_prior

enable_from_environment()

__all__ = [
    "ENTRY_POINT_GROUP",
    "AmbiguousComponentError",
    "BatchSchedule",
    "CheckpointError",
    "Component",
    "ComponentNotFoundError",
    "ConfiguredMethod",
    "DataEncoder",
    "DataError",
    "DuplicateLayerError",
    "FitProblem",
    "FitResult",
    "GuideFactory",
    "InferenceMethod",
    "InferenceOutcome",
    "Layer",
    "Link",
    "Loss",
    "MinibatchLoss",
    "ModelMismatchError",
    "NonFiniteDensityError",
    "NonFiniteLossError",
    "OptimizerFactory",
    "PluginConflictError",
    "PluginError",
    "PluginFailure",
    "PluginWarning",
    "Predictions",
    "Registry",
    "ResultFileError",
    "SamplingWarning",
    "SplitData",
    "align_to_target",
    "allow_population_codes",
    "check_data",
    "components",
    "__version__",
    "enable_compilation_cache",
    "fit",
    "get_registry",
    "guide",
    "hookimpl",
    "layer_input",
    "layer",
    "link",
    "load",
    "loss",
    "method",
    "multiply_scale",
    "plot_forest",
    "plot_loss",
    "plot_result",
    "optimizer",
    "padded_rows",
    "population_codes_allowed",
    "plugin_failures",
    "sample_prior",
    "split_rows_and_constants",
    "svi_run_batched",
]
