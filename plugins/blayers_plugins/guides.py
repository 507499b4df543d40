"""First-party guides: NumPyro's autoguides under registry names.

Each factory is called as ``factory(model, **config)``; ``config`` goes to the autoguide
(e.g. ``init_scale=0.01``, ``rank=4`` for ``auto_lowrank_mvn``).
"""

from __future__ import annotations

from numpyro.infer import autoguide

#: Registered name -> (guide factory, one-line description).
GUIDES = {
    "auto_normal": (autoguide.AutoNormal, "Independent normal per latent site (mean field)."),
    "auto_diagonal_normal": (
        autoguide.AutoDiagonalNormal,
        "Diagonal normal over all latents, flattened into one vector (mean field).",
    ),
    "auto_multivariate_normal": (
        autoguide.AutoMultivariateNormal,
        "Full-covariance multivariate normal over all latents.",
    ),
    "auto_lowrank_mvn": (
        autoguide.AutoLowRankMultivariateNormal,
        "Multivariate normal with low-rank plus diagonal covariance (rank=...).",
    ),
    "auto_delta": (autoguide.AutoDelta, "Point estimate of every latent (MAP)."),
    "auto_laplace": (
        autoguide.AutoLaplaceApproximation,
        "Laplace approximation: normal at the MAP with the Hessian's covariance.",
    ),
}
