"""The plugin passes blayers' conformance kit: one test per component and check.

Run after ``pip install -e ".[test]"`` (so the entry point is installed): ``pytest``.
"""

from __future__ import annotations

import pytest

from blayers_core import components
from blayers_core.testing import check_plugin, parametrize_with_checks

DISTRIBUTION = "blayers-laplace"


@parametrize_with_checks([c for c in components() if c.distribution == DISTRIBUTION])
def test_component_keeps_the_contract(component, check) -> None:
    check(component)


def test_the_whole_plugin_passes_the_kit() -> None:
    check_plugin(DISTRIBUTION)


def test_components_are_registered() -> None:
    names = {c.qualified_name for c in components() if c.distribution == DISTRIBUTION}
    if not names:
        pytest.fail(f"{DISTRIBUTION} is not installed: pip install -e . first")
    assert names == {"laplace:laplace_prior", "laplace:laplace"}
