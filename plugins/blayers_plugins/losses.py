r"""First-party losses: the minibatch ELBO and NumPyro's own ELBOs under registry names.

Batched ELBO
------------
For a minibatch :math:`b` of :math:`B` rows out of :math:`N`, latent :math:`z \sim q`:

.. math::
    \widehat{\text{ELBO}}_b = \frac{N}{B} \sum_{i \in b} \log p(y_i \mid z)
        + \log p(z) - \log q(z)

so the observed log-likelihood is scaled up to the full data set and the KL term is not. ``B`` is
read per observed site (the leading dimension of its batch shape). Over an epoch of :math:`S = N/B`
equal batches, each row once and :math:`z` held fixed, the mean of
:math:`\widehat{\text{ELBO}}_b` is exactly the full-data ELBO.

When ``B`` does not divide ``N``, ``fit`` pads the batches to ``B`` slots and runs this loss
inside :class:`blayers_core.padded_rows`, which masks the padding and multiplies the real rows by
:math:`SB/N`, :math:`S = \lceil N/B \rceil`. Each real row then weighs :math:`S` in every batch,

.. math::
    \frac{1}{S}\sum_{s=1}^{S} \widehat{\text{ELBO}}_{b_s}
        = \sum_{i=1}^{N} \log p(y_i \mid z) + \log p(z) - \log q(z),

for any batch size, shuffled or not. ``padded_rows`` must run after this loss's scaling (it wraps
the loss call, as in ``fit``): a site whose scale was already set, e.g. by
``numpyro.plate(..., subsample_size=...)``, is left as it is here, so the loss composes with
plates (a plate of ``N`` rows subsampled to ``B`` sets :math:`N/B` itself).
"""

from __future__ import annotations

from typing import Any

import jax
from numpyro.handlers import replay, seed
from numpyro.infer import Trace_ELBO, TraceMeanField_ELBO
from numpyro.infer.elbo import ELBO
from numpyro.infer.util import log_density
from numpyro.primitives import Messenger

from blayers_core.plugin import multiply_scale


class scale_observed_rows(Messenger):
    """Scale every observed site by ``num_obs / rows``, ``rows`` its leading batch dimension."""

    def __init__(self, fn: Any = None, *, num_obs: int) -> None:
        self.num_obs = num_obs
        super().__init__(fn)

    def process_message(self, msg: Any) -> None:
        if msg["type"] != "sample" or not msg["is_observed"] or msg.get("scale") is not None:
            return
        batch_shape = tuple(msg["fn"].batch_shape)
        if not batch_shape:
            raise ValueError(
                f"observed site {msg['name']!r} has no row dimension (batch shape ()), so "
                "batched_elbo cannot tell how many rows it covers. Observe one value per row, "
                "or fit with batch_size=None and loss='trace_elbo'."
            )
        multiply_scale(msg, self.num_obs / batch_shape[0])


def _elbo_particle(
    rng_key: Any, param_map: Any, model: Any, guide: Any, args: Any, kwargs: Any
) -> Any:
    """``log p(y, z) - log q(z)`` for one draw ``z ~ q``, summed in trace order.

    NumPyro's ``Trace_ELBO`` sums the sites of a Python ``set``, whose order changes with the
    process's string-hash seed; summing in trace order keeps the compiled program, and so the
    floating-point result, identical from one process to the next (resumed runs stay bit-exact
    and the persistent compilation cache hits).
    """
    model_key, guide_key = jax.random.split(rng_key)
    guide_log_density, guide_trace = log_density(seed(guide, guide_key), args, kwargs, param_map)
    replayed = replay(seed(model, model_key), guide_trace)
    model_log_density, _ = log_density(replayed, args, kwargs, param_map)
    return model_log_density - guide_log_density


class Batched_Trace_ELBO(ELBO):
    """Minibatch ELBO: observed log-likelihood scaled by ``num_obs / rows in the batch``.

    Args:
        num_obs: rows ``N`` of the full data set; ``fit`` fills it in when left ``None``.
        batch_size: accepted for BLayers compatibility; when given, a batch with more rows
            raises, since the scaling would then be silently wrong for the caller's intent.
        num_particles: Monte Carlo draws of ``z`` per step.
    """

    def __init__(
        self, num_obs: int | None = None, batch_size: int | None = None, num_particles: int = 1
    ) -> None:
        for label, value in (("num_obs", num_obs), ("batch_size", batch_size)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ValueError(f"{label} must be a positive int or None, got {value!r}")
        super().__init__(num_particles=num_particles)
        self.num_obs = num_obs
        self.batch_size = batch_size

    def with_num_obs(self, num_obs: int) -> Batched_Trace_ELBO:
        return Batched_Trace_ELBO(num_obs, self.batch_size, self.num_particles)

    def loss_with_mutable_state(
        self, rng_key: Any, param_map: Any, model: Any, guide: Any, *args: Any, **kwargs: Any
    ) -> Any:
        if self.num_obs is None:
            raise ValueError(
                "Batched_Trace_ELBO needs num_obs (rows in the full data set) when used outside "
                "fit(): Batched_Trace_ELBO(num_obs=len(y))"
            )
        scaled = scale_observed_rows(model, num_obs=self.num_obs)
        if self.batch_size is not None:
            scaled = _at_most_rows(scaled, self.batch_size)
        if self.num_particles == 1:
            elbo = _elbo_particle(rng_key, param_map, scaled, guide, args, kwargs)
        else:
            keys = jax.random.split(rng_key, self.num_particles)
            elbo = jax.vmap(
                lambda key: _elbo_particle(key, param_map, scaled, guide, args, kwargs)
            )(keys).mean()
        return {"loss": -elbo, "mutable_state": None}

    def __repr__(self) -> str:
        return (
            f"Batched_Trace_ELBO(num_obs={self.num_obs}, batch_size={self.batch_size}, "
            f"num_particles={self.num_particles})"
        )


class _at_most_rows(Messenger):
    def __init__(self, fn: Any, batch_size: int) -> None:
        self.batch_size = batch_size
        super().__init__(fn)

    def process_message(self, msg: Any) -> None:
        if msg["type"] == "sample" and msg["is_observed"]:
            rows = tuple(msg["fn"].batch_shape)[:1]
            if rows and rows[0] > self.batch_size:
                raise ValueError(
                    f"observed site {msg['name']!r} has {rows[0]} rows but the loss was built "
                    f"with batch_size={self.batch_size}"
                )


#: Registered name -> (loss factory, one-line description).
LOSSES = {
    "batched_elbo": (
        Batched_Trace_ELBO,
        "Minibatch ELBO: observed log-likelihood scaled by N / rows in the batch, KL unscaled.",
    ),
    "trace_elbo": (Trace_ELBO, "NumPyro's Trace_ELBO on full batches (Monte Carlo KL)."),
    "trace_meanfield_elbo": (
        TraceMeanField_ELBO,
        "NumPyro's TraceMeanField_ELBO: analytic KL where available, full batches.",
    ),
}
