r"""The conformance kit (blayers_core.testing): every first-party component passes it, and each
check fails, naming itself and the component, on a component written to break it.

The broken components below differ from :class:`GoodLayer` / :class:`GoodLink` (which pass every
check) in one way each; ``test_every_check_has_a_broken_component`` keeps the table complete.
"""

from __future__ import annotations

import itertools
from typing import Any

import attrs
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
import pytest
from helpers import FakeSite
from numpyro.handlers import scope
from numpyro.infer import Trace_ELBO

from blayers_core import Component, align_to_target, components, layer_input
from blayers_core.plugin import InferenceOutcome, SVISettings, train_svi
from blayers_core.testing import (
    CHECKS,
    Candidate,
    check_layer,
    check_link,
    check_loss,
    check_optimizer,
    check_plugin,
    default_layer_inputs,
    find_check,
    parametrize_with_checks,
    run_checks,
)
from blayers_plugins import Batched_Trace_ELBO
from blayers_plugins.layers import (
    EmbeddingLayer,
    FMLayer,
    InteractionLayer,
    LowRankInteractionLayer,
    RandomEffectsLayer,
)
from blayers_plugins.links import GaussianLink, StudentTLink

# ------------------------------------------------------------- every first-party component

FIRST_PARTY = [c for c in components() if c.first_party]

#: Configurations beyond the registered defaults: codes, weights, a second input, options.
VARIANTS = [
    Candidate(
        "layer",
        FMLayer,
        {"low_rank_dim": 2, "num_categories": (3, 4), "weighted": True},
        label="fm_codes_weighted",
    ),
    Candidate(
        "layer", EmbeddingLayer, {"num_categories": 5, "weighted": True}, label="embedding_w"
    ),
    Candidate(
        "layer",
        LowRankInteractionLayer,
        {"low_rank_dim": 2, "x_num_categories": 4, "z_num_categories": (2, 3)},
        label="lowrank_codes",
    ),
    Candidate("layer", InteractionLayer, {"with_second_input": True}, label="interaction_xz"),
    Candidate(
        "layer", RandomEffectsLayer, {"num_categories": 3, "noncentered": True}, label="re_nc"
    ),
    Candidate("link", GaussianLink, {"scale": 0.5}, label="gaussian_known_scale"),
    Candidate("link", StudentTLink, {"df_prior": dist.Gamma(2.0, 0.1)}, label="student_t_df"),
]


@parametrize_with_checks(FIRST_PARTY + VARIANTS, fit_marks=pytest.mark.slow)
def test_first_party_component_passes_the_kit(component, check) -> None:
    check(component)


# ---------------------------------------------------------------------- helper components


def _positive(instance: Any, attribute: Any, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"{attribute.name} must be a positive number, got {value!r}")


def _positive_if_number(instance: Any, attribute: Any, value: Any) -> None:
    """Too lax: anything that is not a number gets through."""
    if isinstance(value, int | float) and value <= 0:
        raise ValueError(f"{attribute.name} must be positive")


def _site_name(instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, str) or not value or "/" in value:
        raise ValueError(f"{attribute.name} must be a site name, got {value!r}")


@attrs.frozen
class GoodLayer:
    r"""Linear layer with a fixed normal prior.

    .. math::
        \beta_{jc} \sim \mathcal{N}(0, \text{scale}) \;(d, u), \qquad \text{out} = x\beta \;(n, u)
    """

    scale: float = attrs.field(default=1.0, validator=_positive)

    def coefficients(self, x: Any, units: int) -> Any:
        prior = dist.Normal(0.0, self.scale).expand([x.shape[1], units]).to_event(2)
        return numpyro.sample("beta", prior)

    def __call__(self, name: str, x: Any, units: int = 1) -> Any:
        x = layer_input(name, "x", x)
        with scope(prefix=name):
            beta = self.coefficients(x, units)
        return x @ beta


@attrs.frozen
class GoodLink:
    r"""Gaussian likelihood with a learned scale.

    .. math::
        \sigma \sim \text{HalfNormal}(1), \qquad y_i \sim \mathcal{N}(\mu_i, \sigma) \;(n,)
    """

    name: str = attrs.field(default="obs", validator=_site_name)

    def __call__(self, mu: Any, y: Any = None) -> Any:
        mu, y = align_to_target(self.name, mu, y)
        with scope(prefix=self.name):
            sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
        return numpyro.sample(self.name, dist.Normal(mu, sigma), obs=y)


def exploding(**config: Any) -> Any:
    """A factory that cannot build anything."""
    raise RuntimeError("boom")


# ------------------------------------------------------------------------- broken layers


@attrs.frozen
class LeakyLayer(GoodLayer):
    """beta ~ Normal(0, 1), but one site is not scoped under the layer's name."""

    def __call__(self, name: str, x: Any, units: int = 1) -> Any:
        numpyro.sample("leak", dist.Normal(0.0, 1.0))
        return super().__call__(name, x, units)


@attrs.frozen
class FlatLayer(GoodLayer):
    """beta ~ Normal(0, 1); returns (n,) instead of (n, units)."""

    def __call__(self, name: str, x: Any, units: int = 1) -> Any:
        return super().__call__(name, x, units)[:, 0]


@attrs.frozen
class BranchingLayer(GoodLayer):
    """beta ~ Normal(0, 1), with a Python `if` on a traced value."""

    def __call__(self, name: str, x: Any, units: int = 1) -> Any:
        out = super().__call__(name, x, units)
        return out if float(jnp.sum(x)) > -1e9 else -out


@attrs.frozen
class BroadcastingLayer:
    """beta ~ Normal(0, 1) on x * z, broadcast whatever their shapes."""

    input_names = ("x", "z")

    def __call__(self, name: str, x: Any, z: Any, units: int = 1) -> Any:
        xz = jnp.atleast_2d(jnp.asarray(x, float)) * jnp.atleast_2d(jnp.asarray(z, float))
        with scope(prefix=name):
            beta = numpyro.sample("beta", dist.Normal(0.0, 1.0).expand([xz.shape[1], units]))
        return xz @ beta


_HIDDEN_CALLS = itertools.count()


@attrs.frozen
class NumpyRandomLayer(GoodLayer):
    """beta ~ Normal(0, 1), plus noise from hidden state: NumPy's global generator and a call
    counter (which makes every call differ by at least 1, so the failures never depend on luck)."""

    def __call__(self, name: str, x: Any, units: int = 1) -> Any:
        noise = np.random.uniform(0.0, 1.0) + next(_HIDDEN_CALLS)
        return super().__call__(name, x, units) + noise


@attrs.frozen
class UndocumentedLayer(GoodLayer):
    pass


UndocumentedLayer.__doc__ = None


@attrs.frozen
class LaxLayer(GoodLayer):
    """beta ~ Normal(0, scale), whose validator lets a non-number through."""

    scale: float = attrs.field(default=1.0, validator=_positive_if_number)


class NoInputsLayer:
    """beta ~ Normal(0, 1), but the call takes no inputs."""

    def __call__(self, name: str) -> Any:
        return numpyro.sample(f"{name}/beta", dist.Normal(0.0, 1.0))


@attrs.frozen
class DiscreteLayer(GoodLayer):
    """beta ~ Normal(0, 1) times a Bernoulli switch: SVI's guides cannot fit a discrete site."""

    def __call__(self, name: str, x: Any, units: int = 1) -> Any:
        with scope(prefix=name):
            switch = numpyro.sample("switch", dist.Bernoulli(0.5))
        return super().__call__(name, x, units) * switch


# -------------------------------------------------------------------------- broken links


@attrs.frozen
class ObservedOnlyLink(GoodLink):
    """y ~ Normal(mu, 1) as a factor: nothing is drawn when y is None."""

    def __call__(self, mu: Any, y: Any = None) -> Any:
        mu, y = align_to_target(self.name, mu, y)
        numpyro.factor(self.name, dist.Normal(mu, 1.0).log_prob(jnp.asarray(y)).sum())
        return y


@attrs.frozen
class EventRowsLink(GoodLink):
    """y ~ Normal(mu, 1), with the rows declared an event dimension."""

    def __call__(self, mu: Any, y: Any = None) -> Any:
        mu, y = align_to_target(self.name, mu, y)
        return numpyro.sample(self.name, dist.Normal(mu, 1.0).to_event(1), obs=y)


@attrs.frozen
class UnscopedLink(GoodLink):
    """sigma ~ HalfNormal(1) at an unscoped site, y ~ Normal(mu, sigma)."""

    def __call__(self, mu: Any, y: Any = None) -> Any:
        mu, y = align_to_target(self.name, mu, y)
        sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
        return numpyro.sample(self.name, dist.Normal(mu, sigma), obs=y)


@attrs.frozen
class BroadcastingLink(GoodLink):
    """y ~ Normal(mu, 1), mu and y broadcast against each other."""

    def __call__(self, mu: Any, y: Any = None) -> Any:
        mu = jnp.asarray(mu)[:, 0]
        return numpyro.sample(self.name, dist.Normal(mu, 1.0), obs=y)


@attrs.frozen
class BranchingLink(GoodLink):
    """y ~ Normal(mu, 1), with a Python `if` on a traced value."""

    def __call__(self, mu: Any, y: Any = None) -> Any:
        mu, y = align_to_target(self.name, mu, y)
        scale = 1.0 if float(jnp.mean(mu)) < 1e9 else 2.0
        return numpyro.sample(self.name, dist.Normal(mu, scale), obs=y)


@attrs.frozen
class NumpyRandomLink(GoodLink):
    """y ~ Normal(mu + noise, 1), the noise from NumPy's global generator."""

    def __call__(self, mu: Any, y: Any = None) -> Any:
        return super().__call__(jnp.asarray(mu) + np.random.normal(), y)


@attrs.frozen
class UndocumentedLink(GoodLink):
    pass


UndocumentedLink.__doc__ = None


def _lax_name(instance: Any, attribute: Any, value: Any) -> None:
    if isinstance(value, str) and "/" in value:
        raise ValueError(f"{attribute.name} must not contain '/'")


@attrs.frozen
class LaxLink(GoodLink):
    """sigma ~ HalfNormal(1), y ~ Normal(mu, sigma); its name's validator lets a non-str through."""

    name: str = attrs.field(default="obs", validator=_lax_name)


class MuOnlyLink:
    """y ~ Normal(mu, 1), but the call takes no target."""

    def __call__(self, mu: Any) -> Any:
        return numpyro.sample("obs", dist.Normal(jnp.asarray(mu)[:, 0], 1.0))


@attrs.frozen
class DiscreteLink(GoodLink):
    """y ~ Normal(mu + k, 1) with k ~ Bernoulli(0.5): SVI's guides cannot fit a discrete site."""

    def __call__(self, mu: Any, y: Any = None) -> Any:
        with scope(prefix=self.name):
            k = numpyro.sample("k", dist.Bernoulli(0.5))
        return super().__call__(jnp.asarray(mu) + k, y)


# ------------------------------------------------------------------------- broken losses


class VectorLoss(Trace_ELBO):
    """The ELBO, returned once per row instead of as a scalar."""

    def loss(self, rng_key, param_map, model, guide, *args, **kwargs):
        return jnp.ones(3) * super().loss(rng_key, param_map, model, guide, *args, **kwargs)


class NotALoss:
    """Callable, but without NumPyro's loss() method."""

    def __call__(self, *args: Any) -> Any:
        return 0.0


class MutatingMinibatchLoss(Batched_Trace_ELBO):
    """The minibatch ELBO, but with_num_obs changes the loss it is called on."""

    def with_num_obs(self, num_obs: int) -> Any:
        self.num_obs = num_obs
        return self


class NoisyLoss(Trace_ELBO):
    """The ELBO plus noise from NumPy's global generator."""

    def loss(self, rng_key, param_map, model, guide, *args, **kwargs):
        value = super().loss(rng_key, param_map, model, guide, *args, **kwargs)
        return value + np.random.normal()


class NaNLoss(Trace_ELBO):
    """Not a number, whatever the parameters."""

    def loss(self, rng_key, param_map, model, guide, *args, **kwargs):
        return jnp.nan * super().loss(rng_key, param_map, model, guide, *args, **kwargs)


class UndocumentedLoss(Trace_ELBO):
    pass


UndocumentedLoss.__doc__ = None


@attrs.frozen
class LaxLoss:
    """The ELBO with num_particles draws; its validator lets a non-number through."""

    num_particles: int = attrs.field(default=1, validator=_positive_if_number)

    def loss(self, rng_key, param_map, model, guide, *args, **kwargs):
        elbo = Trace_ELBO(num_particles=self.num_particles)
        return elbo.loss(rng_key, param_map, model, guide, *args, **kwargs)


# ------------------------------------------------------------------------- broken guides


def _normal_guide(model: Any, loc: Any = 0.0, sites: tuple[str, ...] = ("a", "b")) -> Any:
    def guide(*args: Any, **kwargs: Any) -> None:
        for site in sites:
            numpyro.sample(site, dist.LogNormal(loc, 1.0))

    return guide


def not_a_guide(model: Any) -> Any:
    """Returns a number."""
    return 3


def partial_guide(model: Any) -> Any:
    """Samples only the site a."""
    return _normal_guide(model, sites=("a",))


def noisy_guide(model: Any) -> Any:
    """Samples around noise from NumPy's global generator."""

    def guide(*args: Any, **kwargs: Any) -> None:
        for site in ("a", "b"):
            numpyro.sample(site, dist.LogNormal(np.random.normal(), 1.0))

    return guide


def nan_guide(model: Any) -> Any:
    """Draws NaN for every site."""
    return _normal_guide(model, loc=jnp.nan)


def undocumented_guide(model: Any) -> Any:
    return _normal_guide(model)


undocumented_guide.__doc__ = None


# ------------------------------------------------------------------------ broken methods


class NoRunMethod:
    """A method without run(problem)."""


class UndocumentedMethod:
    def run(self, problem):
        return train_svi(problem, SVISettings(num_steps=5))


@attrs.frozen
class LaxMethod:
    """SVI for num_steps steps; its validator lets a non-number through."""

    num_steps: int = attrs.field(default=5, validator=_positive_if_number)

    def run(self, problem):
        return train_svi(problem, SVISettings(num_steps=5))


class SiteDroppingMethod:
    """SVI that forgets the draws of every site but the first."""

    def run(self, problem):
        outcome = train_svi(problem, SVISettings(num_steps=5))
        first = sorted(outcome.posterior_samples)[0]
        return attrs.evolve(outcome, posterior_samples={first: outcome.posterior_samples[first]})


class UnseededMethod:
    """Draws from the prior with NumPy's global generator, whatever the seed."""

    def run(self, problem):
        draws = {"a": np.random.normal(size=50), "b": np.abs(np.random.normal(size=50))}
        return InferenceOutcome(posterior_samples=draws)


class UntrainedMethod:
    """One SVI step: the draws are those of the guide's initialisation, not the posterior."""

    def run(self, problem):
        return train_svi(problem, SVISettings(num_steps=1))


# --------------------------------------------------------------------- broken optimizers


def diverging(learning_rate: float) -> optax.GradientTransformation:
    """Steps up the gradient."""
    return optax.sgd(-learning_rate)


def no_init(learning_rate: float) -> Any:
    """An object with update() but no init()."""

    class UpdateOnly:
        def update(self, grads: Any, state: Any, params: Any = None) -> Any:
            return grads, state

    return UpdateOnly()


def leaves_only(learning_rate: float) -> optax.GradientTransformation:
    """Returns the updates as a flat list, not shaped like the parameters."""
    sgd = optax.sgd(learning_rate)

    def update(grads: Any, state: Any, params: Any = None) -> Any:
        updates, state = sgd.update(grads, state, params)
        return jax.tree_util.tree_leaves(updates), state

    return optax.GradientTransformation(sgd.init, update)


def undocumented_optimizer(learning_rate: float) -> optax.GradientTransformation:
    return optax.sgd(learning_rate)


undocumented_optimizer.__doc__ = None


# ------------------------------------------------------------------- each check breaks

#: check name -> (kind, broken factory), the factory built without arguments.
BROKEN: list[tuple[str, str, Any]] = [
    ("check_component_builds", "layer", exploding),
    ("check_layer_accepts_name_and_inputs", "layer", NoInputsLayer),
    ("check_layer_scopes_its_sites", "layer", LeakyLayer),
    ("check_layer_output_shape", "layer", FlatLayer),
    ("check_layer_runs_under_jit", "layer", BranchingLayer),
    ("check_layer_rejects_misshapen_inputs", "layer", BroadcastingLayer),
    ("check_layer_is_deterministic", "layer", NumpyRandomLayer),
    ("check_layer_documents_its_generative_model", "layer", UndocumentedLayer),
    ("check_layer_rejects_bad_config", "layer", LaxLayer),
    ("check_layer_fits_and_predicts", "layer", DiscreteLayer),
    ("check_link_accepts_mu_and_y", "link", MuOnlyLink),
    ("check_link_observed_site_has_a_row_dimension", "link", EventRowsLink),
    ("check_link_draws_targets_when_y_is_none", "link", ObservedOnlyLink),
    ("check_link_scopes_its_auxiliary_sites", "link", UnscopedLink),
    ("check_link_rejects_mismatched_shapes", "link", BroadcastingLink),
    ("check_link_runs_under_jit", "link", BranchingLink),
    ("check_link_is_deterministic", "link", NumpyRandomLink),
    ("check_link_documents_its_generative_model", "link", UndocumentedLink),
    ("check_link_rejects_bad_config", "link", LaxLink),
    ("check_link_fits_and_predicts", "link", DiscreteLink),
    ("check_loss_satisfies_the_protocol", "loss", NotALoss),
    ("check_loss_returns_a_finite_scalar", "loss", VectorLoss),
    ("check_loss_is_deterministic", "loss", NoisyLoss),
    ("check_loss_scales_with_num_obs", "loss", MutatingMinibatchLoss),
    ("check_loss_has_a_docstring", "loss", UndocumentedLoss),
    ("check_loss_rejects_bad_config", "loss", LaxLoss),
    ("check_loss_trains_in_a_short_fit", "loss", NaNLoss),
    ("check_guide_factory_builds_a_callable_guide", "guide", not_a_guide),
    ("check_guide_samples_every_latent_site", "guide", partial_guide),
    ("check_guide_is_deterministic", "guide", noisy_guide),
    ("check_guide_has_a_docstring", "guide", undocumented_guide),
    ("check_guide_trains_in_a_short_fit", "guide", nan_guide),
    ("check_optimizer_builds_a_gradient_transformation", "optimizer", no_init),
    ("check_optimizer_updates_a_pytree", "optimizer", leaves_only),
    ("check_optimizer_decreases_a_quadratic", "optimizer", diverging),
    ("check_optimizer_has_a_docstring", "optimizer", undocumented_optimizer),
    ("check_method_satisfies_the_protocol", "method", NoRunMethod),
    ("check_method_has_a_docstring", "method", UndocumentedMethod),
    ("check_method_rejects_bad_config", "method", LaxMethod),
    ("check_method_draws_every_latent_site", "method", SiteDroppingMethod),
    ("check_method_is_deterministic", "method", UnseededMethod),
    ("check_method_recovers_a_conjugate_posterior", "method", UntrainedMethod),
]

#: A target for the links whose own y=None path is what is broken.
_TARGETS = {ObservedOnlyLink: lambda n, rng: rng.normal(size=n).astype(np.float32)}


def _broken_params() -> list[Any]:
    params = []
    for name, kind, factory in BROKEN:
        marks = [pytest.mark.slow] if find_check(name).fits else []
        params.append(
            pytest.param(name, kind, factory, id=f"{name}-{factory.__name__}", marks=marks)
        )
    return params


@pytest.mark.parametrize(("check_name", "kind", "factory"), _broken_params())
@pytest.mark.filterwarnings("ignore:Some algorithms will automatically enumerate:FutureWarning")
def test_each_check_fails_on_a_component_that_breaks_it(check_name, kind, factory) -> None:
    candidate = Candidate(kind, factory, label=f"broken_{kind}", target=_TARGETS.get(factory))
    with pytest.raises(AssertionError) as failure:
        find_check(check_name)(candidate)
    message = str(failure.value)
    assert check_name in message
    assert f"{kind} 'broken_{kind}'" in message


def test_every_check_has_a_broken_component() -> None:
    every = {check.name for checks in CHECKS.values() for check in checks}
    assert every == {name for name, _, _ in BROKEN}


@pytest.mark.parametrize(
    ("kind", "factory"), [("layer", GoodLayer), ("layer", BroadcastingLayer), ("link", GoodLink)]
)
def test_the_reference_components_fail_only_where_they_are_meant_to(kind, factory) -> None:
    failed = [r.check for r in run_checks(Candidate(kind, factory), quick=True) if not r.passed]
    expected = ["check_layer_rejects_misshapen_inputs"] if factory is BroadcastingLayer else []
    assert failed == expected


# ---------------------------------------------------------------------------- the public API


def test_check_layer_raises_one_error_listing_every_failed_check() -> None:
    assert check_layer(GoodLayer, quick=True, scale=2.0)
    with pytest.raises(AssertionError) as failure:
        check_layer(NumpyRandomLayer, quick=True)
    message = str(failure.value)
    assert message.startswith("layer 'NumpyRandomLayer' failed 2 conformance check(s):")
    assert "- check_layer_runs_under_jit failed for layer 'NumpyRandomLayer'" in message
    assert "- check_layer_is_deterministic failed for layer 'NumpyRandomLayer'" in message


def test_check_layer_takes_inputs_and_check_link_a_target() -> None:
    def two_columns(n: int, rng: np.random.Generator) -> tuple[np.ndarray]:
        return (rng.normal(size=(n, 2)).astype(np.float32),)

    results = check_layer(GoodLayer, inputs=two_columns, quick=True)
    assert {r.status for r in results} == {"pass"}
    with pytest.raises(AssertionError, match="check_link_draws_targets_when_y_is_none"):
        check_link(ObservedOnlyLink, target=_TARGETS[ObservedOnlyLink], quick=True)


def test_check_loss_and_check_optimizer_on_first_party_factories() -> None:
    results = check_loss(Trace_ELBO, quick=True)
    skipped = {r.check for r in results if r.status == "skip"}
    assert skipped == {"check_loss_scales_with_num_obs", "check_loss_rejects_bad_config"}
    assert check_optimizer(optax.adam, b1=0.8)
    with pytest.raises(AssertionError, match="check_optimizer_decreases_a_quadratic"):
        check_optimizer(diverging)


def test_default_inputs_follow_the_declared_names_and_categories() -> None:
    rng = np.random.default_rng(0)
    fm = FMLayer(low_rank_dim=2, num_categories=(3, 4), weighted=True)
    codes, weights = default_layer_inputs(fm, 5, rng)
    assert codes.shape == (5, 2) and codes.dtype == np.int32
    assert (codes[:, 0] < 3).all() and (codes[:, 1] < 4).all()
    assert weights.shape == (5, 2) and weights.dtype == np.float32
    lowrank = LowRankInteractionLayer(low_rank_dim=2, z_num_categories=6)
    x, z = default_layer_inputs(lowrank, 4, rng)
    assert x.shape == (4, 3) and x.dtype == np.float32 and np.abs(x).max() <= 1.0
    assert z.shape == (4, 1) and z.dtype == np.int32
    (x,) = default_layer_inputs(GoodLayer(), 2, rng)
    assert x.shape == (2, 3)


def test_parametrize_with_checks_makes_one_test_per_component_and_check() -> None:
    mark = parametrize_with_checks(
        [("layer", GoodLayer), ("optimizer", optax.sgd)], fit_marks=pytest.mark.slow
    )
    assert mark.args[0] == ("component", "check")
    ids = [p.id for p in mark.args[1]]
    assert ids[:3] == [
        "layer:GoodLayer-check_component_builds",
        "layer:GoodLayer-check_layer_accepts_name_and_inputs",
        "layer:GoodLayer-check_layer_scopes_its_sites",
    ]
    assert "optimizer:sgd-check_optimizer_decreases_a_quadratic" in ids
    slow = [p.id for p in mark.args[1] if p.marks]
    assert slow == ["layer:GoodLayer-check_layer_fits_and_predicts"]
    quick = parametrize_with_checks([("layer", GoodLayer)], quick=True)
    assert [p.id for p in quick.args[1]] == [i for i in ids if i.startswith("layer:")][:-1]


# ---------------------------------------------------------------------------- check_plugin

GOOD_PLUGIN = r'''
import attrs
import numpyro
import numpyro.distributions as dist
from numpyro.handlers import scope
from blayers_core.plugin import hookimpl, layer_input

@attrs.frozen
class Scaled:
    r"""Linear layer with coefficients of a given scale.

    .. math::
        \beta \sim \mathcal{N}(0, \text{factor}) \;(d, u), \qquad \text{out} = x\beta \;(n, u)
    """

    example_config = {"factor": 2.0}
    factor: float = attrs.field(validator=attrs.validators.instance_of(float))

    def __call__(self, name, x, units=1):
        x = layer_input(name, "x", x)
        with scope(prefix=name):
            prior = dist.Normal(0.0, self.factor).expand([x.shape[1], units]).to_event(2)
            beta = numpyro.sample("beta", prior)
        return x @ beta

@hookimpl
def register_layers(register):
    register("scaled", Scaled)
'''

BAD_PLUGIN = '''
import numpyro
import numpyro.distributions as dist
from blayers_core.plugin import hookimpl

class Leaky:
    """beta ~ Normal(0, 1) at an unscoped site."""

    def __call__(self, name, x, units=1):
        beta = numpyro.sample("beta", dist.Normal(0.0, 1.0).expand([x.shape[1], units]))
        return x @ beta

@hookimpl
def register_layers(register):
    register("leaky", Leaky)
'''


def test_check_plugin_runs_the_kit_on_every_component_of_a_distribution(
    tmp_path, monkeypatch
) -> None:
    site = FakeSite(tmp_path, monkeypatch)
    site.add("good-plugin", {"good": GOOD_PLUGIN})
    site.add("bad-plugin", {"bad": BAD_PLUGIN})
    registry = site.registry()
    results = check_plugin("Good_Plugin", quick=True, registry=registry)
    assert {r.component for r in results} == {"layer:scaled"}
    assert all(r.passed for r in results)
    with pytest.raises(AssertionError) as failure:
        check_plugin("bad-plugin", quick=True, registry=registry)
    message = str(failure.value)
    assert "check_layer_scopes_its_sites failed for layer 'leaky' (bad:leaky)" in message
    with pytest.raises(ValueError, match="installed: bad-plugin, good-plugin"):
        check_plugin("no-such-plugin", registry=registry)


class OddConfigLayer(GoodLayer):
    """beta ~ Normal(0, 1), declaring an example_config that is not a mapping."""

    example_config = 3


def test_a_registered_component_with_a_bad_example_config_fails_to_build() -> None:
    component = Component("layer", "odd", "p", "d", "1.0", OddConfigLayer, "", False)
    (result,) = run_checks(component)
    assert result.status == "fail" and result.component == "layer:odd"
    assert "check_component_builds failed for layer 'odd'" in result.detail
    assert "example_config must be a mapping" in result.detail
