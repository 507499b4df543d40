"""Smooth functions of one input: penalised B-splines (P-splines) and a Hilbert-space GP."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import attrs
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import Distribution

from blayers_core.plugin import (
    BaseLayer,
    check_data,
    positive_int,
    positive_number,
    positive_prior,
)
from blayers_plugins.splines import bspline_basis, check_knots, greville_abscissae


def _one_column(layer: str, argument: str, x: jax.Array) -> None:
    if x.shape[1] != 1:
        raise ValueError(
            f"layer {layer!r}: {argument} must be one column (rows, 1), got shape "
            f"{tuple(x.shape)}; this layer is a smooth function of a single feature (use one "
            "layer per feature)"
        )


def _check_within(layer: str, argument: str, x: jax.Array, lo: float, hi: float, fix: str) -> None:
    """Raise if ``x`` has values outside ``[lo, hi]`` (compared in x's precision; see
    :func:`blayers_core.plugin.check_data` for when)."""

    def check(values: np.ndarray) -> None:
        lo_x, hi_x = np.asarray(lo, values.dtype), np.asarray(hi, values.dtype)
        outside = ~((values >= lo_x) & (values <= hi_x))
        if outside.any():
            raise ValueError(
                f"layer {layer!r}: {argument} has {int(outside.sum())} values outside "
                f"[{lo}, {hi}] (e.g. {values[outside][:3]}); {fix}. Values are never clipped."
            )

    check_data(check, x)


# ----------------------------------------------------------------------------------- P-spline
def _knots_converter(value: Any) -> Any:
    """Numeric 1-D knots as a tuple of floats (hashable, comparable); anything else as given."""
    if isinstance(value, str | bytes | jax.core.Tracer):
        return value
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return value
    return tuple(float(k) for k in arr) if arr.ndim == 1 else value


@attrs.frozen(kw_only=True)
class PSplineLayer(BaseLayer):
    r"""Smooth function of one feature: B-splines with a second-difference random-walk prior.

    For ``x`` of shape ``(n, 1)``, knots :math:`t` of length ``M``, degree ``p``,
    ``K = M - p - 1`` basis functions :math:`B_k` (:func:`blayers_plugins.splines.bspline_basis`)
    and ``u = units``:

    .. math::
        \sigma_c &\sim \text{scale\_prior}  &&\texttt{name/scale}, (u,)\\
        \delta_{jc} &\sim \mathcal{N}(0, \sigma_c)  &&\texttt{name/delta}, (K-2, u)\\
        (a_c, b_c) &\sim \mathcal{N}(0, \text{trend\_scale})  &&\texttt{name/trend}, (2, u)\\
        r_{kc} &= \textstyle\sum_{j \le k-2} (k-1-j)\,\delta_{jc}
            \quad(r_0 = r_1 = 0,\; r_k - 2 r_{k-1} + r_{k-2} = \delta_{k-2})  &&(K, u)\\
        \bar r_{\cdot c} &= (I - P)\, r_{\cdot c}, \quad P = A (A^\top A)^{-1} A^\top,
            \quad A = [\mathbf 1, g]  &&(K, u)\\
        \beta_{kc} &= a_c + b_c\, g_k + \bar r_{kc}  &&(K, u)\\
        \text{out}_{nc} &= \textstyle\sum_k B_k(x_n)\,\beta_{kc}  &&(n, u)

    Here :math:`g_k = (2\bar t_k - t_p - t_{M-p-1}) / (t_{M-p-1} - t_p)` are the Greville
    abscissae :math:`\bar t_k = (t_{k+1} + \dots + t_{k+p})/p` mapped to ``[-1, 1]``.

    * :math:`r` is the second-order random walk over the coefficient index whose second
      differences are :math:`\delta`; :math:`\bar r` is :math:`r` minus its least-squares line in
      :math:`g`, so the walk carries no linear part (this also keeps it from drifting with
      :math:`k`, which makes the layer far easier to fit).
    * B-splines reproduce straight lines through their Greville abscissae, so the trend part is
      exactly the line :math:`a_c + b_c\,(2x - t_p - t_{M-p-1})/(t_{M-p-1} - t_p)` in ``x``:
      :math:`a` is the level at the domain's centre and :math:`b` the rise from the centre to
      the right end; :math:`(a, b)` is the least-squares line through :math:`\beta` against
      :math:`g`. As :math:`\sigma \to 0` the function shrinks to that straight line.
    * The second differences of :math:`\beta` are :math:`\delta` plus those of a line in
      :math:`g`, i.e. exactly :math:`\delta` where the Greville abscissae are equally spaced
      (equally spaced knots): there the prior is the P-spline penalty of Eilers & Marx (1996),
      with a proper prior on its null space.

    ``x`` must lie in the domain ``[t_p, t_{M-p-1}]`` (``[knots[0], knots[-1]]`` for the clamped
    knots of :func:`blayers_plugins.splines.make_knots`): concrete inputs outside it raise, as
    ``fit`` and ``predict`` run the model eagerly before compiling; values are never clipped.
    The layer has its own level :math:`a`, so a separate intercept is only weakly identified.

    Args:
        knots: the knot vector, 1-D, non-decreasing, giving ``K >= 3`` basis functions (e.g.
            ``make_knots(x_train, num_knots=8, lower=..., upper=...)``).
        degree: degree ``p >= 1`` of the B-splines (default 3, cubic).
        trend_scale: prior scale of the level and slope of the linear trend (default 1).
        scale_prior: prior of the random walk's scale, a scalar distribution on the positive
            reals (default ``HalfNormal(1)``).
    """

    #: Constructor arguments the conformance kit (blayers_core.testing) builds it with.
    example_config: ClassVar[dict[str, Any]] = {"knots": (-1, -1, -1, -1, 0, 1, 1, 1, 1)}
    #: The kit's example input: one column (in [-1, 1], within the knots).
    example_columns: ClassVar[int] = 1

    knots: tuple[float, ...] = attrs.field(converter=_knots_converter)
    degree: int = attrs.field(default=3, validator=positive_int)
    trend_scale: float = attrs.field(default=1.0, validator=positive_number)
    scale_prior: Distribution = attrs.field(
        factory=lambda: dist.HalfNormal(1.0), validator=positive_prior
    )

    def __attrs_post_init__(self) -> None:
        t = check_knots(self.knots, self.degree, argument="knots")
        if self.num_basis < 3:
            raise ValueError(
                f"knots give {self.num_basis} degree-{self.degree} basis functions "
                f"({t.size} knots - degree - 1); a second-difference prior needs at least 3: "
                "add knots"
            )

    @property
    def num_basis(self) -> int:
        """``K = len(knots) - degree - 1``."""
        return len(self.knots) - self.degree - 1

    @property
    def domain(self) -> tuple[float, float]:
        """``(t_p, t_{M-p-1})``: the interval ``x`` must lie in."""
        return self.knots[self.degree], self.knots[len(self.knots) - self.degree - 1]

    def trend_basis(self) -> np.ndarray:
        """``g``, ``(K,)``: the Greville abscissae mapped to ``[-1, 1]``."""
        lo, hi = self.domain
        return (2.0 * greville_abscissae(self.knots, self.degree) - lo - hi) / (hi - lo)

    def walk_matrix(self) -> np.ndarray:
        """``(I - P) C``, ``(K, K-2)``, where ``r = C delta``: so ``bar_r = walk_matrix() @ delta``."""
        k = self.num_basis
        steps = np.arange(k)[:, None] - 1 - np.arange(k - 2)[None, :]  # k - 1 - j
        walk = np.maximum(steps, 0).astype(np.float64)  # C: r = C delta, r_0 = r_1 = 0
        line = np.stack([np.ones(k), self.trend_basis()], axis=1)
        return walk - line @ np.linalg.lstsq(line, walk, rcond=None)[0]

    def convert_input(self, layer: str, argument: str, value: Any) -> jax.Array:
        x = super().convert_input(layer, argument, value)
        _one_column(layer, argument, x)
        lo, hi = self.domain
        _check_within(
            layer,
            argument,
            x,
            lo,
            hi,
            "build the knots over a range that covers all data, training and new "
            "(make_knots(..., lower=, upper=))",
        )
        return x

    def forward(self, x: jax.Array, *, units: int) -> jax.Array:
        k = self.num_basis
        scale = numpyro.sample("scale", self.scale_prior.expand([units]).to_event(1))
        delta = numpyro.sample("delta", dist.Normal(0.0, scale).expand([k - 2, units]).to_event(2))
        trend = numpyro.sample(
            "trend", dist.Normal(0.0, self.trend_scale).expand([2, units]).to_event(2)
        )
        walk = jnp.asarray(self.walk_matrix(), delta.dtype) @ delta  # (K, u)
        g = jnp.asarray(self.trend_basis(), delta.dtype)[:, None]
        beta = trend[0] + trend[1] * g + walk  # (K, u)
        return bspline_basis(x[:, 0], self.knots, self.degree) @ beta


# --------------------------------------------------------------------------------------- HSGP
def hsgp_eigenfunctions(x: jax.Array, L: float, m: int) -> jax.Array:
    r"""Laplacian eigenfunctions on ``[-L, L]``: :math:`\phi_j(x) = L^{-1/2}\sin(\pi j (x+L)/(2L))`.

    ``x`` ``(n,)`` to ``(n, m)``, ``j = 1..m``.
    """
    j = jnp.arange(1, m + 1, dtype=jnp.result_type(float))
    return jnp.sqrt(1.0 / L) * jnp.sin(math.pi * j * (x[:, None] + L) / (2.0 * L))


def hsgp_frequencies(L: float, m: int) -> jax.Array:
    r""":math:`\sqrt{\lambda_j} = \pi j / (2L)`, ``(m,)``."""
    return math.pi * jnp.arange(1, m + 1, dtype=jnp.result_type(float)) / (2.0 * L)


def se_spectral_amplitude(w: jax.Array, sigma: jax.Array, lengthscale: jax.Array) -> jax.Array:
    r"""Square root of the 1-D squared-exponential kernel's spectral density (broadcasting).

    :math:`\sqrt{S(w)}` with :math:`S(w) = \sigma^2 \sqrt{2\pi}\,\ell\,\exp(-\ell^2 w^2 / 2)`,
    written out so that its gradient stays finite where :math:`S` underflows to 0.
    """
    return (
        sigma
        * jnp.sqrt(math.sqrt(2.0 * math.pi) * lengthscale)
        * jnp.exp(-0.25 * (lengthscale * w) ** 2)
    )


@attrs.frozen(kw_only=True)
class HSGPLayer(BaseLayer):
    r"""Smooth function of one feature: Hilbert-space approximate GP, squared-exponential kernel.

    The reduced-rank GP of Solin & Särkkä (2020) as in Riutort-Mayol et al. (2023), for ``x`` of
    shape ``(n, 1)`` with :math:`|x| \le L`, ``m`` basis functions and ``u = units``:

    .. math::
        \ell_c &\sim \text{lengthscale\_prior}  &&\texttt{name/lengthscale}, (u,)\\
        \sigma_c &\sim \text{sigma\_prior}  &&\texttt{name/sigma}, (u,)\\
        \beta_{jc} &\sim \mathcal{N}(0, 1)  &&\texttt{name/beta}, (m, u)\\
        \phi_j(x) &= \sqrt{1/L}\,\sin\!\big(\pi j (x + L) / (2L)\big), \quad
            \sqrt{\lambda_j} = \pi j / (2L), \quad j = 1..m\\
        S_c(w) &= \sigma_c^2 \sqrt{2\pi}\,\ell_c\, \exp(-\ell_c^2 w^2 / 2)\\
        \text{out}_{nc} &= \textstyle\sum_j \phi_j(x_n)\,\sqrt{S_c(\sqrt{\lambda_j})}\,\beta_{jc}
            &&(n, u)

    so that ``out[:, c]`` is approximately a zero-mean GP with covariance
    :math:`\sigma_c^2 \exp(-(x - x')^2 / (2\ell_c^2))`; the approximation is accurate when the
    data lie well inside ``[-L, L]`` (centre ``x`` and take ``L`` about 1.5 to 2 times
    ``max |x|``) and ``m`` is large for the lengthscale (roughly ``m > 1.75 L / \ell``).
    Concrete ``x`` outside ``[-L, L]`` raises (values are never clipped); ``fit`` and ``predict``
    run the model eagerly before compiling, so out-of-range data are caught.

    Args:
        L: half-width of the approximation's domain ``[-L, L]``, a positive number.
        m: number of basis functions.
        lengthscale_prior: prior of the lengthscale :math:`\ell`, positive (default
            ``InverseGamma(5, 5)``).
        sigma_prior: prior of the marginal standard deviation :math:`\sigma`, positive (default
            ``HalfNormal(1)``).
    """

    #: Constructor arguments the conformance kit (blayers_core.testing) builds it with.
    example_config: ClassVar[dict[str, Any]] = {"L": 1.5, "m": 4}
    #: The kit's example input: one column (in [-1, 1], within [-L, L]).
    example_columns: ClassVar[int] = 1

    L: float = attrs.field(validator=positive_number)
    m: int = attrs.field(validator=positive_int)
    lengthscale_prior: Distribution = attrs.field(
        factory=lambda: dist.InverseGamma(5.0, 5.0), validator=positive_prior
    )
    sigma_prior: Distribution = attrs.field(
        factory=lambda: dist.HalfNormal(1.0), validator=positive_prior
    )

    def convert_input(self, layer: str, argument: str, value: Any) -> jax.Array:
        x = super().convert_input(layer, argument, value)
        _one_column(layer, argument, x)
        _check_within(
            layer,
            argument,
            x,
            -float(self.L),
            float(self.L),
            "centre the feature and choose L about 1.5 to 2 times its largest absolute value",
        )
        return x

    def forward(self, x: jax.Array, *, units: int) -> jax.Array:
        L = float(self.L)
        lengthscale = numpyro.sample(
            "lengthscale", self.lengthscale_prior.expand([units]).to_event(1)
        )
        sigma = numpyro.sample("sigma", self.sigma_prior.expand([units]).to_event(1))
        beta = numpyro.sample("beta", dist.Normal(0.0, 1.0).expand([self.m, units]).to_event(2))
        w = hsgp_frequencies(L, self.m)[:, None]  # (m, 1)
        amplitude = se_spectral_amplitude(w, sigma, lengthscale)  # sqrt(S), (m, u)
        return hsgp_eigenfunctions(x[:, 0], L, self.m) @ (amplitude * beta)


#: Registered name -> layer class, merged into `blayers_plugins.layers.LAYERS`.
REGISTERED: dict[str, Any] = {
    "pspline": PSplineLayer,
    "hsgp": HSGPLayer,
}
