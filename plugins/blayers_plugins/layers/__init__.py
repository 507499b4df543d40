"""First-party layers."""

from blayers_plugins.layers import index, pairwise, shrinkage, smooth
from blayers_plugins.layers._base import BaseLayer
from blayers_plugins.layers.adaptive import AdaptiveLayer, FixedPriorLayer
from blayers_plugins.layers.interactions import FMLayer, LowRankInteractionLayer
from blayers_plugins.layers.pairwise import (
    BilinearLayer,
    FM3Layer,
    InteractionLayer,
    LowRankBilinearLayer,
)
from blayers_plugins.layers.shrinkage import HorseshoeInteractionLayer, HorseshoeLayer, MixtureLayer
from blayers_plugins.layers.smooth import HSGPLayer, PSplineLayer

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
    "AdaptiveLayer",
    "BaseLayer",
    "BilinearLayer",
    "FM3Layer",
    "FMLayer",
    "FixedPriorLayer",
    "HSGPLayer",
    "HorseshoeInteractionLayer",
    "HorseshoeLayer",
    "InteractionLayer",
    "LAYERS",
    "LowRankBilinearLayer",
    "LowRankInteractionLayer",
    "MixtureLayer",
    "PSplineLayer",
]
