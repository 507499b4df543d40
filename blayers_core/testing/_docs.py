r"""The documentation rule: a component's docstring says what it is, a layer's or link's states its
generative model.

The docstring checked is the factory's own (``__doc__`` of the class or function; a
``functools.partial`` is unwrapped; an instance is documented by its class). A layer's or link's
docstring states the generative model when it has a ``.. math::`` block, a ``\sim`` or a sampling
statement ``beta ~ Normal(0, 1)`` (a ``~`` with spaces around it).
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from blayers_core.testing._candidate import Candidate, unwrap

#: What counts as stating a generative model.
GENERATIVE_MODEL = re.compile(r"\.\. math::|\\sim\b|\s~\s")


def own_docstring(factory: Any) -> str:
    """The factory's own docstring, cleaned up, or ``""``."""
    target = unwrap(factory)
    documented = target if inspect.isclass(target) or inspect.isroutine(target) else type(target)
    doc = documented.__doc__
    return inspect.cleandoc(doc) if isinstance(doc, str) else ""


def require_docstring(candidate: Candidate) -> str:
    """The docstring; raise ``AssertionError`` when there is none."""
    doc = own_docstring(candidate.factory)
    if not doc.strip():
        raise AssertionError(
            "the factory has no docstring; its first line is the description `blayers plugins` "
            "shows"
        )
    return doc


def require_generative_model(candidate: Candidate) -> None:
    """Raise ``AssertionError`` unless the docstring states the generative model."""
    doc = require_docstring(candidate)
    if not GENERATIVE_MODEL.search(doc):
        raise AssertionError(
            "the docstring does not state the generative model: add a '.. math::' block (or a "
            "sampling statement such as 'beta ~ Normal(0, 1)') naming the sites and shapes"
        )
