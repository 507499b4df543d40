r"""First-party inference methods: ``svi`` (the default), ``nuts``, ``hmc`` and ``svgd``.

Each is a frozen attrs class: its fields are the method's options (validated when it is built,
naming the argument) and ``run(problem)`` fits the model. ``fit(model, method="nuts")`` builds one
by name; ``fit(model, method=blayers_core.method("nuts", target_accept_prob=0.95))`` with options.

For a model with latents :math:`z` and data :math:`y`, every method targets the posterior

.. math::
    p(z \mid y) \propto p(z) \prod_{i=1}^{N} p(y_i \mid z)

and returns draws of :math:`z`: from the fitted guide (SVI), from Markov chains (NUTS, HMC), or
the particles themselves (SVGD).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import attrs
import numpyro.infer

from blayers_core.plugin import (
    FitProblem,
    InferenceOutcome,
    Loss,
    SVISettings,
    boolean,
    non_negative_int,
    plain_int,
    positive_int,
    positive_int_or_none,
    positive_number,
    positive_number_or_none,
    probability,
    sample_with_kernel,
    stein_variational,
    train_svi,
)

#: Learning rate of a named optimizer when ``lr`` is not given.
DEFAULT_LEARNING_RATE = 1e-2
#: SVGD's learning rate of a named optimizer when ``lr`` is not given.
SVGD_LEARNING_RATE = 5e-2


def _int(default: int | None, validator: Any) -> Any:
    """An int option: a NumPy integer becomes a Python int, then ``validator`` checks it."""
    return attrs.field(default=default, converter=plain_int, validator=validator)


# ------------------------------------------------------------------------------ component specs
def _loss(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) and not isinstance(value, Loss):
        raise TypeError(
            "loss must be a registered name such as 'batched_elbo' or an object with NumPyro's "
            f"loss(rng_key, params, model, guide, *args, **kwargs) method; got {value!r}"
        )


def _guide(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) and not callable(value):
        raise TypeError(
            "guide must be a registered name such as 'auto_normal' or a NumPyro guide callable; "
            f"got {type(value).__name__}"
        )


def _optimizer(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, str):
        return
    if not (callable(getattr(value, "init", None)) and callable(getattr(value, "update", None))):
        raise TypeError(
            f"{attribute.name} must be a registered name such as 'adam', an optax "
            f"GradientTransformation, or a numpyro.optim optimizer; got {type(value).__name__}"
        )


def _learning_rate(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None or callable(value):
        return
    positive_number(instance, attribute, value)


def _folder(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not isinstance(value, str | os.PathLike):
        raise TypeError(f"{attribute.name} must be a folder path or None, got {value!r}")


# ---------------------------------------------------------------------------------------- svi
@attrs.frozen(kw_only=True)
class SVI:
    r"""Stochastic variational inference on minibatches (the default method).

    Fits a guide :math:`q_\phi(z)` by stochastic gradient steps on the negative ELBO

    .. math::
        -\mathcal{L}(\phi) = -\mathbb{E}_{q_\phi}\Big[\log p(z)
            + \sum_{i=1}^N \log p(y_i \mid z) - \log q_\phi(z)\Big],

    estimated on a batch of rows each step (the loss scales the batch to the data: over one
    epoch the mean of the batch losses is the full-data loss, whatever the batch size). The
    result's draws come from the fitted guide.

    Args:
        loss: a loss name (``"batched_elbo"``, ``"trace_elbo"``, ...) or a loss object.
        guide: a guide name (``"auto_diagonal_normal"``, ...) or a guide built on the model.
        optimizer: an optimizer name (``"adam"``, ...) or an optax transformation.
        lr: the learning rate of a named optimizer (a number or an optax schedule); 0.01.
        batch_size: rows per step; ``None`` uses every row at every step.
        num_steps: optimisation steps; or give ``num_epochs``. Neither: 2000 steps.
        num_epochs: passes over the data.
        shuffle: reshuffle the minibatches every epoch.
        chunk_size: steps per compiled ``lax.scan`` chunk (default 500).
        checkpoint_dir: write checkpoints there (atomically, the last three kept).
        checkpoint_every: steps between checkpoints (rounded up to whole chunks); default: at
            the end and on Ctrl-C only.
        resume: continue from the newest valid checkpoint in ``checkpoint_dir``; the resumed run
            gives the same parameters, bit for bit on CPU, as an uninterrupted one.
    """

    #: What the conformance kit runs it with.
    example_config: ClassVar[dict[str, Any]] = {"num_steps": 500}

    loss: Any = attrs.field(default="batched_elbo", validator=_loss)
    guide: Any = attrs.field(default="auto_diagonal_normal", validator=_guide)
    optimizer: Any = attrs.field(default="adam", validator=_optimizer)
    lr: Any = attrs.field(default=None, validator=_learning_rate)
    batch_size: int | None = _int(None, positive_int_or_none)
    num_steps: int | None = _int(None, positive_int_or_none)
    num_epochs: int | None = _int(None, positive_int_or_none)
    shuffle: bool = attrs.field(default=True, validator=boolean)
    chunk_size: int = _int(500, positive_int)
    checkpoint_dir: str | os.PathLike[str] | None = attrs.field(default=None, validator=_folder)
    checkpoint_every: int | None = _int(None, positive_int_or_none)
    resume: bool = attrs.field(default=False, validator=boolean)

    def __attrs_post_init__(self) -> None:
        if self.num_steps is not None and self.num_epochs is not None:
            raise ValueError(
                "give exactly one of num_steps= and num_epochs= "
                f"(got num_steps={self.num_steps!r}, num_epochs={self.num_epochs!r})"
            )
        if self.lr is not None and not isinstance(self.optimizer, str):
            raise ValueError(
                "lr= configures a named optimizer only; set the rate on the optimizer object "
                "instead"
            )
        if self.resume and self.checkpoint_dir is None:
            raise ValueError("resume=True needs checkpoint_dir= (where the checkpoints are)")
        if self.checkpoint_every is not None and self.checkpoint_dir is None:
            raise ValueError("checkpoint_every= needs checkpoint_dir= (where the checkpoints go)")

    def run(self, problem: FitProblem) -> InferenceOutcome:
        """Train the guide, then draw the posterior from it."""
        options = attrs.asdict(self, recurse=False)
        options["learning_rate"] = DEFAULT_LEARNING_RATE if self.lr is None else options["lr"]
        del options["lr"]
        return train_svi(problem, SVISettings(**options))


# ----------------------------------------------------------------------------------- nuts, hmc
class _MarkovChains:
    """What NUTS and HMC share: ``num_chains`` chains of ``kernel(model)``, ``num_warmup``
    warm-up iterations each, run by the compile-once MCMC driver."""

    num_warmup: int
    num_chains: int

    def kernel(self, model: Any) -> Any:
        """The NumPyro MCMC kernel on ``model``."""
        raise NotImplementedError

    def run(self, problem: FitProblem) -> InferenceOutcome:
        """Run the chains; warn on divergences, R-hat and low effective sample sizes."""
        return sample_with_kernel(
            problem,
            kernel=self.kernel,
            kernel_key=self,
            num_warmup=self.num_warmup,
            num_chains=self.num_chains,
        )


@attrs.frozen(kw_only=True)
class NUTS(_MarkovChains):
    r"""The No-U-Turn sampler (Hoffman and Gelman, 2014) on the full data.

    Hamiltonian Monte Carlo on the potential :math:`U(z) = -\log p(z) - \sum_i \log p(y_i \mid
    z)` (latents in the unconstrained space), each trajectory doubled until it turns back on
    itself; the step size (and the mass matrix) are adapted during warm-up to reach
    ``target_accept_prob``. The sampler is compiled once per model and data shapes; chains run
    vectorized on one device and in parallel across devices.

    Args:
        num_warmup: warm-up (adaptation) iterations per chain.
        num_chains: chains.
        target_accept_prob: the step size adaptation's target acceptance probability; raise it
            (e.g. 0.95) when NUTS reports divergent transitions.
        max_tree_depth: the trajectory has at most ``2 ** max_tree_depth`` leapfrog steps.
        dense_mass: adapt a dense mass matrix (correlated posteriors) rather than a diagonal one.
    """

    #: What the conformance kit runs it with.
    example_config: ClassVar[dict[str, Any]] = {"num_warmup": 200}

    num_warmup: int = _int(1000, non_negative_int)
    num_chains: int = _int(1, positive_int)
    target_accept_prob: float = attrs.field(default=0.8, validator=probability)
    max_tree_depth: int = _int(10, positive_int)
    dense_mass: bool = attrs.field(default=False, validator=boolean)

    def kernel(self, model: Any) -> numpyro.infer.NUTS:
        """NumPyro's NUTS kernel on ``model`` with these settings."""
        return numpyro.infer.NUTS(
            model,
            target_accept_prob=self.target_accept_prob,
            max_tree_depth=self.max_tree_depth,
            dense_mass=self.dense_mass,
        )


@attrs.frozen(kw_only=True)
class HMC(_MarkovChains):
    r"""Hamiltonian Monte Carlo with a fixed trajectory (Neal, 2011) on the full data.

    Each iteration integrates Hamilton's equations for the potential :math:`U(z) = -\log p(z,
    y)` over ``trajectory_length`` (or ``num_leapfrog_steps`` steps), then accepts or rejects.
    The step size (and mass matrix) are adapted during warm-up.

    Args:
        num_warmup: warm-up iterations per chain.
        num_chains: chains.
        target_accept_prob: the step size adaptation's target acceptance probability.
        trajectory_length: integration time of one trajectory (default :math:`2\pi`).
        num_leapfrog_steps: a fixed number of leapfrog steps instead of ``trajectory_length``.
        dense_mass: adapt a dense mass matrix rather than a diagonal one.
    """

    #: What the conformance kit runs it with.
    example_config: ClassVar[dict[str, Any]] = {"num_warmup": 200}

    num_warmup: int = _int(1000, non_negative_int)
    num_chains: int = _int(1, positive_int)
    target_accept_prob: float = attrs.field(default=0.8, validator=probability)
    trajectory_length: float | None = attrs.field(default=None, validator=positive_number_or_none)
    num_leapfrog_steps: int | None = _int(None, positive_int_or_none)
    dense_mass: bool = attrs.field(default=False, validator=boolean)

    def __attrs_post_init__(self) -> None:
        if self.trajectory_length is not None and self.num_leapfrog_steps is not None:
            raise ValueError("give at most one of trajectory_length= and num_leapfrog_steps=")

    def kernel(self, model: Any) -> numpyro.infer.HMC:
        """NumPyro's HMC kernel on ``model`` with these settings."""
        length = {}
        if self.trajectory_length is not None:
            length["trajectory_length"] = float(self.trajectory_length)
        return numpyro.infer.HMC(
            model,
            target_accept_prob=self.target_accept_prob,
            num_steps=self.num_leapfrog_steps,
            dense_mass=self.dense_mass,
            **length,
        )


# ---------------------------------------------------------------------------------------- svgd
@attrs.frozen(kw_only=True)
class SVGD:
    r"""Stein variational gradient descent (Liu and Wang, 2016) on the full data.

    ``num_particles`` points :math:`z_1, \dots, z_m` move along

    .. math::
        \phi(z) = \frac{1}{m} \sum_{j=1}^m \big[k(z_j, z) \nabla_{z_j} \log p(z_j, y)
            + \nabla_{z_j} k(z_j, z)\big],

    the direction that most decreases their KL divergence to the posterior in the kernel's
    space: the first term pulls them to high density, the second keeps them apart, so they can
    cover several modes where one mean-field guide finds one. The particles are the posterior
    draws (``predict``, ``summary``, ``to_arviz`` and ``save`` use them as such).

    Args:
        num_particles: particles, i.e. posterior draws.
        num_steps: optimisation steps.
        optimizer: an optimizer name (``"adam"``, ...) or an optax transformation.
        lr: the learning rate of a named optimizer; default 0.05.
        kernel: the Stein kernel, ``"rbf"`` (median-heuristic bandwidth) or another name the
            engine supports.
    """

    #: What the conformance kit runs it with.
    example_config: ClassVar[dict[str, Any]] = {"num_particles": 20, "num_steps": 300}

    num_particles: int = _int(50, positive_int)
    num_steps: int = _int(1000, positive_int)
    optimizer: Any = attrs.field(default="adam", validator=_optimizer)
    lr: Any = attrs.field(default=None, validator=_learning_rate)
    kernel: str = attrs.field(default="rbf")

    def __attrs_post_init__(self) -> None:
        if self.lr is not None and not isinstance(self.optimizer, str):
            raise ValueError(
                "lr= configures a named optimizer only; set the rate on the optimizer object "
                "instead"
            )

    def run(self, problem: FitProblem) -> InferenceOutcome:
        """Move the particles and return them as draws."""
        return stein_variational(
            problem,
            num_particles=self.num_particles,
            num_steps=self.num_steps,
            optimizer=self.optimizer,
            learning_rate=SVGD_LEARNING_RATE if self.lr is None else self.lr,
            kernel=self.kernel,
        )


#: Registered name -> (method factory, one-line description).
METHODS = {
    "svi": (SVI, "Stochastic variational inference on minibatches (the default)."),
    "nuts": (NUTS, "The No-U-Turn sampler on the full data, compiled once."),
    "hmc": (HMC, "Hamiltonian Monte Carlo with a fixed trajectory length, compiled once."),
    "svgd": (SVGD, "Stein variational gradient descent; the particles are the draws."),
}

__all__ = ["HMC", "METHODS", "NUTS", "SVGD", "SVI"]
