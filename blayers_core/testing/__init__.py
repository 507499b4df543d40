r"""The conformance kit: checks that a layer, link, loss, guide, optimizer or inference method
keeps its contract.

In the spirit of scikit-learn's ``check_estimator``: each check is a small function, named after
what it checks, that *calls* the component on a few rows of example data under a fixed PRNG key
(``numpyro.handlers.seed`` and ``trace``) and raises ``AssertionError`` naming the check and the
component when the contract is broken. The kit checks any object that satisfies the protocols of
``blayers_core.contract.protocols`` (:class:`~blayers_core.Layer`,
:class:`~blayers_core.Link`, :class:`~blayers_core.Loss`, ...), first-party or not::

    from blayers_core.testing import check_layer, check_link, check_plugin

    check_layer(MyLayer, df=3.0)        # MyLayer(df=3.0) must pass every layer check
    check_link(MyLink)
    check_plugin("my-blayers-plugin")   # every component the distribution registers

and in a plugin's test suite, one test per component and check::

    from blayers_core import components
    from blayers_core.testing import parametrize_with_checks

    @parametrize_with_checks([c for c in components() if c.distribution == "my-plugin"])
    def test_conformance(component, check):
        check(component)

``blayers doctor`` runs the same kit on every installed component.

The checks
----------
Every kind starts with ``check_component_builds``: the factory builds the component from its
configuration (the other checks are skipped when it does not).

Layers, called as ``layer("probe", *inputs, units=u)``:

* ``check_layer_accepts_name_and_inputs``: the call signature takes ``(name, *inputs, units=)``;
* ``check_layer_scopes_its_sites``: every site is ``probe/...``; called under two names in one
  model, the calls sample the same sites, each under its own name;
* ``check_layer_output_shape``: a finite ``(n, units)`` output for ``n`` = 1, 3, 7 and
  ``units`` = 1, 2;
* ``check_layer_runs_under_jit``: ``jax.jit`` gives the eager output;
* ``check_layer_rejects_misshapen_inputs``: a scalar input, or (with several inputs) inputs
  whose row counts differ, raise ``ValueError`` or ``TypeError`` instead of broadcasting;
* ``check_layer_is_deterministic``: the same key gives the same sites and output;
* ``check_layer_documents_its_generative_model`` and ``check_layer_rejects_bad_config``: see
  below;
* ``check_layer_fits_and_predicts`` (fits): a minibatch :func:`~blayers_core.fit` of the layer
  under a Gaussian likelihood (8 rows, batches of 4, 4 steps), then ``predict`` on 5 new rows
  gives finite ``(5,)`` means and sds.

Links, called as ``link(mu, y)`` and ``link(mu)``:

* ``check_link_accepts_mu_and_y``;
* ``check_link_observed_site_has_a_row_dimension``: exactly one observed site, whose leading
  batch dimension is the rows (a minibatch loss rescales by it);
* ``check_link_draws_targets_when_y_is_none``: ``link(mu)`` draws and returns ``(n,)`` values;
* ``check_link_scopes_its_auxiliary_sites``: every other site is ``<observed name>/...``;
* ``check_link_rejects_mismatched_shapes``: a predictor and a target with different row
  counts raise instead of broadcasting;
* ``check_link_runs_under_jit`` and ``check_link_is_deterministic``: for the draws and the log
  density;
* ``check_link_documents_its_generative_model`` and ``check_link_rejects_bad_config``;
* ``check_link_fits_and_predicts`` (fits): a linear predictor through the link, fitted and
  predicted as for layers.

Losses (on a tiny model ``a ~ Normal(0, 1)``, ``b ~ HalfNormal(1)``, ``y_i ~ Normal(a, b)`` and a
hand-written guide): ``check_loss_satisfies_the_protocol``,
``check_loss_returns_a_finite_scalar``, ``check_loss_is_deterministic``,
``check_loss_scales_with_num_obs`` (minibatch losses: ``with_num_obs`` returns a new loss whose
value changes by equal steps as ``num_obs`` grows), ``check_loss_has_a_docstring``,
``check_loss_rejects_bad_config`` and ``check_loss_trains_in_a_short_fit`` (fits).

Guides (built as ``factory(model)`` on the tiny model):
``check_guide_factory_builds_a_callable_guide``, ``check_guide_samples_every_latent_site``,
``check_guide_is_deterministic``, ``check_guide_has_a_docstring`` and
``check_guide_trains_in_a_short_fit`` (fits).

Optimizers (built as ``factory(0.05)``): ``check_optimizer_builds_a_gradient_transformation``,
``check_optimizer_updates_a_pytree``, ``check_optimizer_decreases_a_quadratic`` (20 jitted
steps on ``sum(p**2)`` lower it by 10%) and ``check_optimizer_has_a_docstring``.

Inference methods (built as ``factory(**config)``, run through :func:`~blayers_core.fit`):
``check_method_satisfies_the_protocol`` (``run(problem)``), ``check_method_has_a_docstring``,
``check_method_rejects_bad_config``, ``check_method_draws_every_latent_site`` (fits: finite
draws of both sites of the tiny model, the positive one positive),
``check_method_is_deterministic`` (fits) and ``check_method_recovers_a_conjugate_posterior``
(fits: on ``mu ~ N(0, 1)``, ``y_i ~ N(mu, 1)``, 20 rows, the draws' mean within half a
posterior sd of the closed form and their sd within a factor 2; ``predict`` works).

``quick=True`` (``blayers doctor --quick``) leaves out the checks marked "fits".

Documentation rule
------------------
The factory's own docstring (a ``functools.partial`` is unwrapped) must exist; for a layer or a
link it must state the generative model: a ``.. math::`` block, a ``\sim``, or a sampling
statement such as ``beta ~ Normal(0, 1)`` (a ``~`` with spaces around it).

Bad configuration
-----------------
For a factory that is an attrs class, every constructor argument with a validator or converter
is given a value of the wrong type (unless annotated ``Any``), which must raise an error whose
message names the argument; an argument annotated ``int`` is also given 0 and -1, which may be
accepted but, if refused, must be refused by name. Other factories and arguments are skipped:
the kit cannot tell a bad value from a good one.

How a component declares its example data
-----------------------------------------
The kit reads these optional attributes, all with defaults, from the factory (configuration) or
from the built component (data):

``example_config``
    A mapping of constructor arguments that build a valid component, on the factory (a class
    attribute): e.g. ``example_config = {"num_categories": 4}``. :func:`check_plugin`,
    ``blayers doctor`` and :class:`Candidate.from_component <Candidate>` build registered
    components with it; without it they call ``factory()``.

``input_names`` (layers)
    The names of the layer's positional inputs, default ``("x",)``; one input is made for each.

``example_inputs(n, rng)`` (layers)
    The layer's positional inputs for ``n`` rows, drawn from the NumPy generator ``rng``. When
    absent each input is made from its name:

    * integer codes ``(n, f)``, when the layer has ``<name>_num_categories``, or has
      ``num_categories`` and ``name`` is in its ``index_names`` (default ``("x",)``), not
      ``None``: one column per entry of a tuple of category counts, one column for an int;
    * weights in ``[0.5, 1.5)`` of the codes' shape, for a name ending in ``values`` after codes;
    * otherwise a dense float32 matrix ``(n, example_columns)`` (default 3 columns) with values
      in ``[-1, 1]``.

``example_units`` (links)
    The columns of the predictor ``mu`` the link takes, default 1 (``(n, 1)``, as a layer with
    ``units=1`` returns); e.g. ``K`` for a categorical link's logits.

``example_target(n, rng)`` (links)
    ``n`` observed values the link accepts. When absent the kit draws them from the link itself,
    ``link(mu)`` under a few fixed keys, keeping the first draw whose log density is finite
    when observed.

:func:`check_layer` and :func:`check_link` also take ``inputs=`` and ``target=`` callables of
the same form, which win over the declarations. So the names ``inputs``, ``target`` and
``quick`` are the kit's, not passed on to the factory.
"""

from blayers_core.testing._candidate import Candidate
from blayers_core.testing._catalogue import CHECKS, checks_for, find_check
from blayers_core.testing._examples import default_layer_inputs
from blayers_core.testing._harness import Check, CheckResult, SkipCheck
from blayers_core.testing._plugin import check_plugin
from blayers_core.testing._pytest import parametrize_with_checks
from blayers_core.testing._runner import (
    check_guide,
    check_layer,
    check_link,
    check_loss,
    check_method,
    check_optimizer,
    run_checks,
)

__all__ = [
    "CHECKS",
    "Candidate",
    "Check",
    "CheckResult",
    "SkipCheck",
    "check_guide",
    "check_layer",
    "check_link",
    "check_loss",
    "check_method",
    "check_optimizer",
    "check_plugin",
    "checks_for",
    "default_layer_inputs",
    "find_check",
    "parametrize_with_checks",
    "run_checks",
]
