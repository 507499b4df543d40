r"""The checks of an inference method: ``factory(**config)`` has ``run(problem)``, which returns
draws of every latent site, the same for the same seed, near a closed-form posterior, that
``predict`` can use.

The conjugate model the method is checked against, with :math:`n` = :data:`CONJUGATE_ROWS`:

.. math::
    \mu \sim \mathcal{N}(0, 1), \quad y_i \sim \mathcal{N}(\mu, 1)
    \quad\Longrightarrow\quad
    \mu \mid y \sim \mathcal{N}\Big(\frac{\sum_i y_i}{n + 1}, \frac{1}{n + 1}\Big).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from blayers_core.api.fit import fit
from blayers_core.api.result import FitResult
from blayers_core.testing._candidate import Candidate
from blayers_core.testing._config import require_bad_config_rejected
from blayers_core.testing._docs import require_docstring
from blayers_core.testing._fitting import PREDICT_ROWS, require_finite_predictions
from blayers_core.testing._tiny import LATENT_SITES, TINY_Y, tiny_model

#: Rows of the conjugate model's data.
CONJUGATE_ROWS = 20
#: Its data: ``y_i ~ N(1, 1)``.
CONJUGATE_Y = np.random.default_rng(1).normal(1.0, 1.0, size=CONJUGATE_ROWS).astype(np.float32)
#: How far the draws' mean may be from the posterior mean, in posterior sds.
MEAN_TOLERANCE = 0.5
#: The draws' sd must be within this factor of the posterior sd.
SD_FACTOR = 2.0


def conjugate_model(x: Any, y: Any = None) -> Any:
    """``mu ~ Normal(0, 1)``, ``y_i ~ Normal(mu, 1)``; ``x`` ``(n, 1)`` only carries the rows."""
    mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
    return numpyro.sample("obs", dist.Normal(mu * jnp.ones(jnp.shape(x)[0]), 1.0), obs=y)


def _method(candidate: Candidate) -> Any:
    built = candidate.build()
    if not callable(getattr(built, "run", None)):
        raise AssertionError(
            f"factory() built {built!r}, which has no run(problem) method; an inference method "
            "returns an InferenceOutcome from run(problem)"
        )
    return built


def _fit(candidate: Candidate, model: Any, **data: Any) -> FitResult:
    return fit(model, method=_method(candidate), seed=0, progress_bar=False, **data)


def check_method_satisfies_the_protocol(candidate: Candidate) -> None:
    """``factory(**config)`` has ``run(problem)``."""
    _method(candidate)


def check_method_draws_every_latent_site(candidate: Candidate) -> None:
    """Through ``fit``: finite draws of every latent site, in its support, all with the same
    number of draws, as ``(draws, ...)`` arrays."""
    result = _fit(candidate, tiny_model, y=TINY_Y)
    samples = result.posterior_samples
    missing = [site for site in LATENT_SITES if site not in samples]
    if missing:
        raise AssertionError(f"the draws have no site {missing}; they have {sorted(samples)}")
    counts = {site: np.shape(samples[site])[:1] for site in LATENT_SITES}
    if len(set(counts.values())) != 1 or counts["a"] in ((), (0,)):
        raise AssertionError(f"the sites have different or no numbers of draws: {counts}")
    for site in LATENT_SITES:
        if not np.isfinite(np.asarray(samples[site])).all():
            raise AssertionError(f"draws of {site!r} are not all finite")
    if not (np.asarray(samples["b"]) > 0).all():
        raise AssertionError(
            "draws of 'b ~ HalfNormal(1)' are not all positive: return the latents in the "
            "constrained space"
        )


def check_method_is_deterministic(candidate: Candidate) -> None:
    """The same seed gives the same draws."""
    first = _fit(candidate, tiny_model, y=TINY_Y).posterior_samples
    second = _fit(candidate, tiny_model, y=TINY_Y).posterior_samples
    for site in LATENT_SITES:
        if not np.array_equal(np.asarray(first[site]), np.asarray(second[site])):
            raise AssertionError(f"two fits with seed=0 drew different values of {site!r}")


def check_method_recovers_a_conjugate_posterior(candidate: Candidate) -> None:
    """On the conjugate model, the draws' mean is within half a posterior sd of the closed-form
    mean and their sd within a factor 2 of the closed-form sd; ``predict`` works on them."""
    x = np.ones((CONJUGATE_ROWS, 1), dtype=np.float32)
    result = _fit(candidate, conjugate_model, x=x, y=CONJUGATE_Y)
    draws = np.asarray(result.posterior_samples["mu"], dtype=float)
    mean, sd = float(CONJUGATE_Y.sum()) / (CONJUGATE_ROWS + 1), (CONJUGATE_ROWS + 1) ** -0.5
    if abs(draws.mean() - mean) > MEAN_TOLERANCE * sd or not (
        sd / SD_FACTOR < draws.std() < sd * SD_FACTOR
    ):
        raise AssertionError(
            f"the posterior of mu is N({mean:.3f}, {sd:.3f}**2); the draws have mean "
            f"{draws.mean():.3f} and sd {draws.std():.3f} (the mean must be within "
            f"{MEAN_TOLERANCE} sd, the sd within a factor {SD_FACTOR}); declare an "
            "example_config that runs long enough"
        )
    new_x = np.ones((PREDICT_ROWS, 1), dtype=np.float32)
    require_finite_predictions(result, {"x": new_x}, PREDICT_ROWS)


def check_method_has_a_docstring(candidate: Candidate) -> None:
    """The factory has a docstring (its first line is the registry's description)."""
    require_docstring(candidate)


def check_method_rejects_bad_config(candidate: Candidate) -> None:
    """A constructor argument of the wrong type raises, naming the argument."""
    require_bad_config_rejected(candidate)
