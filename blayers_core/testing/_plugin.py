"""``check_plugin``: the kit on every component one installed distribution registers."""

from __future__ import annotations

import re

from blayers_core.contract.registry import Registry, get_registry
from blayers_core.testing._harness import CheckResult
from blayers_core.testing._runner import raise_on_failures, run_checks


def _normalized(name: str) -> str:
    """A distribution name as packaging compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def check_plugin(
    distribution: str, /, *, quick: bool = False, registry: Registry | None = None
) -> list[CheckResult]:
    """Run the kit on every component ``distribution`` registers; raise on any failure.

    Args:
        distribution: the distribution's name (``blayers-core`` for the first-party plugin), or
            the name of one of its plugins (entry points).
        quick: leave out the checks that fit a model.
        registry: the registry to read (default: the process-wide one).

    Returns:
        the result of every check of every component.

    Raises:
        ValueError: nothing installed has that name.
        AssertionError: a component failed a check, or one of the distribution's plugins or
            components was skipped when loading; the message lists each.
    """
    reg = get_registry() if registry is None else registry
    wanted = _normalized(distribution)

    def ours(dist: str, plugin: str) -> bool:
        return _normalized(dist) == wanted or plugin == distribution

    found = [c for c in reg.components() if ours(c.distribution, c.plugin)]
    skipped = [f for f in reg.failures() if ours(f.distribution, f.plugin)]
    if not found and not skipped:
        installed = sorted({c.distribution for c in reg.components()})
        raise ValueError(
            f"no installed distribution or plugin named {distribution!r} registers components; "
            f"installed: {', '.join(installed) or 'none'}"
        )
    results = [r for component in found for r in run_checks(component, quick=quick)]
    if skipped:
        lines = "\n".join(f"- {f.describe()}" for f in skipped)
        failed = [r.detail for r in results if r.status == "fail"]
        extra = "".join(f"\n- {d}" for d in failed)
        raise AssertionError(
            f"distribution {distribution!r}: {len(skipped)} plugin(s) or component(s) could not "
            f"be loaded:\n{lines}{extra}"
        )
    return raise_on_failures(results, f"distribution {distribution!r}")
