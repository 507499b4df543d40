"""Opt-in model decorators: reshape 1-D arguments to columns, and decentre latent sites.

Both are explicit choices of the person writing the model; layers themselves never reshape their
inputs or reparameterise their sites.

``autoreshape`` turns every 1-D array argument of a model into an ``(n, 1)`` column::

    @autoreshape
    def model(x, y=None):  # x of shape (n,) arrives as (n, 1)
        return gaussian_link_exp(AdaptiveLayer()("mu", x), y)

``autoreparam`` rewrites location-scale latent sites (``Normal``, ``Laplace``, ``Cauchy``,
``StudentT``) in non-centred form with NumPyro's ``LocScaleReparam``::

    @autoreparam(sites=["re/theta"])
    def model(x, g, y=None): ...
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro import handlers
from numpyro.infer.reparam import LocScaleReparam, Reparam

#: Distribution classes decentred by ``autoreparam``, with the parameters copied unchanged.
LOC_SCALE_FAMILIES: dict[type[dist.Distribution], tuple[str, ...]] = {
    dist.Normal: (),
    dist.Laplace: (),
    dist.Cauchy: (),
    dist.StudentT: ("df",),
}


# ----------------------------------------------------------------------------- autoreshape
def _as_column(value: Any) -> Any:
    if isinstance(value, np.ndarray | jax.Array):
        return value.reshape(-1, 1) if value.ndim == 1 else value
    if (
        hasattr(value, "__array__")
        and getattr(value, "ndim", None) == 1
        and not isinstance(value, str | bytes)
    ):  # e.g. a pandas Series
        return np.asarray(value).reshape(-1, 1)
    return value


def autoreshape(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: every 1-D array argument of ``fn`` is passed on as an ``(n, 1)`` column.

    Applies to positional and keyword arguments alike: NumPy and JAX arrays (traced ones too) and
    other 1-D array-likes with ``ndim == 1`` such as a pandas ``Series`` (converted to NumPy).
    Arrays of any other rank, scalars, lists, ``None`` and everything else are passed unchanged.

    This is opt-in, for models written in BLayers' style where a single feature arrives as
    ``(n,)``: blayers layers never reshape their inputs (a 1-D ``x`` raises and suggests
    ``x[:, None]``). Note that a 1-D target ``y`` becomes ``(n, 1)`` too; the links accept it (an
    ``(n, 1)`` predictor matches an ``(n, 1)`` target), and the observed site then has shape
    ``(n, 1)``. Integer codes ``(n,)`` become ``(n, 1)``, which index layers read as one field.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*(_as_column(a) for a in args), **{k: _as_column(v) for k, v in kwargs.items()})

    return wrapper


# ----------------------------------------------------------------------------- autoreparam
def _unwrap(fn: Any) -> Any:
    while isinstance(fn, dist.Independent | dist.ExpandedDistribution):
        fn = fn.base_dist
    return fn


def _check_centered(centered: Any) -> float | None:
    if centered is None:
        return None
    if isinstance(centered, bool) or not isinstance(centered, int | float | np.floating):
        raise TypeError(
            f"centered must be a number in [0, 1] (0: fully non-centred) or None (learn it per "
            f"site), got {centered!r}"
        )
    if not 0.0 <= float(centered) <= 1.0:
        raise ValueError(
            f"centered must be in [0, 1] (0: fully non-centred, 1: unchanged), got {centered!r}"
        )
    return float(centered)


def _site_selector(
    sites: Iterable[str] | Callable[[str], bool] | None,
) -> tuple[Callable[[str], bool], frozenset[str] | None]:
    """A predicate on site names, and the explicitly named sites (``None`` unless a list)."""
    if sites is None:
        return (lambda name: True), None
    if isinstance(sites, str | bytes):
        raise TypeError(
            f"sites must be None, an iterable of site names or a predicate on names; for one "
            f"site pass a list, sites=[{sites!r}]"
        )
    if callable(sites):
        return sites, None
    try:
        names = frozenset(sites)
    except TypeError:
        raise TypeError(
            f"sites must be None, an iterable of site names or a predicate on names, got {sites!r}"
        ) from None
    if not all(isinstance(n, str) for n in names):
        raise TypeError(f"sites must hold site names (str), got {sorted(map(repr, names))}")
    return names.__contains__, names


def _inner_prefix(messenger: Any, msg: dict[str, Any]) -> str:
    """The prefix that the ``scope`` handlers inside ``messenger`` gave the site's name.

    A reparameteriser's auxiliary site is sampled through the whole handler stack, so those scopes
    prefix its name again; the auxiliary site is therefore named relative to them.
    """
    stack = numpyro.primitives._PYRO_STACK
    position = next(i for i, handler in enumerate(stack) if handler is messenger)
    return "".join(
        f"{h.prefix}{h.divider}"
        for h in stack[position + 1 :]
        if isinstance(h, handlers.scope) and msg["type"] not in h.hide_types
    )


class _Guarded(Reparam):
    """Runs a reparameteriser on the site's name relative to the scopes inside the handler.

    While it runs, ``state["inside"]`` is set: the sites it samples are its own auxiliary sites
    (``{name}_decentered``), never reparameterised again.
    """

    def __init__(self, inner: Reparam, prefix: str, state: dict[str, Any]) -> None:
        self.inner, self.prefix, self.state = inner, prefix, state

    def __call__(self, name: str, fn: Any, obs: Any) -> Any:
        if not name.startswith(self.prefix):  # pragma: no cover - scope always prepends
            raise RuntimeError(f"site {name!r} does not start with its scope {self.prefix!r}")
        self.state["inside"] = True
        try:
            return self.inner(name[len(self.prefix) :], fn, obs)
        finally:
            self.state["inside"] = False


def autoreparam(
    model: Callable[..., Any] | None = None,
    *,
    sites: Iterable[str] | Callable[[str], bool] | None = None,
    centered: float | None = 0.0,
) -> Any:
    r"""Decentre location-scale latent sites of ``model`` (``numpyro.handlers.reparam``).

    Each selected latent site ``theta ~ F(loc, scale)`` with ``F`` one of ``Normal``,
    ``Laplace``, ``Cauchy`` or ``StudentT`` (``df`` kept; also when wrapped in ``.expand(...)``
    or ``.to_event(...)``) is rewritten with ``LocScaleReparam(centered)``: for ``centered=0``

    .. math::
        \tilde\theta \sim F(0, 1) \;\;\text{(site } \texttt{theta\_decentered}\text{)}, \qquad
        \theta = \text{loc} + \text{scale}\cdot\tilde\theta \;\;\text{(deterministic site }
        \texttt{theta}\text{)},

    the same prior for ``theta`` in a geometry that is easier to fit when the data say little about
    a site (e.g. random effects with few rows per level). The model's log density is then that of
    the decentred sites; ``Predictive`` still returns ``theta``.

    Usable as ``autoreparam(model, ...)``, ``@autoreparam`` or ``@autoreparam(sites=...)``.

    Args:
        model: the NumPyro model; omit it to get a decorator.
        sites: which sites to decentre: ``None`` for every eligible latent site; an iterable of
            site names (each must be a latent location-scale site of the model, else
            ``ValueError``); or a predicate ``name -> bool`` applied to the eligible latent sites.
            Names are those the model itself produces (``"re/theta"`` for a layer called as
            ``layer("re", ...)``), without any scope applied outside the wrapped model. Observed
            sites are never reparameterised.
        centered: ``0`` fully non-centred (default), ``1`` unchanged, in between partially; or
            ``None`` to learn a centring parameter per site (a ``numpyro.param``
            ``{site}_centered``).
    """
    centered = _check_centered(centered)
    selected, named = _site_selector(sites)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(fn):
            raise TypeError(f"autoreparam wraps a model function, got {fn!r}")

        @functools.wraps(fn)
        def reparameterised(*args: Any, **kwargs: Any) -> Any:
            state: dict[str, Any] = {"inside": False, "seen": set()}

            def config(msg: dict[str, Any]) -> Reparam | None:
                name = msg["name"]
                if state["inside"] or not selected(name):
                    return None  # an auxiliary site being drawn, or a site not asked for
                family = type(_unwrap(msg["fn"]))
                observed = msg["is_observed"]
                if named is not None:
                    state["seen"].add(name)
                    if observed:
                        raise ValueError(
                            f"autoreparam: site {name!r} is observed; only latent sites are "
                            "reparameterised, remove it from sites="
                        )
                    if family not in LOC_SCALE_FAMILIES:
                        raise ValueError(
                            f"autoreparam: site {name!r} has a {family.__name__} prior, not a "
                            f"location-scale one ({', '.join(c.__name__ for c in LOC_SCALE_FAMILIES)})"
                            "; remove it from sites="
                        )
                elif observed or family not in LOC_SCALE_FAMILIES:
                    return None
                inner = LocScaleReparam(centered, shape_params=LOC_SCALE_FAMILIES[family])
                return _Guarded(inner, _inner_prefix(messenger, msg), state)

            messenger = handlers.reparam(fn, config=config)
            result = messenger(*args, **kwargs)
            if named is not None and (missing := named - state["seen"]):
                raise ValueError(
                    f"autoreparam: sites {sorted(missing)} were named in sites= but the model "
                    "samples no such site; check the names (layers scope sites as 'layer/site')"
                )
            return result

        return reparameterised

    return decorate if model is None else decorate(model)


__all__ = ["LOC_SCALE_FAMILIES", "autoreparam", "autoreshape"]
