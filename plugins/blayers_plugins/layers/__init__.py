"""First-party layers."""

from blayers_plugins.layers import index, pairwise, shrinkage, smooth
from blayers_plugins.layers._base import BaseLayer
from blayers_plugins.layers.adaptive import AdaptiveLayer, FixedPriorLayer
from blayers_plugins.layers.interactions import FMLayer, LowRankInteractionLayer

#: Registered name -> layer class.
LAYERS = {
    "adaptive": AdaptiveLayer,
    "fixed_prior": FixedPriorLayer,
    "fm": FMLayer,
    "lowrank_interaction": LowRankInteractionLayer,
    **index.REGISTERED,
    **pairwise.REGISTERED,
    **shrinkage.REGISTERED,
    **smooth.REGISTERED,
}

__all__ = [
    "LAYERS",
    "AdaptiveLayer",
    "BaseLayer",
    "FMLayer",
    "FixedPriorLayer",
    "LowRankInteractionLayer",
]
