"""The contracts every component meets, first-party or third-party.

A component is looked up by name through :mod:`blayers_core.contract.registry`; what the registry hands out
satisfies one of these protocols. They are structural (``typing.Protocol``): a plugin needs no base
class from blayers, only the right call signature.

============  ==========================================================  ============================
kind          call                                                        returns
============  ==========================================================  ============================
layer         ``layer(name, *inputs, **options)``                         ``(n, units)`` array
link          ``link(mu, y=None, **options)``                             the observed/sampled value
loss          ``loss.loss(rng_key, params, model, guide, *args, **kw)``   scalar loss to minimise
guide         ``guide_factory(model, **config)``                          a NumPyro guide
optimizer     ``optimizer_factory(learning_rate, **config)``              an ``optax`` transformation
method        ``method.run(problem)``                                     an ``InferenceOutcome``
============  ==========================================================  ============================
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from blayers_core.contract._typing import Array, ArrayLike, GuideFn, ModelFn
from blayers_core.contract.inference import FitProblem, InferenceOutcome


@runtime_checkable
class Layer(Protocol):
    """A reusable piece of a model's predictor.

    ``layer(name, *inputs, **options)`` samples the layer's parameters as NumPyro sites scoped under
    ``name`` (``"{name}/beta"``, ...), so two layers, or one layer called under two names, never
    collide. It returns an array of shape ``(n, units)`` where ``n`` is the number of rows of the
    inputs. Layers hold only configuration (priors and their parameters), never data or state.
    """

    def __call__(self, name: str, *inputs: ArrayLike, **options: Any) -> Array: ...


@runtime_checkable
class Link(Protocol):
    """Turns a predictor into a likelihood.

    ``link(mu, y=None, **options)`` samples the observed site (observed at ``y`` when ``y`` is
    given, drawn from the likelihood when ``y`` is ``None``) and any auxiliary sites it needs
    (e.g. ``sigma``), scoped under the observed site's name so two links in one model don't
    collide. It returns the observed (or drawn) value. ``mu`` and ``y`` whose shapes disagree raise
    a ``ValueError``; they are never broadcast against each other.
    """

    def __call__(self, mu: ArrayLike, y: ArrayLike | None = None, **options: Any) -> Array: ...


@runtime_checkable
class Loss(Protocol):
    """NumPyro's ELBO contract; ``numpyro.infer.Trace_ELBO()`` satisfies it unchanged.

    ``loss(rng_key, param_map, model, guide, *args, **kwargs)`` returns the scalar to minimise
    (the negative ELBO) for the model and guide called with ``*args, **kwargs``.
    """

    def loss(
        self,
        rng_key: Array,
        param_map: dict[str, Any],
        model: ModelFn,
        guide: GuideFn,
        *args: Any,
        **kwargs: Any,
    ) -> Array: ...


@runtime_checkable
class MinibatchLoss(Loss, Protocol):
    """A loss that rescales a minibatch's log-likelihood to the full data set.

    ``num_obs`` is the number of rows of the full data set (``None`` until the runner, which knows
    it, fills it in through :meth:`with_num_obs`). Losses that do not rescale (``Trace_ELBO``) are
    only used on full batches.
    """

    num_obs: int | None

    def with_num_obs(self, num_obs: int) -> MinibatchLoss: ...


@runtime_checkable
class GuideFactory(Protocol):
    """``factory(model, **config)`` returns a NumPyro guide for ``model`` (e.g. an autoguide)."""

    def __call__(self, model: ModelFn, **config: Any) -> GuideFn: ...


@runtime_checkable
class OptimizerFactory(Protocol):
    """``factory(learning_rate, **config)`` returns an ``optax.GradientTransformation``."""

    def __call__(self, learning_rate: Any, **config: Any) -> Any: ...


@runtime_checkable
class InferenceMethod(Protocol):
    """An inference method: ``fit(model, method=...)`` runs it.

    ``method.run(problem)`` fits ``problem.model`` to ``problem.data`` (checked by ``fit``'s dry
    run) and returns an :class:`~blayers_core.contract.inference.InferenceOutcome` holding
    posterior draws of every latent site. A method holds only its configuration (sampler
    settings, optimiser, number of steps); built by ``factory(**config)``, the factory's
    keyword parameters are the method's options, which ``fit`` checks by name.
    """

    def run(self, problem: FitProblem) -> InferenceOutcome: ...
