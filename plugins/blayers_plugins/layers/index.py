"""Layers over integer index inputs: intercepts, embeddings, random and fixed effects, time series.

Every layer here except the intercept takes categorical codes (see
:mod:`blayers_plugins.layers._indices`): ``(n,)`` for one field or ``(n, f)`` for ``f`` fields,
with ``num_categories`` the number of levels (an int, or one int per field, in which case each
field has its own block of rows in one parameter table of ``C = sum(num_categories)`` rows). Codes
are range-checked whenever they are concrete, so a code outside ``0..C-1`` raises a ``ValueError``
naming the argument, before anything is compiled; it is never clamped or wrapped around. Rows of
the parameter table are gathered, ``O(n * f * units)``: no one-hot matrix is built. Inside
``blayers_core.plugin.allow_population_codes()`` (``predict(..., unseen="population")``) the code
``-1`` stands for a level not seen in training and gathers a zero row: no effect, the population
mean of the zero-centred effects.

The ordered layers (``random_walk``, ``ar1``) and ``random_slopes`` take a single field of codes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import attrs
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import Distribution, constraints

from blayers_core.plugin import BaseLayer, boolean, positive_number, positive_prior, real_prior
from blayers_plugins.layers._adaptive_prior import sample_adaptive
from blayers_plugins.layers._indices import (
    categories_validator,
    index_input,
    take_rows,
    total_categories,
)

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


# ------------------------------------------------------------------------------- validators
def _one_field(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """``num_categories`` of a layer over one field of codes: a single positive int."""
    if not isinstance(value, int | np.integer) or isinstance(value, bool):
        raise ValueError(
            f"{attribute.name} must be a single positive int for {type(instance).__name__}, "
            f"which takes one column of codes (one index), got {value!r}; use one layer per index"
        )


_bool = attrs.validators.instance_of(bool)


# ------------------------------------------------------------------------------------ helpers
def _gather_sum(table: jax.Array, index: jax.Array, weights: jax.Array | None = None) -> jax.Array:
    """``out[n] = sum_f w[n, f] table[index[n, f]]`` for a table ``(C, units)`` and codes
    ``(n, f)`` (``w = 1`` without weights)."""
    rows = take_rows(table, index)
    if weights is not None:
        rows = rows * weights[..., None]
    return jnp.sum(rows, axis=1)


def _check_weights(layer: str, codes: jax.Array, values: jax.Array | None) -> None:
    if values is not None and tuple(values.shape) != tuple(codes.shape):
        raise ValueError(
            f"layer {layer!r}: values must have the shape of the codes x, {tuple(codes.shape)} "
            f"(one weight per code; 0 for padding), got {tuple(values.shape)}"
        )


class _IndexLayer(BaseLayer):
    """Shared input handling: the inputs in ``index_names`` are codes, the rest float matrices."""

    #: Inputs that are integer codes (checked with ``index_input``).
    index_names: ClassVar[tuple[str, ...]] = ("x",)
    #: Whether the codes must be a single field (one column).
    single_field: ClassVar[bool] = False

    num_categories: int | Sequence[int]

    @property
    def table_rows(self) -> int:
        """Rows of the parameter table, ``C``."""
        return total_categories(self.num_categories)

    def convert_input(self, layer: str, argument: str, value: Any) -> jax.Array:
        if argument not in self.index_names:
            return super().convert_input(layer, argument, value)
        codes = index_input(layer, argument, value, self.num_categories)
        if self.single_field and codes.shape[1] != 1:
            raise ValueError(
                f"layer {layer!r}: {argument} must be one column of codes, (rows,) or (rows, 1), "
                f"for {type(self).__name__}; got {codes.shape[1]} columns"
            )
        return codes


class _WeightableCodes(_IndexLayer):
    """Codes ``x``, followed by their weights ``values`` when the layer is ``weighted``."""

    weighted: bool

    @property
    def input_names(self) -> tuple[str, ...]:
        return ("x", "values") if self.weighted else ("x",)


# ------------------------------------------------------------------------------------ layers
@attrs.frozen(kw_only=True)
class InterceptLayer(BaseLayer):
    r"""Intercept: one coefficient per output unit, the same for every row.

    Generative model, for ``u = units``:

    .. math::
        b_c &\sim \text{coef\_prior}  &&\text{site } \texttt{name/beta}, (u,)\\
        \text{out}_{nc} &= b_c  &&(n, u)

    Called as ``layer("b0", x)``: ``x`` only gives the number of rows ``n``. Any array with ``n``
    rows works (any width, any dtype, e.g. the model's feature matrix); its values are never read.

    Args:
        coef_prior: scalar prior of the intercept on the real line (default ``Normal(0, 1)``).
    """

    coef_prior: Distribution = attrs.field(
        factory=lambda: dist.Normal(0.0, 1.0), validator=real_prior
    )

    def convert_input(self, layer: str, argument: str, value: Any) -> jax.Array:
        shape = np.shape(value)
        if len(shape) == 0:
            raise ValueError(
                f"layer {layer!r}: {argument} gives the number of rows and must be an array with "
                f"one row per observation, got a scalar {value!r}"
            )
        return jnp.zeros((shape[0], 0))  # only the row count is used

    def forward(self, x: jax.Array, *, units: int) -> jax.Array:
        beta = numpyro.sample("beta", self.coef_prior.expand([units]).to_event(1))
        return jnp.broadcast_to(beta, (x.shape[0], units))


@attrs.frozen(kw_only=True)
class EmbeddingLayer(_WeightableCodes):
    r"""Embedding: each categorical code maps to a learned ``units``-dimensional vector.

    Generative model, for codes ``x`` of shape ``(n, f)`` (or ``(n,)``), ``C`` rows in the table
    (``num_categories``, or its sum over fields) and embedding dimension ``u = units``:

    .. math::
        \sigma_c &\sim \text{scale\_prior}  &&\text{site } \texttt{name/scale}, (u,)\\
        \theta_{kc} &\sim \mathcal{N}(0, \sigma_c)  &&\text{site } \texttt{name/theta}, (C, u)\\
        \text{out}_{n\cdot} &= \textstyle\sum_{j=1}^{f} \theta_{x_{nj}\,\cdot}  &&(n, u)

    With several fields the embeddings of a row's codes are summed (a bag of categories); with
    ``num_categories`` a tuple each field has its own block of table rows. With ``weighted=True``
    the layer is called as ``layer(name, x, values)`` and each code's row is weighted by
    ``values`` ``(n, f)``: padded multi-hot rows give their padding any valid code and weight 0.

    Args:
        num_categories: levels per field: an int shared by every column, or one int per column.
        scale_prior: prior of the per-dimension scale, a scalar distribution on the positive
            reals (default ``HalfNormal(1)``).
        weighted: take a second input ``values`` weighing every code.
    """

    #: Constructor arguments the conformance kit (blayers_core.testing) builds it with.
    example_config: ClassVar[dict[str, Any]] = {"num_categories": 4}

    num_categories: int | Sequence[int] = attrs.field(validator=categories_validator)
    scale_prior: Distribution = attrs.field(
        factory=lambda: dist.HalfNormal(1.0), validator=positive_prior
    )
    weighted: bool = attrs.field(default=False, validator=boolean)

    def forward(self, x: jax.Array, values: jax.Array | None = None, *, units: int) -> jax.Array:
        _check_weights(type(self).__name__, x, values)
        shape = (self.table_rows, units)
        table = sample_adaptive("scale", "theta", self.scale_prior, dist.Normal, 0.0, shape)
        return _gather_sum(table, x, values)


@attrs.frozen(kw_only=True)
class RandomEffectsLayer(_WeightableCodes):
    r"""Random effects: one intercept per level, drawn around zero with a learned scale.

    Generative model, for codes ``x`` of shape ``(n, f)`` (or ``(n,)``), ``C`` levels in all and
    ``u = units``:

    .. math::
        \sigma_c &\sim \text{scale\_prior}  &&\text{site } \texttt{name/scale}, (u,)\\
        \theta_{kc} &\sim \mathcal{N}(0, \sigma_c)  &&\text{site } \texttt{name/theta}, (C, u)\\
        \text{out}_{nc} &= \textstyle\sum_{j=1}^{f} \theta_{x_{nj} c}  &&(n, u)

    With ``noncentered=True`` the same prior is written as
    :math:`z_{kc} \sim \mathcal{N}(0, 1)` (site ``name/z``, ``(C, u)``) and
    :math:`\theta_{kc} = \sigma_c z_{kc}` (deterministic site ``name/theta``), which is often easier
    to fit when a level has few rows.

    Args:
        num_categories: levels per field: an int shared by every column, or one int per column.
        scale_prior: prior of the group-level scale, a scalar distribution on the positive reals
            (default ``HalfNormal(1)``).
        noncentered: sample the standardised effects ``z`` instead of ``theta`` (default False).
        weighted: take a second input ``values`` ``(n, f)`` weighing every code (padded
            multi-hot rows: weight 0 for padding), as ``EmbeddingLayer``.
    """

    #: Constructor arguments the conformance kit (blayers_core.testing) builds it with.
    example_config: ClassVar[dict[str, Any]] = {"num_categories": 4}

    num_categories: int | Sequence[int] = attrs.field(validator=categories_validator)
    scale_prior: Distribution = attrs.field(
        factory=lambda: dist.HalfNormal(1.0), validator=positive_prior
    )
    noncentered: bool = attrs.field(default=False, validator=boolean)
    weighted: bool = attrs.field(default=False, validator=boolean)

    def forward(self, x: jax.Array, values: jax.Array | None = None, *, units: int) -> jax.Array:
        _check_weights(type(self).__name__, x, values)
        shape = (self.table_rows, units)
        if self.noncentered:
            scale = numpyro.sample("scale", self.scale_prior.expand([units]).to_event(1))
            z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand(list(shape)).to_event(2))
            theta = numpyro.deterministic("theta", scale * z)
        else:
            theta = sample_adaptive("scale", "theta", self.scale_prior, dist.Normal, 0.0, shape)
        return _gather_sum(theta, x, values)


@attrs.frozen(kw_only=True)
class RandomSlopesLayer(_IndexLayer):
    r"""Random slopes: coefficients on ``x`` that vary by group, drawn around zero.

    Generative model, for ``x`` of shape ``(n, d)``, group codes ``groups`` of shape ``(n,)`` with
    values in ``0..C-1`` and ``u = units``:

    .. math::
        \sigma_{jc} &\sim \text{scale\_prior}  &&\text{site } \texttt{name/scale}, (d, u)\\
        \beta_{gjc} &\sim \mathcal{N}(0, \sigma_{jc})  &&\text{site } \texttt{name/beta}, (C, d, u)\\
        \text{out}_{nc} &= \textstyle\sum_{j} x_{nj}\, \beta_{g_n j c}  &&(n, u)

    Add a layer on ``x`` alone (e.g. ``adaptive``) for the slopes shared by every group.

    Args:
        num_categories: number of groups ``C`` (a single int: one column of group codes).
        scale_prior: prior of the per-feature scale, a scalar distribution on the positive reals
            (default ``HalfNormal(1)``).
    """

    input_names: ClassVar[tuple[str, ...]] = ("x", "groups")
    index_names: ClassVar[tuple[str, ...]] = ("groups",)
    single_field: ClassVar[bool] = True

    #: Constructor arguments the conformance kit (blayers_core.testing) builds it with.
    example_config: ClassVar[dict[str, Any]] = {"num_categories": 4}

    num_categories: int = attrs.field(validator=[categories_validator, _one_field])
    scale_prior: Distribution = attrs.field(
        factory=lambda: dist.HalfNormal(1.0), validator=positive_prior
    )

    def forward(self, x: jax.Array, groups: jax.Array, *, units: int) -> jax.Array:
        d = x.shape[1]
        scale = numpyro.sample("scale", self.scale_prior.expand([d, units]).to_event(2))
        beta = numpyro.sample(
            "beta", dist.Normal(0.0, scale).expand([self.table_rows, d, units]).to_event(3)
        )
        return jnp.einsum("nd,ndu->nu", x, take_rows(beta, groups[:, 0]))


@attrs.frozen(kw_only=True)
class FixedEffectsLayer(_IndexLayer):
    r"""Fixed effects: one coefficient per level, each with the same fixed prior.

    Generative model, for codes ``x`` of shape ``(n, f)`` (or ``(n,)``), ``C`` levels in all and
    ``u = units``:

    .. math::
        \theta_{kc} &\sim \text{coef\_prior}  &&\text{site } \texttt{name/theta}, (C, u)\\
        \text{out}_{nc} &= \textstyle\sum_{j=1}^{f} \theta_{x_{nj} c}  &&(n, u)

    Args:
        num_categories: levels per field: an int shared by every column, or one int per column.
        coef_prior: scalar prior of every coefficient on the real line (default ``Normal(0, 1)``).
    """

    #: Constructor arguments the conformance kit (blayers_core.testing) builds it with.
    example_config: ClassVar[dict[str, Any]] = {"num_categories": 4}

    num_categories: int | Sequence[int] = attrs.field(validator=categories_validator)
    coef_prior: Distribution = attrs.field(
        factory=lambda: dist.Normal(0.0, 1.0), validator=real_prior
    )

    def forward(self, x: jax.Array, *, units: int) -> jax.Array:
        theta = numpyro.sample(
            "theta", self.coef_prior.expand([self.table_rows, units]).to_event(2)
        )
        return _gather_sum(theta, x)


@attrs.frozen(kw_only=True)
class RandomWalkLayer(_IndexLayer):
    r"""Gaussian random walk over an ordered index (time, age band, ...): neighbours are similar.

    Generative model, for codes ``x`` of shape ``(n,)`` with values in ``0..C-1`` (in order) and
    ``u = units``:

    .. math::
        \sigma_c &\sim \text{scale\_prior}  &&\text{site } \texttt{name/scale}, (u,)\\
        \delta_{tc} &\sim \mathcal{N}(0, \sigma_c)  &&\text{site } \texttt{name/increments}, (C, u)\\
        \theta_{tc} &= \textstyle\sum_{s \le t} \delta_{sc}
            &&\text{deterministic } \texttt{name/theta}, (C, u)\\
        \text{out}_{nc} &= \theta_{x_n c}  &&(n, u)

    The first level is :math:`\theta_0 = \delta_0 \sim \mathcal{N}(0, \sigma)`.

    Args:
        num_categories: number of ordered levels ``C`` (a single int: one column of codes).
        scale_prior: prior of the step scale, a scalar distribution on the positive reals
            (default ``HalfNormal(1)``).
    """

    single_field: ClassVar[bool] = True

    #: Constructor arguments the conformance kit (blayers_core.testing) builds it with.
    example_config: ClassVar[dict[str, Any]] = {"num_categories": 4}

    num_categories: int = attrs.field(validator=[categories_validator, _one_field])
    scale_prior: Distribution = attrs.field(
        factory=lambda: dist.HalfNormal(1.0), validator=positive_prior
    )

    def forward(self, x: jax.Array, *, units: int) -> jax.Array:
        shape = (self.table_rows, units)
        increments = sample_adaptive(
            "scale", "increments", self.scale_prior, dist.Normal, 0.0, shape
        )
        theta = numpyro.deterministic("theta", jnp.cumsum(increments, axis=0))
        return take_rows(theta, x[:, 0])


# ------------------------------------------------------------------------------------- AR(1)
def ar1_path(rho: jax.Array, sigma: jax.Array, eps: jax.Array) -> jax.Array:
    r"""The stationary AR(1) path driven by standard normal noise ``eps`` ``(..., T, u)``.

    :math:`\theta_0 = \sigma\varepsilon_0/\sqrt{1-\rho^2}`,
    :math:`\theta_t = \rho\,\theta_{t-1} + \sigma\varepsilon_t`, computed by ``jax.lax.scan``;
    ``rho`` and ``sigma`` are ``(..., u)`` and broadcast against ``eps[..., 0, :]``.
    """
    rho, sigma, eps = jnp.asarray(rho), jnp.asarray(sigma), jnp.asarray(eps)
    sd0 = sigma / jnp.sqrt((1.0 - rho) * (1.0 + rho))
    first = sd0 * eps[..., 0, :]
    carry_shape = jnp.broadcast_shapes(first.shape, rho.shape, sigma.shape)
    first = jnp.broadcast_to(first, carry_shape)

    def step(previous: jax.Array, noise: jax.Array) -> tuple[jax.Array, jax.Array]:
        current = rho * previous + sigma * noise
        return current, current

    _, rest = jax.lax.scan(step, first, jnp.moveaxis(eps[..., 1:, :], -2, 0))
    return jnp.concatenate([first[..., None, :], jnp.moveaxis(rest, 0, -2)], axis=-2)


class StationaryAR1(Distribution):
    r"""Stationary Gaussian AR(1) paths of length ``num_steps``, one per column ``(T, u)``.

    .. math::
        \theta_0 \sim \mathcal{N}\big(0, \sigma/\sqrt{1-\rho^2}\big), \qquad
        \theta_t \mid \theta_{t-1} \sim \mathcal{N}(\rho\,\theta_{t-1}, \sigma)

    ``rho`` (in ``(-1, 1)``) and ``sigma`` (``> 0``) have shape ``(..., u)``; the event shape is
    ``(num_steps, u)`` and the leading dimensions are the batch shape. The log density is exact,
    ``O(T u)``: the product of the conditionals above (the AR(1) precision matrix is tridiagonal).
    """

    arg_constraints: ClassVar[dict[str, Any]] = {
        "rho": constraints.open_interval(-1.0, 1.0),
        "sigma": constraints.positive,
    }
    support = constraints.real_matrix
    reparametrized_params: ClassVar[list[str]] = ["rho", "sigma"]
    pytree_data_fields = ("rho", "sigma")
    pytree_aux_fields = ("num_steps",)

    def __init__(
        self, rho: Any, sigma: Any, num_steps: int, *, validate_args: bool | None = None
    ) -> None:
        if isinstance(num_steps, bool) or not isinstance(num_steps, int | np.integer):
            raise ValueError(f"num_steps must be a positive int, got {num_steps!r}")
        if num_steps < 1:
            raise ValueError(f"num_steps must be a positive int, got {num_steps!r}")
        rho, sigma = jnp.atleast_1d(rho), jnp.atleast_1d(sigma)
        shape = jnp.broadcast_shapes(jnp.shape(rho), jnp.shape(sigma))
        self.rho = jnp.broadcast_to(rho, shape)
        self.sigma = jnp.broadcast_to(sigma, shape)
        self.num_steps = int(num_steps)
        super().__init__(
            batch_shape=shape[:-1],
            event_shape=(self.num_steps, shape[-1]),
            validate_args=validate_args,
        )

    def sample(self, key: jax.Array, sample_shape: tuple[int, ...] = ()) -> jax.Array:
        eps = jax.random.normal(key, tuple(sample_shape) + self.batch_shape + self.event_shape)
        return ar1_path(self.rho, self.sigma, eps)

    def log_prob(self, value: jax.Array) -> jax.Array:
        rho, sigma = self.rho, self.sigma
        sd0 = sigma / jnp.sqrt((1.0 - rho) * (1.0 + rho))
        first = value[..., 0, :]
        lp = jnp.sum(-0.5 * (first / sd0) ** 2 - jnp.log(sd0) - _LOG_SQRT_2PI, axis=-1)
        resid = value[..., 1:, :] - rho[..., None, :] * value[..., :-1, :]
        s = sigma[..., None, :]
        return lp + jnp.sum(-0.5 * (resid / s) ** 2 - jnp.log(s) - _LOG_SQRT_2PI, axis=(-2, -1))

    @property
    def mean(self) -> jax.Array:
        return jnp.zeros(self.batch_shape + self.event_shape)

    @property
    def variance(self) -> jax.Array:
        var = self.sigma**2 / ((1.0 - self.rho) * (1.0 + self.rho))
        return jnp.broadcast_to(var[..., None, :], self.batch_shape + self.event_shape)


@attrs.frozen(kw_only=True)
class AR1Layer(_IndexLayer):
    r"""Stationary AR(1) process over a time index ``0..C-1``: one correlated effect per step.

    Generative model, for codes ``x`` of shape ``(n,)`` with values in ``0..C-1`` (time steps in
    order, evenly spaced), ``u = units`` and ``c = rho_concentration``:

    .. math::
        r_c &\sim \text{Beta}(c, c)  &&\text{site } \texttt{name/rho\_raw}, (u,)\\
        \rho_c &= 2 r_c - 1  &&\text{deterministic } \texttt{name/rho}, (u,)\\
        \sigma_c &\sim \text{sigma\_prior}  &&\text{site } \texttt{name/sigma}, (u,)\\
        \theta_{0c} &\sim \mathcal{N}\big(0, \sigma_c/\sqrt{1-\rho_c^2}\big),\quad
        \theta_{tc} = \rho_c\,\theta_{t-1,c} + \sigma_c\,\varepsilon_{tc}
            &&\text{site } \texttt{name/theta}, (C, u)\\
        \text{out}_{nc} &= \theta_{x_n c}  &&(n, u)

    Centred (default): ``theta`` is one site with the exact AR(1) joint density
    (:class:`StationaryAR1`, ``O(C u)``). With ``noncentered=True`` the noise
    :math:`\varepsilon_{tc} \sim \mathcal{N}(0, 1)` is the site ``name/eps`` ``(C, u)`` and
    ``theta`` is built from it by ``jax.lax.scan`` as a deterministic site (same prior).

    Args:
        num_categories: number of time steps ``C`` (a single int: one column of codes).
        rho_concentration: ``c`` of the ``Beta(c, c)`` prior on ``(rho + 1) / 2`` (default 2:
            symmetric around 0, vanishing at ``rho = ±1``; 1 is uniform on ``(-1, 1)``).
        sigma_prior: prior of the innovation scale, a scalar distribution on the positive reals
            (default ``HalfNormal(1)``).
        noncentered: sample the standardised innovations ``eps`` instead of ``theta``.
    """

    single_field: ClassVar[bool] = True

    #: Constructor arguments the conformance kit (blayers_core.testing) builds it with.
    example_config: ClassVar[dict[str, Any]] = {"num_categories": 4}

    num_categories: int = attrs.field(validator=[categories_validator, _one_field])
    rho_concentration: float = attrs.field(default=2.0, validator=positive_number)
    sigma_prior: Distribution = attrs.field(
        factory=lambda: dist.HalfNormal(1.0), validator=positive_prior
    )
    noncentered: bool = attrs.field(default=False, validator=boolean)

    def forward(self, x: jax.Array, *, units: int) -> jax.Array:
        c = float(self.rho_concentration)
        num_steps = self.table_rows
        rho_raw = numpyro.sample("rho_raw", dist.Beta(c, c).expand([units]).to_event(1))
        rho = numpyro.deterministic("rho", 2.0 * rho_raw - 1.0)
        sigma = numpyro.sample("sigma", self.sigma_prior.expand([units]).to_event(1))
        if self.noncentered:
            eps = numpyro.sample(
                "eps", dist.Normal(0.0, 1.0).expand([num_steps, units]).to_event(2)
            )
            theta = numpyro.deterministic("theta", ar1_path(rho, sigma, eps))
        else:
            theta = numpyro.sample("theta", StationaryAR1(rho, sigma, num_steps))
        return take_rows(theta, x[:, 0])


#: Registered name -> layer class, merged into `blayers_plugins.layers.LAYERS`.
REGISTERED: dict[str, Any] = {
    "intercept": InterceptLayer,
    "embedding": EmbeddingLayer,
    "random_effects": RandomEffectsLayer,
    "random_slopes": RandomSlopesLayer,
    "fixed_effects": FixedEffectsLayer,
    "random_walk": RandomWalkLayer,
    "ar1": AR1Layer,
}

__all__ = [
    "AR1Layer",
    "EmbeddingLayer",
    "FixedEffectsLayer",
    "InterceptLayer",
    "RandomEffectsLayer",
    "RandomSlopesLayer",
    "RandomWalkLayer",
    "StationaryAR1",
    "ar1_path",
]
