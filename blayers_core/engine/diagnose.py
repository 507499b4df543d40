"""Name the site and the row at fault when the model's log density is not finite.

Inside a compiled step a non-finite loss is one number; NumPyro's NUTS only says "Cannot find valid
initial parameters". On that failure path (and only there, so it costs nothing otherwise) the model
is run again eagerly, outside ``jit``, on the rows at fault, with its latent sites fixed at one
point (the guide's median for VI, the prior median for NUTS), and every sample site's log density
is computed element by element,

.. math::

    \\ell_{s,i} = \\log p_s(v_{s,i} \\mid \\theta_{s,i}),

where :math:`v_{s,i}` is the value of site :math:`s` at element :math:`i` and
:math:`\\theta_{s,i}` the parameters of its distribution there. The first site, in the order the
model met them, with a non-finite :math:`\\ell_{s,i}` is reported (:class:`SiteFault`): its name, the
first offending row (counted in the data as the user gave it), the value and the parameters.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
import numpy as np
from numpyro import handlers
from numpyro.distributions import Distribution
from numpyro.infer.initialization import init_to_median, init_to_uniform

from blayers_core.contract._typing import ModelFn

#: The message by which NumPyro says that no initial point has a finite log density.
NUMPYRO_NO_VALID_START = "Cannot find valid initial parameters"


class NonFiniteDensityError(RuntimeError):
    """The model's log density is not finite where training or sampling starts.

    Attributes:
        fault: the first site and row whose log density is not finite (``None`` when no single
            site could be blamed).
    """

    def __init__(self, message: str, *, fault: SiteFault | None) -> None:
        super().__init__(message)
        self.fault = fault


@attrs.frozen
class SiteFault:
    """The first element of a sample site whose log density is not finite.

    Attributes:
        site: the site's name.
        observed: whether the site is observed.
        distribution: the name of the site's distribution.
        row: the offending row, counted in the data as given (``None``: the site has no row axis).
        index: the element's index in the site's log-density array.
        log_density: the non-finite value of the log density there.
        value: the site's value at that element.
        params: the distribution's parameters at that element.
        in_support: whether the value lies in the distribution's support (``None``: unknown).
    """

    site: str
    observed: bool
    distribution: str
    row: int | None
    index: tuple[int, ...]
    log_density: float
    value: Any
    params: dict[str, Any]
    in_support: bool | None

    def describe(self) -> str:
        """One sentence naming the site, the row, the value and the parameters, with the cause."""
        kind = "observed site" if self.observed else "latent site"
        where = f"row {self.row}" if self.row is not None else f"element {list(self.index)}"
        params = ", ".join(f"{k}={_show(v)}" for k, v in self.params.items())
        return (
            f"{kind} {self.site!r} has log density {self.log_density} at {where}: value "
            f"{_show(self.value)} under {self.distribution}({params}); {self._cause()}"
        )

    def _cause(self) -> str:
        if self.in_support is False:
            return (
                f"the value is outside the support of {self.distribution}: fix or drop that row, "
                "or use a link (distribution) whose support covers it"
            )
        if not all(np.isfinite(np.asarray(v, dtype=float)).all() for v in self.params.values()):
            return (
                "the distribution's parameters are not finite there: look at the inputs of "
                "that row and the layers that feed the site"
            )
        return (
            "the value or the parameters are too extreme for a finite log density in floating "
            "point (it overflows): rescale the data, e.g. standardise the target and the inputs"
        )


def _show(value: Any) -> str:
    """A short text for a scalar or a small array; the shape of a larger one."""
    array = np.asarray(value)
    if array.size == 1:
        return f"{array.item():.6g}" if array.dtype.kind in "fc" else str(array.item())
    if array.size <= 6:
        return np.array2string(array, precision=4, separator=", ")
    return f"<array of shape {array.shape}>"


def _innermost(fn: Any) -> Any:
    """The distribution under NumPyro's wrappers (expanded, masked, independent)."""
    while type(fn).__name__ in ("ExpandedDistribution", "MaskedDistribution", "Independent"):
        fn = fn.base_dist
    return fn


def _at(param: Any, batch_shape: tuple[int, ...], index: tuple[int, ...]) -> Any:
    """``param`` at batch element ``index``: broadcast to the batch shape (plus any trailing event
    dimensions of the parameter) and indexed."""
    array = np.asarray(param)
    for event_dims in range(array.ndim + 1):
        event = array.shape[array.ndim - event_dims :] if event_dims else ()
        try:
            return np.broadcast_to(array, batch_shape + event)[index]
        except ValueError:
            continue
    return array


def _params(fn: Any, batch_shape: tuple[int, ...], index: tuple[int, ...]) -> dict[str, Any]:
    """The parameters a distribution was built with, at batch element ``index``."""
    inner = _innermost(fn)
    given = vars(inner)
    names = [k for k in getattr(inner, "arg_constraints", {}) if given.get(k) is not None]
    return {k: _at(given[k], batch_shape, index) for k in names}


def _in_support(
    fn: Distribution, value: Any, shape: tuple[int, ...], index: tuple[int, ...]
) -> bool | None:
    """Whether ``value`` at ``index`` lies in ``fn``'s support (``None``: cannot tell)."""
    try:
        inside = np.asarray(fn.support(value))
        return bool(np.broadcast_to(inside, shape)[index])
    except Exception:  # a support that cannot be checked element by element
        return None


def _row_axis(site: Mapping[str, Any], shape: tuple[int, ...], num_rows: int) -> int | None:
    """The axis of the log-density array that counts rows: a plate of ``num_rows`` around the
    site, else the first axis of that length."""
    for frame in site["cond_indep_stack"]:
        if frame.size == num_rows and -frame.dim <= len(shape):
            return len(shape) + int(frame.dim)
    return next((axis for axis, size in enumerate(shape) if size == num_rows), None)


def _log_density(site: Mapping[str, Any]) -> np.ndarray:
    """``log p(value)`` of a sample site, element by element, zero where it is masked out."""
    fn, value = site["fn"], site["value"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NumPyro warns on out-of-support values: reported here
        lp = (
            fn.log_prob(value, site["intermediates"])
            if site["intermediates"]
            else fn.log_prob(value)
        )
    lp = np.asarray(lp, dtype=float)
    if site.get("mask") is not None:
        lp = np.where(np.broadcast_to(np.asarray(site["mask"]), lp.shape), lp, 0.0)
    return lp


def _site_fault(
    name: str, site: Mapping[str, Any], num_rows: int, row_ids: np.ndarray
) -> SiteFault | None:
    lp = _log_density(site)
    bad = np.argwhere(~np.isfinite(lp))
    if not bad.size:
        return None
    axis = _row_axis(site, lp.shape, num_rows)
    if axis is not None:  # the first offending row, whatever the element order
        bad = bad[np.argsort(bad[:, axis], kind="stable")]
    index = tuple(int(i) for i in bad[0])
    fn = site["fn"]
    value = _at(site["value"], lp.shape, index)
    return SiteFault(
        site=name,
        observed=bool(site["is_observed"]),
        distribution=type(_innermost(fn)).__name__,
        row=None if axis is None else int(row_ids[index[axis]]),
        index=index,
        log_density=float(lp[index]),
        value=value,
        params=_params(fn, lp.shape, index),
        in_support=_in_support(fn, site["value"], lp.shape, index),
    )


def find_fault(
    model: ModelFn,
    arguments: Mapping[str, Any],
    *,
    num_rows: int,
    row_ids: np.ndarray | None = None,
    values: Mapping[str, Any] | None = None,
    substitute_fn: Callable[[Any], Any] | None = None,
    seed: int = 0,
) -> SiteFault | None:
    """The first sample site of ``model(**arguments)`` whose log density is not finite.

    The model runs eagerly (outside ``jit``) with its latent sites fixed at ``values`` or at what
    ``substitute_fn`` (a NumPyro init strategy such as ``init_to_median``) gives, the rest drawn
    under ``seed``. ``num_rows`` is the number of rows in ``arguments``; ``row_ids[i]`` is the
    row of the data behind row ``i`` of them (default: ``i``).
    """
    ids = np.arange(num_rows) if row_ids is None else np.asarray(row_ids)
    fixed: Any = handlers.seed(model, rng_seed=seed)
    if substitute_fn is not None:
        fixed = handlers.substitute(fixed, substitute_fn=substitute_fn)
    if values is not None:
        fixed = handlers.substitute(fixed, data=dict(values))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model_trace = handlers.trace(fixed).get_trace(**arguments)
    for name, site in model_trace.items():
        if site["type"] == "sample":
            fault = _site_fault(name, site, num_rows, ids)
            if fault is not None:
                return fault
    return None


def first_fault(searches: Iterable[Callable[[], SiteFault | None]]) -> SiteFault | None:
    """The fault the first successful search finds; a search that fails is skipped (this runs on
    a failure path and must not hide the original error)."""
    for search in searches:
        try:
            fault = search()
        except Exception:  # a diagnosis that cannot run reports nothing
            continue
        if fault is not None:
            return fault
    return None


def guide_draw(guide: Any, params: Mapping[str, Any], arguments: Mapping[str, Any]) -> Any:
    """The latent values of one draw from the guide at ``params``, under seed 0."""
    seeded = handlers.seed(handlers.substitute(guide, data=dict(params)), rng_seed=0)
    guide_trace = handlers.trace(seeded).get_trace(**arguments)
    return {
        name: site["value"]
        for name, site in guide_trace.items()
        if site["type"] == "sample" and not site["is_observed"]
    }


def fault_at_guide(
    model: ModelFn,
    guide: Any,
    params: Mapping[str, Any],
    arguments: Mapping[str, Any],
    *,
    num_rows: int,
    row_ids: np.ndarray,
) -> SiteFault | None:
    """The first non-finite site of the model at the guide's median, else at a draw from it."""

    def at(values: Callable[[], Any]) -> Callable[[], SiteFault | None]:
        return lambda: find_fault(
            model, arguments, num_rows=num_rows, row_ids=row_ids, values=values()
        )

    return first_fault(
        [at(lambda: guide.median(dict(params))), at(lambda: guide_draw(guide, params, arguments))]
    )


def fault_at_start(
    model: ModelFn, arguments: Mapping[str, Any], *, num_rows: int, row_ids: np.ndarray
) -> SiteFault | None:
    """The first non-finite site of the model at the prior median, else at a random point of
    NumPyro's default initialisation (uniform in ``(-2, 2)`` unconstrained)."""

    def at(strategy: Callable[[Any], Any]) -> Callable[[], SiteFault | None]:
        return lambda: find_fault(
            model, arguments, num_rows=num_rows, row_ids=row_ids, substitute_fn=strategy
        )

    return first_fault([at(init_to_median(num_samples=15)), at(init_to_uniform(radius=2))])


def no_valid_start_error(
    who: str,
    model: ModelFn,
    arguments: Mapping[str, Any],
    *,
    num_rows: int,
    row_ids: np.ndarray,
    error: BaseException,
) -> NonFiniteDensityError:
    """The error for NumPyro's "Cannot find valid initial parameters" raised by ``who`` on the
    rows ``row_ids`` of the data (given in ``arguments``), naming the site at fault."""
    fault = fault_at_start(model, arguments, num_rows=num_rows, row_ids=row_ids)
    head = f"{who} found no initial point with a finite log density (NumPyro: {str(error).rstrip('.')})"
    if fault is None:
        return NonFiniteDensityError(
            f"{head}. Re-evaluated outside jit at the prior median and at a random point, every "
            "site's log density is finite, so its gradient is not: look for a transformation "
            "with an infinite slope there (sqrt or log of 0, a division by 0).",
            fault=None,
        )
    return NonFiniteDensityError(
        f"{head}. Re-evaluated outside jit at the prior median: {fault.describe()}.", fault=fault
    )
