"""Probing a component's constructor with bad arguments: they must raise, naming the argument.

Only what the kit can judge is probed. For a factory that is an attrs class, every ``init``
field with a validator or a converter is given

* a value of the wrong type (an ``object()``), unless the field is annotated ``Any`` or
  ``object``: construction must raise, with the field's name in the message;
* for a field annotated with ``int``, the values 0 and -1: construction may accept them (0 can be
  valid), but if it raises the message must name the field.

Fields without a validator or converter, and factories that are not attrs classes, cannot be
probed: the check is skipped for them.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import attrs

from blayers_core.testing._candidate import Candidate, unwrap
from blayers_core.testing._harness import SkipCheck


class _WrongType:
    """A value no validator should accept."""

    def __repr__(self) -> str:
        return "<object of the wrong type>"


_UNTYPED = {None, Any, object, "Any", "object", "typing.Any"}
_INT = re.compile(r"\bint\b")


def _build_error(candidate: Candidate, argument: str, value: Any) -> BaseException | None:
    """The exception ``factory(**config, argument=value)`` raises, or ``None``."""
    try:
        candidate.with_config(**{argument: value}).build()
    except Exception as exc:
        return exc
    return None


def _probed_fields(factory: Any) -> list[Any]:
    if not (inspect.isclass(factory) and attrs.has(factory)):
        raise SkipCheck(f"{factory!r} is not an attrs class; its arguments cannot be probed")
    fields = [
        f
        for f in attrs.fields(factory)
        if f.init and (f.validator is not None or f.converter is not None)
    ]
    if not fields:
        raise SkipCheck("no constructor argument has a validator or converter to probe")
    return fields


def require_bad_config_rejected(candidate: Candidate) -> None:
    """Raise ``AssertionError`` when a bad argument is accepted or its error does not name it."""
    factory = unwrap(candidate.factory)
    if candidate.kind in ("guide", "optimizer"):
        raise SkipCheck("guides and optimizers are built from other callables; nothing to probe")
    fields = _probed_fields(factory)
    problems = []
    for field in fields:
        argument = field.alias or field.name
        bad_values: list[Any] = []
        if field.type not in _UNTYPED:
            bad_values.append(_WrongType())
        if _INT.search(str(field.type)):
            bad_values += [0, -1]
        for value in bad_values:
            error = _build_error(candidate, argument, value)
            if error is None:
                if isinstance(value, _WrongType):
                    problems.append(f"{argument}={value!r} was accepted")
                continue
            if argument not in str(error):
                problems.append(
                    f"{argument}={value!r} raised {type(error).__name__}: {error} "
                    f"(the message does not name {argument!r})"
                )
    if problems:
        raise AssertionError(
            "bad constructor arguments must raise an error naming the argument: "
            + "; ".join(problems)
        )
