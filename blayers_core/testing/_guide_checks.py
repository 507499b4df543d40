"""The checks of a guide factory: ``factory(model, **config)`` is a NumPyro guide for ``model``."""

from __future__ import annotations

from typing import Any

import numpy as np

from blayers_core.testing._candidate import Candidate
from blayers_core.testing._docs import require_docstring
from blayers_core.testing._fitting import POSTERIOR_DRAWS, short_fit
from blayers_core.testing._harness import differing_sites, key, sites, traced
from blayers_core.testing._tiny import LATENT_SITES, TINY_Y, tiny_model


def _sampled(trace: Any) -> dict[str, Any]:
    return {
        name: msg["value"]
        for name, msg in sites(trace).items()
        if msg["type"] == "sample" and not msg.get("is_observed")
    }


def check_guide_factory_builds_a_callable_guide(candidate: Candidate) -> None:
    """``factory(model, **config)`` returns a callable."""
    guide = candidate.build(tiny_model)
    if not callable(guide):
        raise AssertionError(f"factory(model) built {guide!r}, which is not callable")


def check_guide_samples_every_latent_site(candidate: Candidate) -> None:
    """Run on the model's data, the guide samples a finite value for every latent site."""
    guide = candidate.build(tiny_model)
    _, trace = traced(guide, key(), TINY_Y)
    sampled = _sampled(trace)
    missing = [s for s in LATENT_SITES if s not in sampled]
    if missing:
        raise AssertionError(
            f"the guide sampled {sorted(sampled)} but not the model's latent sites {missing}"
        )
    bad = [s for s in LATENT_SITES if not np.isfinite(np.asarray(sampled[s])).all()]
    if bad:
        raise AssertionError(f"the guide drew non-finite values at {bad}")


def check_guide_is_deterministic(candidate: Candidate) -> None:
    """Two guides built alike and run under the same key draw the same values."""
    _, first = traced(candidate.build(tiny_model), key(), TINY_Y)
    _, second = traced(candidate.build(tiny_model), key(), TINY_Y)
    differing = differing_sites(first, second)
    if differing:
        raise AssertionError(
            f"two runs under the same PRNG key drew different values at {differing}; draw "
            "randomness only through numpyro.sample"
        )


def check_guide_trains_in_a_short_fit(candidate: Candidate) -> None:
    """A short minibatch ``fit`` with this guide gives finite posterior draws of every latent."""
    result = short_fit(tiny_model, {"y": TINY_Y}, guide=candidate.build(tiny_model))
    for site in LATENT_SITES:
        draws = np.asarray(result.posterior_samples.get(site, np.zeros(0)))
        if draws.shape != (POSTERIOR_DRAWS,) or not np.isfinite(draws).all():
            raise AssertionError(
                f"after fitting, the posterior draws of {site!r} are {draws!r}; expected "
                f"{POSTERIOR_DRAWS} finite values"
            )


def check_guide_has_a_docstring(candidate: Candidate) -> None:
    """The factory has a docstring (its first line is the registry's description)."""
    require_docstring(candidate)
