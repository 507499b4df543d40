"""What every check shares: the :class:`Check` wrapper, its result, and tracing helpers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, Literal, cast

import attrs
import jax
import numpy as np
from numpyro import handlers

from blayers_core.contract._typing import ComponentKind
from blayers_core.testing._candidate import Candidate

#: The PRNG key every check runs the component under.
KEY_SEED = 0
#: Trace entries that are a model's sites.
SITE_TYPES = ("sample", "param", "deterministic", "mutable")
#: What a component raises for bad input or configuration.
INPUT_ERRORS = (ValueError, TypeError)

Status = Literal["pass", "fail", "skip"]


class SkipCheck(Exception):
    """Raised by a check that does not apply to a component; the message says why."""


@attrs.frozen
class CheckResult:
    """The outcome of one check on one component.

    Attributes:
        check: the check's name (``check_layer_scopes_its_sites``).
        component: the component's ``kind:name``.
        status: ``"pass"``, ``"fail"`` or ``"skip"`` (the check does not apply).
        detail: the failure message (naming the check and the component), or why it was skipped.
        seconds: how long the check took.
        error: the exception behind a failure.
    """

    check: str
    component: str
    status: Status
    detail: str = ""
    seconds: float = 0.0
    error: BaseException | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def passed(self) -> bool:
        """Not failed: passed or skipped."""
        return self.status != "fail"


@attrs.frozen
class Check:
    """One conformance check: a plain function of a :class:`Candidate` that raises
    ``AssertionError`` (or :class:`SkipCheck`) when the component breaks (or escapes) it.

    Attributes:
        function: the check itself, named after what it checks.
        kind: the kind of component it applies to.
        fits: whether it fits a model (the slow checks; left out by ``quick=True``).
    """

    function: Callable[[Candidate], None]
    kind: ComponentKind
    fits: bool = False

    @property
    def name(self) -> str:
        """The function's name, e.g. ``check_layer_scopes_its_sites``."""
        return str(self.function.__name__)

    def run(self, candidate: Candidate) -> CheckResult:
        """Run the check; never raises for what the component does."""
        start = time.perf_counter()
        status: Status = "pass"
        detail, error = "", None
        try:
            self.function(candidate)
        except SkipCheck as exc:
            status, detail = "skip", str(exc)
        except Exception as exc:
            status, error = "fail", exc
            reason = str(exc) if isinstance(exc, AssertionError) else _error_text(exc)
            detail = f"{self.name} failed for {candidate.describe()}: {reason}"
        seconds = time.perf_counter() - start
        return CheckResult(self.name, candidate.id, status, detail, seconds, error)

    def __call__(self, candidate: Candidate) -> None:
        """Run the check; raise ``AssertionError`` naming the check and the component if it
        fails, :class:`SkipCheck` if it does not apply."""
        result = self.run(candidate)
        if result.status == "fail":
            raise AssertionError(result.detail) from result.error
        if result.status == "skip":
            raise SkipCheck(f"{self.name} skipped for {candidate.describe()}: {result.detail}")

    def __repr__(self) -> str:
        return self.name


def _error_text(error: BaseException) -> str:
    return f"raised {type(error).__name__}: {error}"


# ---------------------------------------------------------------------------------- helpers
def key(seed: int = KEY_SEED) -> jax.Array:
    """A fixed PRNG key."""
    return jax.random.PRNGKey(seed)


def traced(fn: Callable[..., Any], seed: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
    """``fn(*args, **kwargs)`` under ``seed`` (an int or a key): ``(value, trace)``."""
    tracer = handlers.trace(handlers.seed(fn, rng_seed=seed))
    value = tracer(*args, **kwargs)
    return value, tracer.trace


def sites(trace: Any) -> dict[str, Any]:
    """The trace's sites (sample, param, deterministic, mutable) by name."""
    return {name: msg for name, msg in trace.items() if msg["type"] in SITE_TYPES}


def expect_error(what: str, fn: Callable[..., Any], *args: Any) -> BaseException:
    """Call ``fn(*args)``; it must raise ``ValueError`` or ``TypeError``. Returns the error.

    Raises:
        AssertionError: ``fn`` returned, or raised another kind of exception.
    """
    try:
        fn(*args)
    except INPUT_ERRORS as exc:
        return exc
    except Exception as exc:
        raise AssertionError(
            f"{what} raised {type(exc).__name__}: {exc}; expected a ValueError or TypeError "
            "that says what is wrong"
        ) from exc
    raise AssertionError(f"{what} did not raise; expected a ValueError or TypeError")


def shapes(arrays: Iterable[Any]) -> str:
    """``(3, 2), (3,)``: the shapes of some arrays, for messages."""
    return ", ".join(str(tuple(np.shape(a))) for a in arrays)


def same_values(first: Any, second: Any) -> bool:
    """Whether two pytrees of arrays are equal, leaf by leaf (NaN equals NaN)."""
    a, tree_a = jax.tree_util.tree_flatten(first)
    b, tree_b = jax.tree_util.tree_flatten(second)
    if cast(Any, tree_a) != tree_b:
        return False
    return all(
        np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True)
        for x, y in zip(a, b, strict=True)
    )


def site_values(trace: Any) -> dict[str, Any]:
    """``{name: value}`` of the trace's sites."""
    return {name: msg["value"] for name, msg in sites(trace).items()}


def differing_sites(first: Any, second: Any) -> list[str]:
    """Names of the sites whose values differ between two traces (or exist in one only)."""
    a, b = site_values(first), site_values(second)
    names = sorted(set(a) | set(b))
    return [n for n in names if n not in a or n not in b or not same_values(a[n], b[n])]


def close(first: Any, second: Any, *, rtol: float = 1e-3, atol: float = 1e-5) -> bool:
    """Whether two arrays agree within float32 round-off of compiled versus eager code."""
    a, b = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True))
