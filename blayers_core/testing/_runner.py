"""Running the checks: on one component (``check_layer``, ...) and on a registered one."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from blayers_core.contract.registry import Component
from blayers_core.testing._candidate import Candidate, InputsFn, TargetFn
from blayers_core.testing._catalogue import checks_for
from blayers_core.testing._harness import CheckResult


def run_checks(candidate: Candidate | Component, *, quick: bool = False) -> list[CheckResult]:
    """Every check of the component's kind, in order; never raises for what the component does.

    When the component cannot be built (the first check, ``check_component_builds``, fails) the
    other checks are reported as skipped.

    Args:
        candidate: a :class:`Candidate`, or a registered :class:`~blayers_core.Component` (built
            with the ``example_config`` its factory declares).
        quick: leave out the checks that fit a model.
    """
    if isinstance(candidate, Component):
        try:
            candidate = Candidate.from_component(candidate)
        except TypeError as exc:  # an example_config that is not a mapping
            detail = f"check_component_builds failed for {candidate.kind} {candidate.name!r}: {exc}"
            component = f"{candidate.kind}:{candidate.name}"
            return [CheckResult("check_component_builds", component, "fail", detail, 0, exc)]
    results: list[CheckResult] = []
    for check in checks_for(candidate.kind, quick=quick):
        if results and results[0].status == "fail":
            results.append(
                CheckResult(check.name, candidate.id, "skip", "the component could not be built")
            )
            continue
        results.append(check.run(candidate))
    return results


def raise_on_failures(results: Iterable[CheckResult], what: str) -> list[CheckResult]:
    """``results`` as a list; raise one ``AssertionError`` listing every failure."""
    results = list(results)
    failed = [r for r in results if r.status == "fail"]
    if failed:
        lines = "\n".join(f"- {r.detail}" for r in failed)
        error = AssertionError(f"{what} failed {len(failed)} conformance check(s):\n{lines}")
        raise error from failed[0].error
    return results


def _check(
    kind: Any,
    factory: Callable[..., Any],
    config: dict[str, Any],
    *,
    quick: bool,
    inputs: InputsFn | None = None,
    target: TargetFn | None = None,
) -> list[CheckResult]:
    candidate = Candidate(kind, factory, config, inputs=inputs, target=target)
    return raise_on_failures(run_checks(candidate, quick=quick), candidate.describe())


def check_layer(
    factory: Callable[..., Any],
    /,
    *,
    inputs: InputsFn | None = None,
    quick: bool = False,
    **config: Any,
) -> list[CheckResult]:
    """Check the layer ``factory(**config)`` builds; raise ``AssertionError`` on any failure.

    Args:
        factory: a layer class or function; ``factory(**config)`` builds the layer.
        inputs: ``inputs(n, rng)``, the layer's positional inputs for ``n`` rows (default: what
            the layer declares, see :mod:`blayers_core.testing`).
        quick: leave out the short fit.
        **config: the layer's constructor arguments.

    Returns:
        the result of every check (passed or skipped).

    Raises:
        AssertionError: listing each failed check, by name, with the component.
    """
    return _check("layer", factory, config, quick=quick, inputs=inputs)


def check_link(
    factory: Callable[..., Any],
    /,
    *,
    target: TargetFn | None = None,
    quick: bool = False,
    **config: Any,
) -> list[CheckResult]:
    """Check the link ``factory(**config)`` builds; raise ``AssertionError`` on any failure.

    Args:
        factory: a link class or function; ``factory(**config)`` builds the link.
        target: ``target(n, rng)``, ``n`` observed values the link accepts (default: the link's
            own draws, see :mod:`blayers_core.testing`).
        quick: leave out the short fit.
        **config: the link's constructor arguments.
    """
    return _check("link", factory, config, quick=quick, target=target)


def check_loss(
    factory: Callable[..., Any], /, *, quick: bool = False, **config: Any
) -> list[CheckResult]:
    """Check the loss ``factory(**config)`` builds; raise ``AssertionError`` on any failure."""
    return _check("loss", factory, config, quick=quick)


def check_guide(
    factory: Callable[..., Any], /, *, quick: bool = False, **config: Any
) -> list[CheckResult]:
    """Check the guides ``factory(model, **config)`` builds; raise ``AssertionError`` on any
    failure."""
    return _check("guide", factory, config, quick=quick)


def check_optimizer(factory: Callable[..., Any], /, **config: Any) -> list[CheckResult]:
    """Check the optax transformation ``factory(learning_rate, **config)`` builds; raise
    ``AssertionError`` on any failure."""
    return _check("optimizer", factory, config, quick=False)


def check_method(
    factory: Callable[..., Any], /, *, quick: bool = False, **config: Any
) -> list[CheckResult]:
    """Check the inference method ``factory(**config)`` builds; raise ``AssertionError`` on any
    failure. The fits run it through :func:`blayers_core.fit` on small models (give an
    ``example_config`` that makes them short and accurate enough)."""
    return _check("method", factory, config, quick=quick)
