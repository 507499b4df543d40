"""``parametrize_with_checks``: one pytest test per component and check.

pytest is imported only when the helper is called: it is a test dependency, not a runtime one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from blayers_core.contract.registry import Component
from blayers_core.testing._candidate import Candidate
from blayers_core.testing._catalogue import checks_for
from blayers_core.testing._harness import Check, SkipCheck


class _PytestCheck:
    """A check that turns "does not apply" into ``pytest.skip``."""

    def __init__(self, check: Check) -> None:
        self.check = check
        self.name = check.name

    def __call__(self, candidate: Candidate) -> None:
        import pytest

        try:
            self.check(candidate)
        except SkipCheck as exc:
            pytest.skip(str(exc))

    def __repr__(self) -> str:
        return self.name


def as_candidate(item: Candidate | Component | Sequence[Any]) -> Candidate:
    """A :class:`Candidate` from a candidate, a registered component, or a tuple ``(kind,
    factory)`` or ``(kind, factory, config)``."""
    if isinstance(item, Candidate):
        return item
    if isinstance(item, Component):
        return Candidate.from_component(item)
    if isinstance(item, tuple) and len(item) in (2, 3):
        return Candidate(*item)
    raise TypeError(
        "expected a Candidate, a registered Component, or a tuple (kind, factory[, config]); "
        f"got {item!r}"
    )


def parametrize_with_checks(
    components: Iterable[Candidate | Component | Sequence[Any]],
    *,
    quick: bool = False,
    fit_marks: Any = (),
) -> Any:
    """A ``pytest.mark.parametrize`` over every component and every check of its kind.

    The test takes two arguments, ``component`` and ``check``, and calls ``check(component)``;
    test ids are ``kind:name-check_name``, e.g. ``layer:adaptive-check_layer_scopes_its_sites``::

        @parametrize_with_checks(components(), fit_marks=pytest.mark.slow)
        def test_conformance(component, check):
            check(component)

    A check that does not apply is skipped (``pytest.skip``).

    Args:
        components: :class:`Candidate` objects, registered components, or ``(kind, factory)`` /
            ``(kind, factory, config)`` tuples.
        quick: leave out the checks that fit a model.
        fit_marks: pytest marks (one, or a sequence) for the checks that fit a model, e.g.
            ``pytest.mark.slow``.
    """
    import pytest

    marks = list(fit_marks) if isinstance(fit_marks, list | tuple) else [fit_marks]
    params = []
    for item in components:
        candidate = as_candidate(item)
        for check in checks_for(candidate.kind, quick=quick):
            params.append(
                pytest.param(
                    candidate,
                    _PytestCheck(check),
                    id=f"{candidate.id}-{check.name}",
                    marks=marks if check.fits else (),
                )
            )
    return pytest.mark.parametrize(("component", "check"), params)
