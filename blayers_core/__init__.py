"""blayers_core: protocols, the plugin registry and the minibatch training runner.

Components are looked up by name through the plugin registry::

    from blayers_core import fit, layer, link

    adaptive, gaussian = layer("adaptive"), link("gaussian")

    def model(x, y=None):
        return gaussian(adaptive("mu", x), y)

    result = fit(model, x=x, y=y, batch_size=256, num_epochs=100)

blayers_core never imports a plugin; the first-party layers, links, losses, guides and optimizers
are found through the same entry-point group as third-party ones.
"""

from blayers_core.checkpoint import CheckpointError
from blayers_core.checks import check_data
from blayers_core.compilation_cache import enable_compilation_cache, enable_from_environment
from blayers_core.data import SplitData, split_rows_and_constants
from blayers_core.errors import (
    AmbiguousComponentError,
    ComponentNotFoundError,
    DataError,
    PluginError,
    PluginWarning,
    ResultFileError,
)
from blayers_core.fit import fit
from blayers_core.frames import DataEncoder, allow_population_codes, population_codes_allowed
from blayers_core.hookspecs import ENTRY_POINT_GROUP, hookimpl
from blayers_core.mcmc import SamplingWarning
from blayers_core.minibatch import BatchSchedule, multiply_scale, padded_rows
from blayers_core.persistence import load
from blayers_core.plots import plot_forest, plot_loss, plot_result
from blayers_core.prior import sample_prior
from blayers_core.protocols import (
    GuideFactory,
    Layer,
    Link,
    Loss,
    MinibatchLoss,
    OptimizerFactory,
)
from blayers_core.registry import (
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
from blayers_core.results import FitResult, Predictions
from blayers_core.runner import NonFiniteLossError, svi_run_batched
from blayers_core.shapes import align_to_target, layer_input

__version__ = "0.1.0"

enable_from_environment()

__all__ = [
    "ENTRY_POINT_GROUP",
    "AmbiguousComponentError",
    "BatchSchedule",
    "CheckpointError",
    "Component",
    "ComponentNotFoundError",
    "DataEncoder",
    "DataError",
    "FitResult",
    "GuideFactory",
    "Layer",
    "Link",
    "Loss",
    "MinibatchLoss",
    "NonFiniteLossError",
    "OptimizerFactory",
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
