"""Every first-party layer and link documents its generative model, and every one is tested.

As datasette checks that each hook is documented and tested: a new component that forgets its
math, or that no test file mentions, fails here.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from blayers_core import components

TESTS = Path(__file__).parent
FIRST_PARTY = [c for c in components() if c.first_party and c.kind in ("layer", "link")]


@pytest.mark.parametrize("component", FIRST_PARTY, ids=lambda c: c.qualified_name)
def test_docstring_states_the_generative_model_and_shapes(component) -> None:
    doc = inspect.getdoc(component.factory) or ""
    assert component.description, "the registry shows no description"
    assert ".. math::" in doc, f"{component.qualified_name}: no generative model in math"
    assert "(n" in doc or "n," in doc, f"{component.qualified_name}: no shapes"


@pytest.mark.parametrize("component", FIRST_PARTY, ids=lambda c: c.qualified_name)
def test_every_component_is_exercised_by_some_test(component) -> None:
    name = component.factory.__name__
    sources = "\n".join(
        p.read_text() for p in TESTS.glob("test_*.py") if p.name != Path(__file__).name
    )
    assert name in sources or f'"{component.name}"' in sources, f"no test mentions {name}"
