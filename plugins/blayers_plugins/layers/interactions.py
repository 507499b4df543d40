"""Interaction layers: the order-2 factorization machine and the low-rank (UV) interaction.

Both take dense ``(n, d)`` matrices, or integer category codes (``num_categories=...``) whose
factor rows are gathered from the table, ``O(n * fields * rank)``, with no one-hot matrix built.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import attrs
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from numpyro.distributions import Distribution

from blayers_core.plugin import (
    BaseLayer,
    boolean,
    check_data,
    layer_input,
    loc_scale_family,
    population_codes_allowed,
    positive_int,
    positive_prior,
)
from blayers_plugins.layers._adaptive_prior import sample_adaptive
from blayers_plugins.layers._indices import (
    categories_validator,
    index_input,
    take_rows,
    total_categories,
)

Categories = int | tuple[int, ...] | None


def _as_categories(value: Any) -> Any:
    """NumPy ints to ``int`` and lists to tuples, so that ``index_input`` tells one shared
    vocabulary (an int) from per-field sizes (a tuple); anything else is left to the validator."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, list | tuple) and all(
        isinstance(v, int | np.integer) and not isinstance(v, bool) for v in value
    ):
        return tuple(int(v) for v in value)
    return value


def _categories_field() -> Any:
    return attrs.field(
        default=None,
        converter=_as_categories,
        validator=attrs.validators.optional(categories_validator),
    )


def _values_input(layer: str, argument: str, value: Any, num_categories: Categories) -> jax.Array:
    """Weights of index inputs as a float ``(n, f)`` array; ``(n,)`` is one field."""
    arr = jnp.asarray(value)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(
            f"layer {layer!r}: {argument} must be (rows,) or (rows, fields) weights, one per code, "
            f"got shape {tuple(arr.shape)}"
        )
    if not (jnp.issubdtype(arr.dtype, jnp.number) or arr.dtype == jnp.bool_):
        raise TypeError(f"layer {layer!r}: {argument} must be numeric, got dtype {arr.dtype}")
    if isinstance(num_categories, tuple) and arr.shape[1] != len(num_categories):
        raise ValueError(
            f"layer {layer!r}: {argument} has {arr.shape[1]} columns but num_categories gives "
            f"{len(num_categories)} fields; give one weight per code"
        )
    return arr.astype(jnp.result_type(float))


def _check_values_shape(owner: str, codes: str, values: str, idx: jax.Array, w: jax.Array) -> None:
    if tuple(w.shape) != tuple(idx.shape):
        raise ValueError(
            f"{owner}: {values} has shape {tuple(w.shape)} but the codes {codes} have shape "
            f"{tuple(idx.shape)} (as (rows, fields)); give one weight per code"
        )


@functools.partial(jax.jit, static_argnames="population")
def _gathered_projection(
    table: jax.Array, idx: jax.Array, weights: jax.Array | None, population: bool
) -> jax.Array:
    """``sum_j w_nj table[idx_nj]``: rows of a ``(C, k, u)`` table gathered, ``(n, k, u)`` out.

    Jitted (as is :func:`_gathered_fm`) so that eager calls, such as the dry run before ``fit``
    compiles, run one compiled kernel instead of compiling each small operation. An index that
    escaped the range check gives NaN rows; with ``population`` the index ``-1`` gives zero rows.
    """
    rows = take_rows(table, idx, population)  # (n, f, k, u)
    if weights is not None:
        rows = rows * weights[:, :, None, None]
    return jnp.sum(rows, axis=1)


@functools.partial(jax.jit, static_argnames="population")
def _gathered_fm(
    theta: jax.Array, idx: jax.Array, weights: jax.Array | None, population: bool
) -> jax.Array:
    """The FM on gathered rows: ``0.5 sum_f [(sum_j v theta)^2 - sum_j (v theta)^2]``, ``(n, u)``."""
    rows = take_rows(theta, idx, population)  # (n, f, k, u)
    if weights is not None:
        rows = rows * weights[:, :, None, None]
    return 0.5 * jnp.sum(jnp.sum(rows, axis=1) ** 2 - jnp.sum(rows**2, axis=1), axis=1)


@attrs.frozen(kw_only=True)
class FMLayer(BaseLayer):
    r"""Order-2 factorization machine (Rendle 2010), pairwise interactions through rank-``k`` factors.

    Generative model, for ``x`` of shape ``(n, d)``, rank ``k = low_rank_dim`` and ``u = units``:

    .. math::
        \sigma_c &\sim \text{scale\_prior}  &&\texttt{name/scale}, (u,)\\
        \theta_{ifc} &\sim \text{coef\_dist}(\text{coef\_loc}, \sigma_c)
            &&\texttt{name/theta}, (d, k, u)\\
        \text{out}_{nc} &= \sum_{i<j} \langle\theta_{i\cdot c}, \theta_{j\cdot c}\rangle x_{ni} x_{nj}
          = \tfrac12 \sum_f \Big[\big(\textstyle\sum_i \theta_{ifc} x_{ni}\big)^2
            - \textstyle\sum_i \theta_{ifc}^2 x_{ni}^2\Big]  &&(n, u)

    The right-hand form costs ``O(n d k)``; it has no ``x_i^2`` terms (add them with another layer).

    **Index input.** With ``num_categories`` given, ``x`` holds integer codes, ``(n,)`` or
    ``(n, F)``, instead of a matrix. ``num_categories=(c_1, ..., c_F)`` gives field ``j`` the codes
    ``0..c_j-1`` and the table rows ``offset_j + code`` (one-hot fields); an int ``c`` makes every
    column a code of one shared vocabulary of ``c`` rows (multi-hot rows). The table has
    ``C = sum(c_j)`` (or ``c``) rows and the same sites and priors as the dense layer on the
    ``(n, C)`` one-hot matrix; for active table rows ``i_{n1}, ..., i_{nF}`` with weights ``v``
    (1 unless ``weighted=True``):

    .. math::
        \theta_{ifc} &\sim \text{coef\_dist}(\text{coef\_loc}, \sigma_c)
            &&\texttt{name/theta}, (C, k, u)\\
        \text{out}_{nc} &= \tfrac12 \sum_f \Big[\big(\textstyle\sum_j v_{nj}\,\theta_{i_{nj} f c}\big)^2
            - \textstyle\sum_j v_{nj}^2\,\theta_{i_{nj} f c}^2\Big]  &&(n, u)

    which equals the dense layer on the matrix with ``x[n, i_nj] = v_nj``, at ``O(n F k)`` cost:
    rows of ``theta`` are gathered, no one-hot matrix is built. With ``weighted=True`` the layer
    takes two inputs, ``layer(name, codes, values)``: ``values`` ``(n, F)`` floats weigh each code
    (counts, ratings, ``1/len`` for an averaged bag); pad short rows with any valid code and weight
    0. A code may appear once per row with nonzero weight (merge repeats by summing their values),
    since the factorization machine has no self-interactions. Codes are range-checked (and repeats
    found) whenever they are concrete, e.g. in the dry run ``fit`` and ``predict`` make before
    compiling; bad codes raise ``ValueError``. Traced codes (inside ``jit``) cannot be checked: an
    out-of-range one gives NaN, never a clamped or wrapped-around row. Inside
    ``allow_population_codes()`` (``predict(..., unseen="population")``) the code ``-1`` gathers a
    zero factor row: an unseen level interacts with nothing.

    Args:
        low_rank_dim: rank ``k`` of the factors.
        scale_prior: prior of the factor scale, a scalar distribution on the positive reals
            (default ``HalfNormal(1)``).
        coef_dist: location-scale family of the factors (default ``Normal``).
        coef_loc: location of the factors' prior (default 0).
        num_categories: ``None`` (default) for a dense ``x``; a tuple of category counts, one
            per column of codes, or one int for a shared vocabulary, for integer codes.
        weighted: with ``num_categories``, take ``(codes, values)`` inputs (multi-hot rows).
    """

    #: Constructor arguments the conformance kit (blayers_core.testing) builds it with.
    example_config: ClassVar[dict[str, Any]] = {"low_rank_dim": 2}

    low_rank_dim: int = attrs.field(validator=positive_int)
    scale_prior: Distribution = attrs.field(
        factory=lambda: dist.HalfNormal(1.0), validator=positive_prior
    )
    coef_dist: type[Distribution] = attrs.field(default=dist.Normal, validator=loc_scale_family)
    coef_loc: float = 0.0
    num_categories: int | tuple[int, ...] | None = _categories_field()
    weighted: bool = attrs.field(default=False, validator=boolean)

    def __attrs_post_init__(self) -> None:
        if self.weighted and self.num_categories is None:
            raise ValueError(
                "weighted=True weighs integer codes, so it needs num_categories; a dense x "
                "already carries its values (leave weighted=False)"
            )

    @property
    def input_names(self) -> tuple[str, ...]:
        return ("x", "values") if self.weighted else ("x",)

    def convert_input(self, layer: str, argument: str, value: Any) -> jax.Array:
        if self.num_categories is None:
            return layer_input(layer, argument, value)
        if argument == "values":
            return _values_input(layer, argument, value, self.num_categories)
        return index_input(layer, argument, value, self.num_categories)

    def forward(self, x: jax.Array, values: jax.Array | None = None, *, units: int) -> jax.Array:
        if self.num_categories is None:
            shape = (x.shape[1], self.low_rank_dim, units)
            theta = sample_adaptive(
                "scale", "theta", self.scale_prior, self.coef_dist, self.coef_loc, shape
            )
            projected = jnp.einsum("nd,dku->nku", x, theta)
            squares = jnp.einsum("nd,dku->nku", x**2, theta**2)
            return 0.5 * jnp.sum(projected**2 - squares, axis=1)

        if values is not None:
            _check_values_shape(type(self).__name__, "x", "values", x, values)
        if isinstance(self.num_categories, int):
            self._check_no_repeats(x, values)
        shape = (total_categories(self.num_categories), self.low_rank_dim, units)
        theta = sample_adaptive(
            "scale", "theta", self.scale_prior, self.coef_dist, self.coef_loc, shape
        )
        return _gathered_fm(theta, x, values, population_codes_allowed())

    def _check_no_repeats(self, idx: jax.Array, values: jax.Array | None) -> None:
        """A shared-vocabulary row must not list one code twice with nonzero weights."""
        if idx.shape[1] >= 2:
            check_data(self._raise_on_repeats, idx, values)

    def _raise_on_repeats(self, codes: np.ndarray, values: np.ndarray | None) -> None:
        active = np.ones(codes.shape, bool) if values is None else values != 0
        # Inactive entries get distinct negative keys, so only active repeats compare equal.
        keys = np.sort(np.where(active, codes, -1 - np.arange(codes.shape[1])[None, :]), axis=1)
        repeated = keys[:, 1:] == keys[:, :-1]
        if not repeated.any():
            return
        rows, cols = np.nonzero(repeated)
        shown = ", ".join(
            f"row {r}: code {keys[r, c]}" for r, c in zip(rows[:3], cols[:3], strict=True)
        )
        raise ValueError(
            f"{type(self).__name__}: x repeats a code within a row ({shown}"
            f"{', ...' if len(rows) > 3 else ''}). The factorization machine has no "
            "self-interactions, so each code may appear once per row: use weighted=True, give "
            "one entry the summed value and pad the others with weight 0."
        )


@attrs.frozen(kw_only=True)
class LowRankInteractionLayer(BaseLayer):
    r"""Low-rank interaction of two inputs: ``x`` and ``z`` projected to rank ``k`` and multiplied.

    Generative model, for ``x`` ``(n, d_x)``, ``z`` ``(n, d_z)``, ``k = low_rank_dim``, ``u = units``:

    .. math::
        \sigma^x_c, \sigma^z_c &\sim \text{scale\_prior}
            &&\texttt{name/x\_scale}, \texttt{name/z\_scale}, (u,)\\
        U_{ifc} &\sim \text{coef\_dist}(\text{coef\_loc}, \sigma^x_c)  &&\texttt{name/x\_theta}, (d_x, k, u)\\
        V_{jfc} &\sim \text{coef\_dist}(\text{coef\_loc}, \sigma^z_c)  &&\texttt{name/z\_theta}, (d_z, k, u)\\
        \text{out}_{nc} &= \sum_f (x U)_{nfc}\,(z V)_{nfc}
            = x_n^\top (U_{\cdot\cdot c} V_{\cdot\cdot c}^\top) z_n  &&(n, u)

    **Index inputs.** Either side (or both) may be integer codes instead of a matrix:
    with ``x_num_categories`` given, ``x`` holds codes ``(n,)`` or ``(n, F)`` (per-field counts as
    a tuple, or one int for a shared vocabulary, as in :class:`FMLayer`), ``d_x`` is the total
    number of categories and the projection is gathered,
    ``(x U)_{nfc} = \sum_j v_{nj} U_{i_{nj} f c}`` at ``O(n F k)`` cost; the sites and priors are
    those of the dense layer on the one-hot (or weighted multi-hot) matrix, and so is the output.
    ``x_weighted=True`` adds an input ``x_values`` ``(n, F)`` right after ``x`` weighing each code
    (pad with any valid code and weight 0; repeated codes add up). ``z`` likewise with
    ``z_num_categories``, ``z_weighted`` and ``z_values``: inputs are ``(x, [x_values,] z,
    [z_values])``. Concrete codes are range-checked, bad ones raise ``ValueError``; out-of-range
    traced codes give NaN.

    Args:
        low_rank_dim: rank ``k`` of the factors.
        scale_prior: prior of both factor scales, a scalar distribution on the positive reals
            (default ``HalfNormal(1)``).
        coef_dist: location-scale family of the factors (default ``Normal``).
        coef_loc: location of the factors' prior (default 0).
        x_num_categories: ``None`` (default) for a dense ``x``; category counts for codes.
        z_num_categories: ``None`` (default) for a dense ``z``; category counts for codes.
        x_weighted: with ``x_num_categories``, take weights ``x_values`` after ``x``.
        z_weighted: with ``z_num_categories``, take weights ``z_values`` after ``z``.
    """

    #: Constructor arguments the conformance kit (blayers_core.testing) builds it with.
    example_config: ClassVar[dict[str, Any]] = {"low_rank_dim": 2}

    low_rank_dim: int = attrs.field(validator=positive_int)
    scale_prior: Distribution = attrs.field(
        factory=lambda: dist.HalfNormal(1.0), validator=positive_prior
    )
    coef_dist: type[Distribution] = attrs.field(default=dist.Normal, validator=loc_scale_family)
    coef_loc: float = 0.0
    x_num_categories: int | tuple[int, ...] | None = _categories_field()
    z_num_categories: int | tuple[int, ...] | None = _categories_field()
    x_weighted: bool = attrs.field(default=False, validator=boolean)
    z_weighted: bool = attrs.field(default=False, validator=boolean)

    def __attrs_post_init__(self) -> None:
        for side in ("x", "z"):
            if (
                getattr(self, f"{side}_weighted")
                and getattr(self, f"{side}_num_categories") is None
            ):
                raise ValueError(
                    f"{side}_weighted=True weighs integer codes, so it needs {side}_num_categories; "
                    f"a dense {side} already carries its values (leave {side}_weighted=False)"
                )

    @property
    def input_names(self) -> tuple[str, ...]:
        names = ["x"] + (["x_values"] if self.x_weighted else [])
        return (*names, "z", *(["z_values"] if self.z_weighted else []))

    def convert_input(self, layer: str, argument: str, value: Any) -> jax.Array:
        side = argument[0]  # "x", "x_values", "z", "z_values"
        categories = self.x_num_categories if side == "x" else self.z_num_categories
        if categories is None:
            return layer_input(layer, argument, value)
        if argument.endswith("_values"):
            return _values_input(layer, argument, value, categories)
        return index_input(layer, argument, value, categories)

    def forward(self, *inputs: jax.Array, units: int) -> jax.Array:
        named = dict(zip(self.input_names, inputs, strict=True))
        k = self.low_rank_dim
        prior, family, loc = self.scale_prior, self.coef_dist, self.coef_loc
        sides = []
        for side, categories in (("x", self.x_num_categories), ("z", self.z_num_categories)):
            arr, weights = named[side], named.get(f"{side}_values")
            if weights is not None:
                _check_values_shape(type(self).__name__, side, f"{side}_values", arr, weights)
            rows = arr.shape[1] if categories is None else total_categories(categories)
            sides.append((arr, weights, categories, rows))
        projections = []
        for side, (arr, weights, categories, rows) in zip("xz", sides, strict=True):
            factors = sample_adaptive(
                f"{side}_scale", f"{side}_theta", prior, family, loc, (rows, k, units)
            )
            if categories is None:
                projections.append(jnp.einsum("nd,dku->nku", arr, factors))
            else:
                projections.append(
                    _gathered_projection(factors, arr, weights, population_codes_allowed())
                )
        return jnp.sum(projections[0] * projections[1], axis=1)
