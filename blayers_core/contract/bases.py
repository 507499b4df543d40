"""Base classes for layers and links: a final ``__call__`` that keeps the contract, around the math.

A subclass writes only its math; the base's ``__call__`` does the rest, the same way for
first-party and third-party components (the :class:`~blayers_core.contract.protocols.Layer` and
:class:`~blayers_core.contract.protocols.Link` protocols)::

    @attrs.frozen(kw_only=True)
    class StudentTPriorLayer(BaseLayer):
        df: float = attrs.field(default=3.0, validator=positive_number)

        def forward(self, x: jax.Array, *, units: int) -> jax.Array:
            prior = dist.StudentT(self.df).expand([x.shape[1], units]).to_event(2)
            return x @ numpyro.sample("beta", prior)  # the site is "{name}/beta"

    @attrs.frozen(kw_only=True)
    class LaplaceLink(BaseLink):
        name: str = attrs.field(default="obs", validator=site_name)

        def likelihood(self, mu: jax.Array) -> Distribution:
            return dist.Laplace(mu, numpyro.sample("scale", dist.HalfNormal(1.0)))  # "obs/scale"

``__call__`` is final (a subclass that defines it is refused) and ``forward``/``likelihood`` are
abstract (a subclass without one cannot be built).
"""

from __future__ import annotations

import abc
import weakref
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, final

import jax
import numpy as np
import numpyro
import numpyro.primitives
from numpyro.distributions import Distribution
from numpyro.handlers import block, scope, trace

from blayers_core.contract.checks import check_data
from blayers_core.contract.errors import DuplicateLayerError
from blayers_core.contract.shapes import align_to_target, layer_input


def _refuse_call_override(cls: type, base: type, hook: str) -> None:
    if "__call__" in vars(cls):
        raise TypeError(
            f"{cls.__name__} defines __call__, which {base.__name__} keeps final (it does the "
            f"scoping and the checks); implement {hook} instead"
        )


# ------------------------------------------------------------------------- duplicate layer names
#: The layer calls each NumPyro ``trace`` handler has seen: handler -> (the trace dict they were
#: recorded in, {full site prefix: description of the call}). A handler gets a new trace dict
#: each time it is entered, which discards the calls of the previous run.
_LAYER_CALLS: weakref.WeakKeyDictionary[Any, tuple[Any, dict[str, str]]] = (
    weakref.WeakKeyDictionary()
)


def _site_prefix_and_traces(name: str) -> tuple[str, list[Any]]:
    """The prefix the active ``scope`` handlers give the sites of layer ``name`` and the ``trace``
    handlers that record them.

    The handler stack is walked from the innermost handler out, as NumPyro applies it; the walk
    stops at a ``block``, whose outer handlers may never see the layer's sites.
    """
    prefix, traces = name, []
    for handler in reversed(numpyro.primitives._PYRO_STACK):
        if isinstance(handler, block):
            break
        if isinstance(handler, scope) and "sample" not in handler.hide_types:
            prefix = f"{handler.prefix}{handler.divider}{prefix}"
        elif isinstance(handler, trace):
            traces.append(handler)
    return prefix, traces


def _claim_layer_name(name: str, call: str) -> None:
    """Record the layer call ``call`` under ``name`` in every active trace, or raise
    :class:`DuplicateLayerError` when a layer call there already sampled sites under that name.

    Runs in Python while a model is traced (eagerly, or once when ``jit`` traces it), so it adds
    nothing to a compiled step.
    """
    prefix, traces = _site_prefix_and_traces(name)
    for handler in traces:
        recorded = _LAYER_CALLS.get(handler)
        calls = recorded[1] if recorded is not None and recorded[0] is handler.trace else {}
        first = calls.get(prefix)
        if first is None:
            continue
        sites = [site for site in handler.trace if site.startswith(prefix + "/")]
        if sites:
            raise DuplicateLayerError(_duplicate_message(name, prefix, first, call, sites))
    for handler in traces:
        recorded = _LAYER_CALLS.get(handler)
        if recorded is None or recorded[0] is not handler.trace:
            recorded = (handler.trace, {})
            _LAYER_CALLS[handler] = recorded
        recorded[1][prefix] = call


def _refuse_taken_site(name: str, label: str) -> None:
    """Raise :class:`DuplicateLayerError` when a site ``name`` (under the active scopes) is
    already in an active trace: a second link with the same name in one model."""
    prefix, traces = _site_prefix_and_traces(name)
    if any(prefix in handler.trace for handler in traces):
        raise DuplicateLayerError(
            f"{label}: the model already has a site {prefix!r} (another link with the same "
            f"name?). Give each link its own name, e.g. link(..., name={prefix + '_2'!r}): a "
            "second observed variable needs its own site"
        )


def _duplicate_message(
    name: str, prefix: str, first: str, second: str, sites: Sequence[str]
) -> str:
    shown = ", ".join(repr(s) for s in sites[:4]) + (", ..." if len(sites) > 4 else "")
    where = "" if prefix == name else f" (sites under {prefix!r})"
    return (
        f"layer name {name!r} is used twice in one model{where}: first by {first}, then by "
        f"{second}; both would sample the sites {shown}. Give each call its own name, e.g. "
        f"{name!r} and {name + '_2'!r}; to share the parameters, call the layer once and reuse "
        "its output"
    )


def _describe_call(layer: Any, name: str, argument_names: Sequence[str], inputs: Any) -> str:
    """``RandomEffectsLayer('g', x (20,))``: a layer call with its inputs' shapes."""
    shapes = ", ".join(
        f"{a} {tuple(np.shape(v))}" for a, v in zip(argument_names, inputs, strict=True)
    )
    return f"{type(layer).__name__}({name!r}, {shapes})"


# -------------------------------------------------------------------------------------- layers
class _LayerMeta(abc.ABCMeta):
    """Lets ``AdaptiveLayer("x", x)`` stand for ``AdaptiveLayer()("x", x)``, as BLayers allowed.

    A layer's constructor takes keyword arguments only, so a positional first argument that is a
    string can only be a site name.
    """

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if args and isinstance(args[0], str):
            return super().__call__()(*args, **kwargs)
        return super().__call__(*args, **kwargs)


class BaseLayer(metaclass=_LayerMeta):
    r"""Base of layers: subclasses implement :meth:`forward`; ``__call__`` is final.

    ``layer(name, *inputs, units=1, activation=None)``, for inputs named :attr:`input_names`:

    1. checks ``name`` (a non-empty str), the number of inputs and ``units`` (a positive int);
    2. converts every input with :meth:`convert_input` (default: a 2-D float array ``(n, d)``,
       raising a ``ValueError`` naming the layer and the argument, e.g. for a 1-D ``x``) and checks
       that all inputs have the same number of rows ``n``;
    3. calls ``forward(*inputs, units=units)`` inside ``numpyro.handlers.scope(prefix=name)``, so
       a site ``"beta"`` sampled there is named ``"{name}/beta"``; a second layer call with the
       same ``name`` in one traced model raises
       :class:`~blayers_core.contract.errors.DuplicateLayerError`, naming both calls;
    4. checks that ``forward`` returned ``(n, units)`` and applies ``activation`` to it.

    Constructor arguments must be keyword-only (``attrs.frozen(kw_only=True)``):
    ``MyLayer("mu", x)`` is short for ``MyLayer()("mu", x)``.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _refuse_call_override(cls, BaseLayer, "forward")

    @property
    def input_names(self) -> tuple[str, ...]:
        """Names of the positional inputs, in order, used in error messages (default ``("x",)``).

        Override with a class attribute, ``input_names: ClassVar[tuple[str, ...]] = ("x", "z")``,
        or with a property when the inputs depend on the configuration.
        """
        return ("x",)

    @final
    def __call__(
        self,
        name: str,
        *inputs: Any,
        units: int = 1,
        activation: Callable[[jax.Array], jax.Array] | None = None,
    ) -> jax.Array:
        """Sample the layer's sites under ``name`` and return its output, ``(n, units)``.

        Raises:
            TypeError: ``name`` is not a non-empty str, or the number of inputs is wrong.
            ValueError: ``units`` is not a positive int, an input is malformed (naming it), or
                the inputs have different numbers of rows.
            DuplicateLayerError: another layer call of the same model, under the same scopes,
                already sampled sites under ``name``.
        """
        if not isinstance(name, str) or not name:
            raise TypeError(
                f"{type(self).__name__}: the first argument is the layer's site name, a non-empty "
                f"str, e.g. layer('mu', x); got {name!r}"
            )
        names = self.input_names
        if len(inputs) != len(names):
            raise TypeError(
                f"layer {name!r} ({type(self).__name__}) takes inputs "
                f"({', '.join(names)}), got {len(inputs)} input(s)"
            )
        if isinstance(units, bool) or not isinstance(units, int | np.integer) or units < 1:
            raise ValueError(f"layer {name!r}: units must be a positive int, got {units!r}")
        arrays = [self.convert_input(name, a, v) for a, v in zip(names, inputs, strict=True)]
        rows = {a: v.shape[0] for a, v in zip(names, arrays, strict=True)}
        if len(set(rows.values())) > 1:
            raise ValueError(f"layer {name!r}: inputs have different numbers of rows: {rows}")
        _claim_layer_name(name, _describe_call(self, name, names, inputs))
        with scope(prefix=name):
            out = self.forward(*arrays, units=int(units))
        expected = (arrays[0].shape[0], int(units))
        if tuple(out.shape) != expected:  # a bug in the subclass, not in the user's data
            raise AssertionError(
                f"{type(self).__name__}.forward returned {tuple(out.shape)}, not {expected}"
            )
        return out if activation is None else activation(out)

    def convert_input(self, layer: str, argument: str, value: Any) -> jax.Array:
        """Check and convert one input; default: a 2-D float array ``(n, d)``
        (:func:`~blayers_core.plugin.layer_input`). Layers over codes override it."""
        return layer_input(layer, argument, value)

    @abc.abstractmethod
    def forward(self, *inputs: Any, **options: Any) -> jax.Array:
        """The layer's math: sample its parameters (already scoped) and return ``(n, units)``.

        Called as ``forward(*inputs, units=units)`` with the converted inputs, one per name in
        :attr:`input_names`, all with ``n`` rows. Subclasses name their inputs, e.g.
        ``forward(self, x, *, units)`` or ``forward(self, x, z, *, units)``.
        """


# --------------------------------------------------------------------------------------- links
class BaseLink(abc.ABC):
    r"""Base of links: subclasses implement :meth:`likelihood`; ``__call__`` is final.

    ``link(mu, y=None)`` with the observed site named :attr:`name`:

    1. ``mu, y = align(mu, y)``: checks and reshapes the predictor against the target. The
       default (:func:`~blayers_core.plugin.align_to_target`) lets an ``(n, 1)``
       predictor match an ``(n,)`` target and raises ``ValueError`` on any other mismatch; they
       are never broadcast;
    2. with ``y`` given: runs :meth:`check_target` on its concrete values (through
       :func:`~blayers_core.plugin.check_data`) and casts it to :attr:`target_dtype`;
    3. calls ``likelihood(mu)`` inside ``numpyro.handlers.scope(prefix=name)``, so auxiliary
       sites are ``"{name}/sigma"``, ...;
    4. checks the likelihood's shape (batch + event): equal to ``y``'s when observed, with the
       predictor's ``n`` rows when drawn;
    5. samples the site ``name``: observed at ``y``, or drawn when ``y`` is ``None``
       (``(n,)`` for an ``(n,)`` or ``(n, 1)`` predictor), and returns it.

    Subclasses are attrs classes with a ``name`` field, e.g.
    ``name: str = attrs.field(default="obs", validator=site_name)``.
    """

    #: The observed site's name; auxiliary sites are ``name/...``.
    name: str
    #: The dtype observed values are cast to after :meth:`check_target` (``None``: unchanged),
    #: e.g. ``jnp.int32`` for class codes.
    target_dtype: ClassVar[Any] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _refuse_call_override(cls, BaseLink, "likelihood")

    @final
    def __call__(self, mu: Any, y: Any | None = None) -> jax.Array:
        """Sample the auxiliary sites and the observed site ``name``; return ``y`` or a draw.

        Raises:
            ValueError: ``mu`` and ``y`` do not match (see :meth:`align`), or ``y`` holds values
                :meth:`check_target` refuses.
        """
        _refuse_taken_site(self.name, self.label)
        mu, y = self.align(mu, y)
        if y is not None:
            mu_shape = tuple(mu.shape)
            check_data(lambda values: self.check_target(values, mu_shape), y)
            if self.target_dtype is not None:
                y = y.astype(self.target_dtype)
        with scope(prefix=self.name):
            likelihood = self.likelihood(mu)
        self._check_likelihood_shape(likelihood, mu, y)
        return numpyro.sample(self.name, likelihood, obs=y)  # type: ignore[no-any-return]

    @property
    def label(self) -> str:
        """``link 'obs' (PoissonLink)``, the start of an error message."""
        return f"link {self.name!r} ({type(self).__name__})"

    def align(self, mu: Any, y: Any | None) -> tuple[jax.Array, jax.Array | None]:
        """``mu`` and ``y`` as arrays with matching layouts, or ``ValueError``.

        Default: :func:`~blayers_core.plugin.align_to_target`. Links whose predictor has
        a column per parameter or per class override it (e.g. ``(n, K)`` logits against ``(n,)``
        class codes).
        """
        return align_to_target(self.name, mu, y)

    def check_target(self, y: np.ndarray, mu_shape: tuple[int, ...]) -> None:
        """Raise ``ValueError`` on observed values outside the likelihood's support.

        ``y`` is a NumPy array of the concrete values and ``mu_shape`` the aligned predictor's
        shape (e.g. for the number of classes). It runs through
        :func:`~blayers_core.plugin.check_data`: at once on eager calls, after the dry
        run that ``fit`` and ``predict`` compile, never inside a training step. Default: any
        value is allowed.
        """
        return None

    @abc.abstractmethod
    def likelihood(self, mu: jax.Array) -> Distribution:
        """The link's math: sample auxiliary sites (already scoped) and return the distribution
        of ``y`` given the aligned predictor ``mu``, one value per row."""

    def _check_likelihood_shape(
        self, likelihood: Distribution, mu: jax.Array, y: jax.Array | None
    ) -> None:
        shape = tuple(likelihood.batch_shape) + tuple(likelihood.event_shape)
        if y is not None:
            expected, what = tuple(y.shape), "the target y"
            ok = shape == expected
        else:
            expected, what = tuple(mu.shape[:1]), "one value per row of mu"
            ok = shape[:1] == expected
        if not ok:  # a bug in the subclass: NumPyro would broadcast it silently
            raise AssertionError(
                f"{type(self).__name__}.likelihood returned a distribution of shape {shape} "
                f"(batch + event), which does not match {what}, {expected}"
            )
