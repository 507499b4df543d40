"""First-party layers."""

from blayers_core.plugin import BaseLayer
from blayers_plugins.layers import index, pairwise, shrinkage, smooth
from blayers_plugins.layers.adaptive import AdaptiveLayer, FixedPriorLayer
from blayers_plugins.layers.index import (
    AR1Layer,
    EmbeddingLayer,
    FixedEffectsLayer,
    InterceptLayer,
    RandomEffectsLayer,
    RandomSlopesLayer,
    RandomWalkLayer,
)
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
    "AR1Layer",
    "AdaptiveLayer",
    "BaseLayer",
    "BilinearLayer",
    "EmbeddingLayer",
    "FM3Layer",
    "FMLayer",
    "FixedEffectsLayer",
    "FixedPriorLayer",
    "HSGPLayer",
    "HorseshoeInteractionLayer",
    "HorseshoeLayer",
    "InteractionLayer",
    "InterceptLayer",
    "LAYERS",
    "LowRankBilinearLayer",
    "LowRankInteractionLayer",
    "MixtureLayer",
    "PSplineLayer",
    "RandomEffectsLayer",
    "RandomSlopesLayer",
    "RandomWalkLayer",
]
