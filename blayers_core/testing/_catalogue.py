"""Which checks apply to which kind of component, in the order they run."""

from __future__ import annotations

from blayers_core.contract._typing import COMPONENT_KINDS, ComponentKind
from blayers_core.testing import _guide_checks as guide
from blayers_core.testing import _layer_checks as layer
from blayers_core.testing import _link_checks as link
from blayers_core.testing import _loss_checks as loss
from blayers_core.testing import _method_checks as method
from blayers_core.testing import _optimizer_checks as optimizer
from blayers_core.testing._build_check import check_component_builds
from blayers_core.testing._harness import Check

#: Every check, by kind of component.
CHECKS: dict[ComponentKind, tuple[Check, ...]] = {
    "layer": (
        Check(check_component_builds, "layer"),
        Check(layer.check_layer_accepts_name_and_inputs, "layer"),
        Check(layer.check_layer_scopes_its_sites, "layer"),
        Check(layer.check_layer_output_shape, "layer"),
        Check(layer.check_layer_runs_under_jit, "layer"),
        Check(layer.check_layer_rejects_misshapen_inputs, "layer"),
        Check(layer.check_layer_is_deterministic, "layer"),
        Check(layer.check_layer_documents_its_generative_model, "layer"),
        Check(layer.check_layer_rejects_bad_config, "layer"),
        Check(layer.check_layer_fits_and_predicts, "layer", fits=True),
    ),
    "link": (
        Check(check_component_builds, "link"),
        Check(link.check_link_accepts_mu_and_y, "link"),
        Check(link.check_link_observed_site_has_a_row_dimension, "link"),
        Check(link.check_link_draws_targets_when_y_is_none, "link"),
        Check(link.check_link_scopes_its_auxiliary_sites, "link"),
        Check(link.check_link_rejects_mismatched_shapes, "link"),
        Check(link.check_link_runs_under_jit, "link"),
        Check(link.check_link_is_deterministic, "link"),
        Check(link.check_link_documents_its_generative_model, "link"),
        Check(link.check_link_rejects_bad_config, "link"),
        Check(link.check_link_fits_and_predicts, "link", fits=True),
    ),
    "loss": (
        Check(check_component_builds, "loss"),
        Check(loss.check_loss_satisfies_the_protocol, "loss"),
        Check(loss.check_loss_returns_a_finite_scalar, "loss"),
        Check(loss.check_loss_is_deterministic, "loss"),
        Check(loss.check_loss_scales_with_num_obs, "loss"),
        Check(loss.check_loss_has_a_docstring, "loss"),
        Check(loss.check_loss_rejects_bad_config, "loss"),
        Check(loss.check_loss_trains_in_a_short_fit, "loss", fits=True),
    ),
    "guide": (
        Check(check_component_builds, "guide"),
        Check(guide.check_guide_factory_builds_a_callable_guide, "guide"),
        Check(guide.check_guide_samples_every_latent_site, "guide"),
        Check(guide.check_guide_is_deterministic, "guide"),
        Check(guide.check_guide_has_a_docstring, "guide"),
        Check(guide.check_guide_trains_in_a_short_fit, "guide", fits=True),
    ),
    "optimizer": (
        Check(check_component_builds, "optimizer"),
        Check(optimizer.check_optimizer_builds_a_gradient_transformation, "optimizer"),
        Check(optimizer.check_optimizer_updates_a_pytree, "optimizer"),
        Check(optimizer.check_optimizer_decreases_a_quadratic, "optimizer"),
        Check(optimizer.check_optimizer_has_a_docstring, "optimizer"),
    ),
    "method": (
        Check(check_component_builds, "method"),
        Check(method.check_method_satisfies_the_protocol, "method"),
        Check(method.check_method_has_a_docstring, "method"),
        Check(method.check_method_rejects_bad_config, "method"),
        Check(method.check_method_draws_every_latent_site, "method", fits=True),
        Check(method.check_method_is_deterministic, "method", fits=True),
        Check(method.check_method_recovers_a_conjugate_posterior, "method", fits=True),
    ),
}


def checks_for(kind: ComponentKind, *, quick: bool = False) -> tuple[Check, ...]:
    """The checks of ``kind``, in order; ``quick=True`` leaves out those that fit a model."""
    if kind not in COMPONENT_KINDS:
        raise ValueError(f"kind must be one of {', '.join(COMPONENT_KINDS)}; got {kind!r}")
    return tuple(c for c in CHECKS[kind] if not (quick and c.fits))


def find_check(name: str) -> Check:
    """The check called ``name`` (e.g. ``check_layer_scopes_its_sites``)."""
    for checks in CHECKS.values():
        for check in checks:
            if check.name == name:
                return check
    known = sorted(c.name for checks in CHECKS.values() for c in checks)
    raise KeyError(f"no check named {name!r}; the checks are: {', '.join(known)}")
