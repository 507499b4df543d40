"""First-party guides: NumPyro's autoguides under registry names.

Each factory is called as ``factory(model, **config)``; ``config`` goes to the autoguide
(e.g. ``init_scale=0.01``, ``rank=4`` for ``auto_lowrank_mvn``).

One default differs from NumPyro's: the guides start at the prior median of every latent site
(``init_loc_fn=init_to_median``) instead of a uniform draw in ``(-2, 2)`` on the unconstrained
scale, which can start a regression far from the data (a tiny noise scale, coefficients of the
wrong sign) and leave a short run unconverged. Pass ``init_loc_fn=`` to choose another.
"""

from __future__ import annotations

from functools import partial

from numpyro.infer import autoguide, init_to_median


def _median_start(guide_class: type) -> partial[autoguide.AutoGuide]:
    return partial(guide_class, init_loc_fn=init_to_median)


#: Registered name -> (guide factory, one-line description).
GUIDES = {
    "auto_normal": (
        _median_start(autoguide.AutoNormal),
        "Independent normal per latent site (mean field).",
    ),
    "auto_diagonal_normal": (
        _median_start(autoguide.AutoDiagonalNormal),
        "Diagonal normal over all latents, flattened into one vector (mean field).",
    ),
    "auto_multivariate_normal": (
        _median_start(autoguide.AutoMultivariateNormal),
        "Full-covariance multivariate normal over all latents.",
    ),
    "auto_lowrank_mvn": (
        _median_start(autoguide.AutoLowRankMultivariateNormal),
        "Multivariate normal with low-rank plus diagonal covariance (rank=...).",
    ),
    "auto_delta": (_median_start(autoguide.AutoDelta), "Point estimate of every latent (MAP)."),
    "auto_laplace": (
        _median_start(autoguide.AutoLaplaceApproximation),
        "Laplace approximation: normal at the MAP with the Hessian's covariance.",
    ),
}
