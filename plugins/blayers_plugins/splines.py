"""B-spline bases for smooth layers: knot placement and the Cox–de Boor recursion in JAX.

A knot vector ``t`` of length ``M`` and a degree ``p`` define ``K = M - p - 1`` B-splines on the
domain ``[t[p], t[M - p - 1]]``. On that domain they are non-negative and sum to 1 (partition of
unity). :func:`make_knots` builds *clamped* knot vectors (each boundary knot repeated ``p + 1``
times), whose domain is ``[t[0], t[-1]]``.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from blayers_core.plugin import check_data


def _check_degree(degree: Any) -> int:
    if (
        isinstance(degree, bool | np.bool_)
        or not isinstance(degree, numbers.Integral)
        or degree < 0
    ):
        raise ValueError(f"degree must be a non-negative int, got {degree!r}")
    return int(degree)


def check_knots(knots: Any, degree: int, *, argument: str = "knots") -> np.ndarray:
    """``knots`` as a float64 NumPy vector, checked: 1-D, finite, non-decreasing, enough of them.

    Raises:
        ValueError: naming ``argument``, with what is wrong.
    """
    if isinstance(knots, jax.core.Tracer):
        raise TypeError(f"{argument} must be concrete numbers (a NumPy array), not a traced value")
    try:
        t = np.asarray(knots, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{argument} must be a 1-D array of numbers, got {knots!r}") from error
    if t.ndim != 1:
        raise ValueError(f"{argument} must be a 1-D array of knots, got shape {t.shape}")
    if not np.isfinite(t).all():
        raise ValueError(f"{argument} must be finite, got {t}")
    if np.any(np.diff(t) < 0):
        raise ValueError(f"{argument} must be non-decreasing (sorted), got {t}")
    if t.size < degree + 2:
        raise ValueError(
            f"{argument} has {t.size} knots; a degree-{degree} basis needs at least "
            f"{degree + 2} (use make_knots to build a clamped knot vector)"
        )
    if not t[degree] < t[t.size - degree - 1]:
        raise ValueError(
            f"{argument} gives an empty domain [t[{degree}], t[{t.size - degree - 1}]] = "
            f"[{t[degree]}, {t[t.size - degree - 1]}]; the knots must span an interval"
        )
    return t


def spline_domain(knots: Any, degree: int = 3) -> tuple[float, float]:
    """The interval ``[t[p], t[M - p - 1]]`` on which the basis is a partition of unity."""
    degree = _check_degree(degree)
    t = check_knots(knots, degree)
    return float(t[degree]), float(t[t.size - degree - 1])


def bspline_basis(x: Any, knots: Any, degree: int = 3) -> jax.Array:
    """The ``(n, K)`` B-spline design matrix of ``x`` ``(n,)``, ``K = len(knots) - degree - 1``.

    Cox–de Boor recursion: degree-0 indicators of the half-open intervals
    ``[t_i, t_{i+1})``, with the right end of the domain belonging to the last non-empty interval
    (so the basis is a partition of unity on the closed domain), then

    .. math::
        B_{i,r}(x) = \\frac{x - t_i}{t_{i+r} - t_i} B_{i,r-1}(x)
            + \\frac{t_{i+r+1} - x}{t_{i+r+1} - t_{i+1}} B_{i+1,r-1}(x),

    a term with a zero denominator being 0. This equals
    ``scipy.interpolate.BSpline.design_matrix(x, knots, degree)`` as a dense array.

    ``x`` may be a traced JAX value (inside ``jit``); ``knots`` must be concrete. An ``x``
    outside the domain ``[t[p], t[M - p - 1]]`` raises (see
    :func:`blayers_core.plugin.check_data`: at once when eager, in the dry run of ``fit``);
    inside training it would give rows that do not sum to 1 (all zero beyond the outermost
    knots), so check inputs before tracing.

    Raises:
        ValueError: ``x`` is not 1-D, a concrete ``x`` leaves the domain, or bad knots/degree.
    """
    degree = _check_degree(degree)
    t = check_knots(knots, degree)
    x = jnp.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"x must be 1-D (n,), got shape {tuple(x.shape)}")
    x = x.astype(jnp.result_type(float))
    knots_j = jnp.asarray(t, dtype=x.dtype)  # compare in x's precision, as the recursion does
    hi = knots_j[t.size - degree - 1]

    def check_domain(values: np.ndarray) -> None:
        lo_x, hi_x = np.asarray(t[degree], values.dtype), np.asarray(t[-degree - 1], values.dtype)
        outside = ~((values >= lo_x) & (values <= hi_x))  # NaN is outside
        if outside.any():
            raise ValueError(
                f"x has {int(outside.sum())} values outside the spline domain "
                f"[{t[degree]}, {t[t.size - degree - 1]}] "
                f"(e.g. {values[outside][:3]}); widen the knots (make_knots(..., lower=, "
                "upper=)) instead of clipping the data"
            )

    check_data(check_domain, x)
    xs = x[:, None]
    # Degree 0: indicators of [t_i, t_{i+1}); x == hi goes to the last interval ending at hi.
    basis = ((knots_j[:-1] <= xs) & (xs < knots_j[1:])).astype(x.dtype)
    last = int(np.nonzero(t[:-1] < t[t.size - degree - 1])[0][-1])
    at_end = jnp.zeros(t.size - 1, x.dtype).at[last].set(1.0)
    basis = jnp.where(xs == hi, at_end, basis)
    for r in range(1, degree + 1):
        left_den = t[r:-1] - t[: -r - 1]  # t_{i+r} - t_i, i = 0..M-r-2
        right_den = t[r + 1 :] - t[1:-r]  # t_{i+r+1} - t_{i+1}
        left_inv = jnp.asarray(_safe_inverse(left_den), x.dtype)
        right_inv = jnp.asarray(_safe_inverse(right_den), x.dtype)
        left = (xs - knots_j[: -r - 1]) * left_inv * basis[:, :-1]
        right = (knots_j[r + 1 :] - xs) * right_inv * basis[:, 1:]
        basis = left + right
    return basis


def _safe_inverse(den: np.ndarray) -> np.ndarray:
    out = np.zeros_like(den)
    np.divide(1.0, den, out=out, where=den > 0)
    return out


def greville_abscissae(knots: Any, degree: int = 3) -> np.ndarray:
    """Knot averages ``g_k = (t_{k+1} + ... + t_{k+p}) / p``, ``(K,)``, for ``degree >= 1``.

    They reproduce straight lines: ``sum_k (a + b g_k) B_k(x) = a + b x`` on the domain.
    """
    degree = _check_degree(degree)
    if degree < 1:
        raise ValueError("greville_abscissae needs degree >= 1")
    t = check_knots(knots, degree)
    k = t.size - degree - 1
    return np.array([t[i + 1 : i + degree + 1].mean() for i in range(k)])


def make_knots(
    x: Any,
    num_knots: int,
    degree: int = 3,
    *,
    lower: float | None = None,
    upper: float | None = None,
) -> np.ndarray:
    """A clamped knot vector with ``num_knots`` interior knots at quantiles of ``x``.

    The boundary knots are ``lower`` and ``upper`` (default: the smallest and largest ``x``),
    each repeated ``degree + 1`` times; interior knot ``j`` (``j = 1..num_knots``) is the
    ``j / (num_knots + 1)`` quantile of ``x``. The result has ``num_knots + 2 (degree + 1)``
    entries and gives ``K = num_knots + degree + 1`` basis functions on ``[lower, upper]``. Give
    ``lower``/``upper`` beyond the data's range when the spline will be evaluated on new data
    there (it raises outside its domain).

    Raises:
        ValueError: ``x`` not 1-D or not finite, bad ``num_knots``/``degree``/bounds, or ties in
            ``x`` that make two interior knots coincide (use fewer knots).
    """
    degree = _check_degree(degree)
    if (
        isinstance(num_knots, bool | np.bool_)
        or not isinstance(num_knots, numbers.Integral)
        or num_knots < 0
    ):
        raise ValueError(
            f"num_knots (interior knots) must be a non-negative int, got {num_knots!r}"
        )
    values = np.asarray(x, dtype=np.float64)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"x must be a non-empty 1-D array (or (n, 1)), got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("x must be finite to place knots")
    lo = float(values.min()) if lower is None else float(lower)
    hi = float(values.max()) if upper is None else float(upper)
    if lo > values.min() or hi < values.max():
        raise ValueError(
            f"lower/upper [{lo}, {hi}] must contain the range of x [{values.min()}, {values.max()}]"
        )
    if not lo < hi:
        raise ValueError(f"the knots need an interval: lower {lo} must be below upper {hi}")
    levels = np.arange(1, num_knots + 1) / (num_knots + 1)
    interior = np.quantile(values, levels) if num_knots else np.empty(0)
    inner = np.concatenate([[lo], interior, [hi]])
    if np.any(np.diff(inner) <= 0):
        raise ValueError(
            f"{num_knots} interior knots at quantiles of x are not distinct and strictly inside "
            f"[{lo}, {hi}] (x has ties: {np.unique(values).size} distinct values); use fewer "
            "knots"
        )
    return np.concatenate([np.full(degree + 1, lo), interior, np.full(degree + 1, hi)])


__all__: Sequence[str] = [
    "bspline_basis",
    "check_knots",
    "greville_abscissae",
    "make_knots",
    "spline_domain",
]
