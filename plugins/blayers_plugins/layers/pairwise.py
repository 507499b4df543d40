"""Pairwise and higher-order interaction layers: FM3, all pairwise products, bilinear forms.

The helpers :func:`pair_indices`, :func:`pairwise_products` and :func:`cross_products` expand
inputs into product features; the shrinkage layers reuse them.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import Distribution

from blayers_core.plugin import BaseLayer, boolean, loc_scale_family, positive_int, positive_prior
from blayers_plugins.layers._adaptive_prior import sample_adaptive


# ------------------------------------------------------------------------------------ helpers
def pair_indices(d: int) -> tuple[np.ndarray, np.ndarray]:
    """Column pairs ``(i, j)`` with ``i < j`` of ``d`` features, in row-major order.

    ``(0, 1), (0, 2), ..., (0, d-1), (1, 2), ...``: ``d (d - 1) / 2`` pairs, the order of the
    columns of :func:`pairwise_products`.
    """
    rows, cols = np.triu_indices(d, k=1)
    return rows, cols


def pairwise_products(x: jax.Array) -> jax.Array:
    """All products ``x_i x_j`` with ``i < j``: ``(n, d)`` to ``(n, d (d - 1) / 2)``.

    Column ``p`` is the ``p``-th pair of :func:`pair_indices`; there are no squares ``x_i^2``.
    """
    rows, cols = pair_indices(x.shape[1])
    return x[:, rows] * x[:, cols]


def cross_products(x: jax.Array, z: jax.Array) -> jax.Array:
    """All products ``x_i z_j``: ``(n, d_x)`` and ``(n, d_z)`` to ``(n, d_x d_z)``.

    Column ``i d_z + j`` is ``x_i z_j`` (row-major, as ``np.outer(x_n, z_n).ravel()``).
    """
    return (x[:, :, None] * z[:, None, :]).reshape(x.shape[0], -1)


def project(x: jax.Array, factors: jax.Array) -> jax.Array:
    """``x`` ``(n, d)`` through per-unit factors ``(d, k, u)``: ``(n, k, u)``."""
    return jnp.einsum("nd,dku->nku", x, factors)


def _require_columns(layer: str, argument: str, value: jax.Array, minimum: int, why: str) -> None:
    if value.shape[1] < minimum:
        raise ValueError(
            f"layer {layer!r}: {argument} must have at least {minimum} columns ({why}), got "
            f"shape {tuple(value.shape)}"
        )


def _sample_scale(prior: Distribution, units: int) -> jax.Array:
    """One shared scale per output unit, site ``scale`` ``(u,)``."""
    return numpyro.sample("scale", prior.expand([units]).to_event(1))  # type: ignore[no-any-return]


def _sample_coef(
    site: str, family: type[Distribution], loc: float, scale: jax.Array, shape: tuple[int, ...]
) -> jax.Array:
    """Coefficients ``family(loc, scale)`` of ``shape`` (ending with ``u``), one event."""
    prior = family(loc=loc, scale=scale).expand(list(shape)).to_event(len(shape))
    return numpyro.sample(site, prior)  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------------- layers
@attrs.frozen(kw_only=True)
class FM3Layer(BaseLayer):
    r"""Order-3 factorization machine: all three-way interactions through rank-``k`` factors.

    Generative model, for ``x`` of shape ``(n, d)`` (``d >= 3``), rank ``k = low_rank_dim`` and
    ``u = units``:

    .. math::
        \sigma_c &\sim \text{scale\_prior}  &&\texttt{name/scale}, (u,)\\
        \theta_{ifc} &\sim \text{coef\_dist}(\text{coef\_loc}, \sigma_c)
            &&\texttt{name/theta}, (d, k, u)\\
        \text{out}_{nc} &= \sum_f \sum_{i<j<l}
            \theta_{ifc}\theta_{jfc}\theta_{lfc}\, x_{ni} x_{nj} x_{nl}
          = \sum_f \tfrac16\big(p_1^3 - 3 p_2 p_1 + 2 p_3\big)  &&(n, u)

    with the power sums :math:`p_r = \sum_i (\theta_{ifc} x_{ni})^r` (Newton's identity for the
    third elementary symmetric polynomial), so the cost is ``O(n d k)``. Only distinct triples
    enter: no :math:`x_i^2 x_j` or :math:`x_i^3` terms (add lower orders with other layers).

    Args:
        low_rank_dim: rank ``k`` of the factors.
        scale_prior: prior of the scale, a scalar distribution on the positive reals
            (default ``HalfNormal(1)``).
        coef_dist: location-scale family of the factors (default ``Normal``).
        coef_loc: location of the factors' prior (default 0).
    """

    #: Constructor arguments the conformance kit (blayers_core.testing) builds it with.
    example_config: ClassVar[dict[str, Any]] = {"low_rank_dim": 2}

    low_rank_dim: int = attrs.field(validator=positive_int)
    scale_prior: Distribution = attrs.field(
        factory=lambda: dist.HalfNormal(1.0), validator=positive_prior
    )
    coef_dist: type[Distribution] = attrs.field(default=dist.Normal, validator=loc_scale_family)
    coef_loc: float = 0.0

    def convert_input(self, layer: str, argument: str, value: Any) -> jax.Array:
        x = super().convert_input(layer, argument, value)
        _require_columns(layer, argument, x, 3, "an order-3 interaction needs three features")
        return x

    def forward(self, x: jax.Array, *, units: int) -> jax.Array:
        shape = (x.shape[1], self.low_rank_dim, units)
        theta = sample_adaptive(
            "scale", "theta", self.scale_prior, self.coef_dist, self.coef_loc, shape
        )
        p1, p2, p3 = (project(x**r, theta**r) for r in (1, 2, 3))  # each (n, k, u)
        return jnp.sum(p1**3 - 3.0 * p2 * p1 + 2.0 * p3, axis=1) / 6.0


@attrs.frozen(kw_only=True)
class InteractionLayer(BaseLayer):
    r"""All pairwise products of the features (or of two inputs) with an adaptive prior.

    Called as ``layer(name, x)`` (the default): the products :math:`x_i x_j`, ``i < j``, of
    ``x`` ``(n, d)``, ``d >= 2``, in the order of :func:`pair_indices`, ``P = d (d - 1) / 2``.
    Built with ``with_second_input=True`` and called as ``layer(name, x, z)``: the products
    :math:`x_i z_j` of ``x`` ``(n, d_x)`` and ``z`` ``(n, d_z)``, column ``i d_z + j``,
    ``P = d_x d_z``. The flag is a constructor argument because a layer's inputs are fixed when
    it is built; calling with the wrong number of inputs raises.

    .. math::
        \sigma_c &\sim \text{scale\_prior}  &&\texttt{name/scale}, (u,)\\
        \beta_{pc} &\sim \text{coef\_dist}(\text{coef\_loc}, \sigma_c)  &&\texttt{name/beta}, (P, u)\\
        \text{out}_{nc} &= \sum_{i<j} \beta_{(ij)c}\, x_{ni} x_{nj}
            \quad\text{or}\quad \sum_{i,j} \beta_{(ij)c}\, x_{ni} z_{nj}  &&(n, u)

    The product matrix is ``(n, P)``: for many features prefer a factorized layer (``fm``).

    Args:
        with_second_input: take a second input ``z`` and use the products ``x_i z_j``.
        scale_prior: prior of the scale, a scalar distribution on the positive reals
            (default ``HalfNormal(1)``).
        coef_dist: location-scale family of the coefficients (default ``Normal``).
        coef_loc: location of the coefficients' prior (default 0).
    """

    with_second_input: bool = attrs.field(default=False, validator=boolean)
    scale_prior: Distribution = attrs.field(
        factory=lambda: dist.HalfNormal(1.0), validator=positive_prior
    )
    coef_dist: type[Distribution] = attrs.field(default=dist.Normal, validator=loc_scale_family)
    coef_loc: float = 0.0

    @property
    def input_names(self) -> tuple[str, ...]:
        return ("x", "z") if self.with_second_input else ("x",)

    def convert_input(self, layer: str, argument: str, value: Any) -> jax.Array:
        x = super().convert_input(layer, argument, value)
        if not self.with_second_input:
            _require_columns(
                layer,
                argument,
                x,
                2,
                "pairs need two features; for products with another input build the layer "
                "with with_second_input=True",
            )
        return x

    def forward(self, x: jax.Array, z: jax.Array | None = None, *, units: int) -> jax.Array:
        products = pairwise_products(x) if z is None else cross_products(x, z)
        shape = (products.shape[1], units)
        beta = sample_adaptive(
            "scale", "beta", self.scale_prior, self.coef_dist, self.coef_loc, shape
        )
        return products @ beta


@attrs.frozen(kw_only=True)
class BilinearLayer(BaseLayer):
    r"""Full bilinear form ``x^T W z`` of two inputs with an adaptive prior on ``W``.

    Generative model, for ``x`` ``(n, d_x)``, ``z`` ``(n, d_z)`` and ``u = units``:

    .. math::
        \sigma_c &\sim \text{scale\_prior}  &&\texttt{name/scale}, (u,)\\
        W_{ijc} &\sim \text{coef\_dist}(\text{coef\_loc}, \sigma_c)
            &&\texttt{name/beta}, (d_x, d_z, u)\\
        \text{out}_{nc} &= \sum_{i,j} x_{ni} W_{ijc} z_{nj}  &&(n, u)

    The same model as ``InteractionLayer(with_second_input=True)`` with ``W`` kept as a matrix;
    ``LowRankBilinearLayer`` constrains ``W`` to rank ``k``.

    Args:
        scale_prior: prior of the scale, a scalar distribution on the positive reals
            (default ``HalfNormal(1)``).
        coef_dist: location-scale family of ``W`` (default ``Normal``).
        coef_loc: location of ``W``'s prior (default 0).
    """

    input_names: ClassVar[tuple[str, ...]] = ("x", "z")

    scale_prior: Distribution = attrs.field(
        factory=lambda: dist.HalfNormal(1.0), validator=positive_prior
    )
    coef_dist: type[Distribution] = attrs.field(default=dist.Normal, validator=loc_scale_family)
    coef_loc: float = 0.0

    def forward(self, x: jax.Array, z: jax.Array, *, units: int) -> jax.Array:
        shape = (x.shape[1], z.shape[1], units)
        w = sample_adaptive("scale", "beta", self.scale_prior, self.coef_dist, self.coef_loc, shape)
        return jnp.einsum("ni,iju,nj->nu", x, w, z)


@attrs.frozen(kw_only=True)
class LowRankBilinearLayer(BaseLayer):
    r"""Rank-``k`` bilinear form ``x^T A B^T z`` of two inputs, both factors sharing one scale.

    Generative model, for ``x`` ``(n, d_x)``, ``z`` ``(n, d_z)``, ``k = low_rank_dim`` and
    ``u = units``:

    .. math::
        \sigma_c &\sim \text{scale\_prior}  &&\texttt{name/scale}, (u,)\\
        A_{ifc} &\sim \text{coef\_dist}(\text{coef\_loc}, \sigma_c)  &&\texttt{name/x\_theta}, (d_x, k, u)\\
        B_{jfc} &\sim \text{coef\_dist}(\text{coef\_loc}, \sigma_c)  &&\texttt{name/z\_theta}, (d_z, k, u)\\
        \text{out}_{nc} &= \sum_f (x A)_{nfc}\,(z B)_{nfc}
            = x_n^\top (A_{\cdot\cdot c} B_{\cdot\cdot c}^\top) z_n  &&(n, u)

    ``LowRankInteractionLayer`` is the same product with a separate scale for each factor
    (sites ``x_scale`` and ``z_scale``); the factor sites have the same names in both.

    Args:
        low_rank_dim: rank ``k`` of ``W = A B^T``.
        scale_prior: prior of the shared scale, a scalar distribution on the positive reals
            (default ``HalfNormal(1)``).
        coef_dist: location-scale family of the factors (default ``Normal``).
        coef_loc: location of the factors' prior (default 0).
    """

    input_names: ClassVar[tuple[str, ...]] = ("x", "z")

    #: Constructor arguments the conformance kit (blayers_core.testing) builds it with.
    example_config: ClassVar[dict[str, Any]] = {"low_rank_dim": 2}

    low_rank_dim: int = attrs.field(validator=positive_int)
    scale_prior: Distribution = attrs.field(
        factory=lambda: dist.HalfNormal(1.0), validator=positive_prior
    )
    coef_dist: type[Distribution] = attrs.field(default=dist.Normal, validator=loc_scale_family)
    coef_loc: float = 0.0

    def forward(self, x: jax.Array, z: jax.Array, *, units: int) -> jax.Array:
        k, family, loc = self.low_rank_dim, self.coef_dist, self.coef_loc
        scale = _sample_scale(self.scale_prior, units)
        a = _sample_coef("x_theta", family, loc, scale, (x.shape[1], k, units))
        b = _sample_coef("z_theta", family, loc, scale, (z.shape[1], k, units))
        return jnp.sum(project(x, a) * project(z, b), axis=1)


#: Registered name -> layer class, merged into `blayers_plugins.layers.LAYERS`.
REGISTERED: dict[str, Any] = {
    "fm3": FM3Layer,
    "interaction": InteractionLayer,
    "bilinear": BilinearLayer,
    "lowrank_bilinear": LowRankBilinearLayer,
}
