"""First-party links beyond the Gaussian, collected for the registry.

The classes live by kind of target: :mod:`~blayers_plugins.links.continuous` (log-normal,
Student-t, gamma, exponential, beta), :mod:`~blayers_plugins.links.counts` (Poisson, negative
binomial, zero-inflated Poisson and negative binomial) and :mod:`~blayers_plugins.links.discrete`
(logit, categorical, ordinal).
"""

from __future__ import annotations

from typing import Any

from blayers_plugins.links.continuous import (
    BetaLink,
    ExponentialLink,
    GammaLink,
    LogNormalLink,
    StudentTLink,
)
from blayers_plugins.links.counts import (
    NegativeBinomialLink,
    PoissonLink,
    ZeroInflatedNegativeBinomialLink,
    ZeroInflatedPoissonLink,
)
from blayers_plugins.links.discrete import CategoricalLink, LogitLink, OrdinalLink

#: Registered name -> link class, merged into `blayers_plugins.links.LINKS`.
REGISTERED: dict[str, Any] = {
    "lognormal": LogNormalLink,
    "student_t": StudentTLink,
    "gamma": GammaLink,
    "exponential": ExponentialLink,
    "beta": BetaLink,
    "poisson": PoissonLink,
    "negative_binomial": NegativeBinomialLink,
    "zip": ZeroInflatedPoissonLink,
    "zinb": ZeroInflatedNegativeBinomialLink,
    "logit": LogitLink,
    "categorical": CategoricalLink,
    "ordinal": OrdinalLink,
}

__all__ = [
    "REGISTERED",
    "BetaLink",
    "CategoricalLink",
    "ExponentialLink",
    "GammaLink",
    "LogNormalLink",
    "LogitLink",
    "NegativeBinomialLink",
    "OrdinalLink",
    "PoissonLink",
    "StudentTLink",
    "ZeroInflatedNegativeBinomialLink",
    "ZeroInflatedPoissonLink",
]
