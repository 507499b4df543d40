"""Sparsity-inducing linear layers: the (regularised) horseshoe and a mixture prior."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import attrs
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import Distribution, constraints

from blayers_core.plugin import BaseLayer, boolean, positive_number, positive_number_or_none
from blayers_plugins.layers.pairwise import pairwise_products


# ---------------------------------------------------------------------------------- horseshoe
@attrs.frozen(kw_only=True)
class _Horseshoe(BaseLayer):
    """The horseshoe prior on the coefficients of ``self.features(x)``; see the subclasses."""

    tau0: float = attrs.field(default=1.0, validator=positive_number)
    slab_scale: float | None = attrs.field(default=None, validator=positive_number_or_none)
    slab_df: float = attrs.field(default=4.0, validator=positive_number)
    centered: bool = attrs.field(default=True, validator=boolean)

    def features(self, x: jax.Array) -> jax.Array:
        """The columns the coefficients multiply."""
        return x

    def forward(self, x: jax.Array, *, units: int) -> jax.Array:
        features = self.features(x)
        d = features.shape[1]
        tau = numpyro.sample("tau", dist.HalfCauchy(self.tau0).expand([units]).to_event(1))
        lam = numpyro.sample("lambda", dist.HalfCauchy(1.0).expand([d, units]).to_event(2))
        if self.slab_scale is not None:
            half_df = 0.5 * self.slab_df
            c2_prior = dist.InverseGamma(half_df, half_df * self.slab_scale**2)
            c2 = numpyro.sample("c2", c2_prior.expand([units]).to_event(1))
            lam = jnp.sqrt(c2 * lam**2 / (c2 + tau**2 * lam**2))
        scale = tau * lam  # (d, u)
        if self.centered:
            beta = numpyro.sample("beta", dist.Normal(0.0, scale).to_event(2))
        else:
            z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([d, units]).to_event(2))
            beta = numpyro.deterministic("beta", scale * z)
        return features @ beta


_HORSESHOE_MATH = r"""
    .. math::
        \tau_c &\sim \text{HalfCauchy}(\text{tau0})  &&\texttt{name/tau}, (u,)\\
        \lambda_{jc} &\sim \text{HalfCauchy}(1)  &&\texttt{name/lambda}, (P, u)\\
        c^2_c &\sim \text{InverseGamma}\big(\tfrac{\nu}{2}, \tfrac{\nu}{2} s^2\big)
            &&\texttt{name/c2}, (u,) \text{ (only with a slab)}\\
        \tilde\lambda_{jc} &= \sqrt{\frac{c^2_c \lambda_{jc}^2}{c^2_c + \tau_c^2 \lambda_{jc}^2}}
            \quad(\tilde\lambda = \lambda \text{ without a slab})\\
        \beta_{jc} &\sim \mathcal{N}(0, \tau_c \tilde\lambda_{jc})  &&\texttt{name/beta}, (P, u)\\
        \text{out} &= F\,\beta  &&(n, u)

    with :math:`s` = ``slab_scale`` and :math:`\nu` = ``slab_df``. With ``centered=False`` the
    coefficients are sampled as :math:`z_{jc} \sim \mathcal{N}(0, 1)` (site ``name/z``,
    ``(P, u)``) and :math:`\beta = \tau\tilde\lambda z` is recorded as the deterministic site
    ``name/beta``: the same prior, often easier for variational and MCMC inference when the data
    are weak.

    Args:
        tau0: scale of the half-Cauchy prior of the global shrinkage :math:`\tau` (default 1;
            Piironen & Vehtari suggest :math:`\frac{p_0}{P - p_0}\frac{\sigma}{\sqrt n}` for
            :math:`p_0` expected nonzero coefficients).
        slab_scale: ``None`` (default) for the plain horseshoe, or the slab scale :math:`s` of the
            regularised horseshoe: coefficients far from zero are shrunk like
            :math:`\mathcal{N}(0, c)` instead of being left unregularised.
        slab_df: degrees of freedom :math:`\nu` of the slab's Student-t (default 4).
        centered: sample ``beta`` directly (default) or through standard normal ``z``.
"""


@attrs.frozen(kw_only=True)
class HorseshoeLayer(_Horseshoe):
    __doc__ = (
        r"""Linear layer with a horseshoe prior (optionally regularised with a slab).

    Generative model (Carvalho et al. 2010; slab: Piironen & Vehtari 2017), for ``x`` of shape
    ``(n, d)``, ``F = x``, ``P = d`` and ``u = units``:
"""
        + _HORSESHOE_MATH
    )


@attrs.frozen(kw_only=True)
class HorseshoeInteractionLayer(_Horseshoe):
    __doc__ = (
        r"""Horseshoe prior over all pairwise products ``x_i x_j`` (``i < j``) of the features.

    Generative model, for ``x`` of shape ``(n, d)`` with ``d >= 2``, ``F`` the ``(n, P)`` products
    of :func:`blayers_plugins.layers.pairwise.pairwise_products` (column order of
    :func:`~blayers_plugins.layers.pairwise.pair_indices`), ``P = d (d - 1) / 2`` and
    ``u = units``:
"""
        + _HORSESHOE_MATH
    )

    def convert_input(self, layer: str, argument: str, value: Any) -> jax.Array:
        x = super().convert_input(layer, argument, value)
        if x.shape[1] < 2:
            raise ValueError(
                f"layer {layer!r}: {argument} must have at least 2 columns (pairs need two "
                f"features), got shape {tuple(x.shape)}"
            )
        return x

    def features(self, x: jax.Array) -> jax.Array:
        return pairwise_products(x)


# ------------------------------------------------------------------------------------ mixture
def _components_converter(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _weights_converter(value: Any) -> Any:
    """Numeric 1-D weights as a tuple of floats (hashable, comparable); anything else as given."""
    if value is None or isinstance(value, str | bytes):
        return value
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return value
    return tuple(float(w) for w in arr) if arr.ndim == 1 else value


def _check_components(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, tuple) or len(value) < 2:
        raise ValueError(
            f"{attribute.name} must be a tuple of at least 2 scalar distributions on the real "
            f"line, e.g. (dist.Normal(0.0, 0.1), dist.Normal(0.0, 3.0)), got {value!r}"
        )
    for i, component in enumerate(value):
        if not isinstance(component, Distribution):
            raise TypeError(
                f"{attribute.name}[{i}] must be a numpyro distribution instance such as "
                f"dist.Normal(0.0, 1.0), got {component!r}"
            )
        scalar = tuple(component.batch_shape) == () and tuple(component.event_shape) == ()
        if not scalar or component.support is not constraints.real:
            raise ValueError(
                f"{attribute.name}[{i}] must be a scalar distribution on the real line (a prior "
                f"for a coefficient), got {component!r} with support {component.support} and "
                f"batch/event shape {tuple(component.batch_shape)}/"
                f"{tuple(component.event_shape)}"
            )


def _check_weights(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    k = len(instance.component_dists)
    ok = isinstance(value, tuple) and all(isinstance(w, numbers.Real) for w in value)
    if not ok or len(value) != k:
        raise ValueError(
            f"{attribute.name} must be None (learned weights) or {k} numbers, one per entry of "
            f"component_dists, got {value!r}"
        )
    if not all(math.isfinite(w) and w > 0 for w in value):
        raise ValueError(
            f"{attribute.name} must all be positive (drop a component instead of giving it "
            f"weight 0), got {value!r}"
        )
    if abs(sum(value) - 1.0) > 1e-6:
        raise ValueError(
            f"{attribute.name} must sum to 1, got {value!r} (sum {sum(value)!r}); divide by the sum"
        )


def _mixture(mixing: dist.Categorical, components: Sequence[Distribution]) -> Distribution:
    """``MixtureSameFamily`` when the components are one family, else ``MixtureGeneral``."""
    family = type(components[0])
    if all(type(c) is family for c in components):
        try:
            stacked = family(
                **{
                    p: jnp.stack([jnp.asarray(getattr(c, p)) for c in components])
                    for p in family.arg_constraints
                }
            )
        except (AttributeError, TypeError, ValueError):
            stacked = None  # a family not rebuilt from its arg_constraints: the general form
        if stacked is not None and tuple(stacked.batch_shape) == (len(components),):
            return dist.MixtureSameFamily(mixing, stacked)
    return dist.MixtureGeneral(mixing, list(components))


@attrs.frozen(kw_only=True)
class MixtureLayer(BaseLayer):
    r"""Linear layer whose coefficients have a finite-mixture prior, such as a spike and slab.

    Generative model, for ``x`` of shape ``(n, d)``, ``K`` components :math:`p_k` and
    ``u = units``:

    .. math::
        \ell_k &\sim \mathcal{N}(0, \text{weight\_scale})  &&\texttt{name/logits}, (K,)
            \text{ (only when weights is None)}\\
        w &= \operatorname{softmax}(\ell) \quad\text{or the fixed } \texttt{weights}\\
        \beta_{jc} &\sim \textstyle\sum_k w_k\, p_k  &&\texttt{name/beta}, (d, u)\\
        \text{out} &= x\,\beta  &&(n, u)

    Each coefficient's component indicator is summed out,
    :math:`\log p(\beta_{jc}) = \log\sum_k w_k p_k(\beta_{jc})`, so there are no discrete sites
    (``MixtureSameFamily`` when all components are one family, ``MixtureGeneral`` otherwise).
    The mixture weights are shared by every coefficient. Softmax ignores a common shift of the
    logits; their prior keeps that direction proper.

    Args:
        component_dists: at least 2 scalar distributions on the real line (default
            ``(Normal(0, 1), Laplace(0, 1))``); for spike-and-slab use a narrow and a wide one,
            e.g. ``(Normal(0, 0.05), Normal(0, 2))``.
        weights: fixed mixture weights, positive and summing to 1, one per component; ``None``
            (default) learns them through the logits.
        weight_scale: prior scale of the logits when the weights are learned (default 1).
    """

    component_dists: tuple[Distribution, ...] = attrs.field(
        factory=lambda: (dist.Normal(0.0, 1.0), dist.Laplace(0.0, 1.0)),
        converter=_components_converter,
        validator=_check_components,
    )
    weights: tuple[float, ...] | None = attrs.field(
        default=None, converter=_weights_converter, validator=_check_weights
    )
    weight_scale: float = attrs.field(default=1.0, validator=positive_number)

    def forward(self, x: jax.Array, *, units: int) -> jax.Array:
        k = len(self.component_dists)
        if self.weights is None:
            logits_prior = dist.Normal(0.0, self.weight_scale).expand([k]).to_event(1)
            mixing = dist.Categorical(logits=numpyro.sample("logits", logits_prior))
        else:
            mixing = dist.Categorical(probs=jnp.asarray(self.weights))
        prior = _mixture(mixing, self.component_dists)
        beta = numpyro.sample("beta", prior.expand([x.shape[1], units]).to_event(2))
        return x @ beta


#: Registered name -> layer class, merged into `blayers_plugins.layers.LAYERS`.
REGISTERED: dict[str, Any] = {
    "horseshoe": HorseshoeLayer,
    "horseshoe_interaction": HorseshoeInteractionLayer,
    "mixture": MixtureLayer,
}
