"""First-party links."""

from blayers_core.plugin import BaseLink
from blayers_plugins.links import families
from blayers_plugins.links.families import (
    BetaLink,
    CategoricalLink,
    ExponentialLink,
    GammaLink,
    LogitLink,
    LogNormalLink,
    NegativeBinomialLink,
    OrdinalLink,
    PoissonLink,
    StudentTLink,
    ZeroInflatedNegativeBinomialLink,
    ZeroInflatedPoissonLink,
)
from blayers_plugins.links.gaussian import GaussianLink, gaussian_link_exp

#: Registered name -> link class.
LINKS = {"gaussian": GaussianLink, **families.REGISTERED}

__all__ = [
    "LINKS",
    "BaseLink",
    "GaussianLink",
    "gaussian_link_exp",
    "BetaLink",
    "CategoricalLink",
    "ExponentialLink",
    "GammaLink",
    "LogitLink",
    "LogNormalLink",
    "NegativeBinomialLink",
    "OrdinalLink",
    "PoissonLink",
    "StudentTLink",
    "ZeroInflatedNegativeBinomialLink",
    "ZeroInflatedPoissonLink",
]
