"""check_data: value checks that run eagerly, in the compiled dry run, and never in training."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

from blayers_core import check_data
from blayers_core.engine.dry_run import dry_run


def _no_negatives(values: np.ndarray) -> None:
    assert isinstance(values, np.ndarray)
    bad = np.flatnonzero(values < 0)
    if bad.size:
        raise ValueError(f"x has negative values at rows {bad.tolist()}")


def model(x, y=None):
    check_data(_no_negatives, x)
    beta = numpyro.sample("beta", dist.Normal(0.0, 1.0))
    return numpyro.sample("obs", dist.Normal(beta * x, 1.0), obs=y)


def test_eager_call_checks_at_once() -> None:
    check_data(_no_negatives, np.arange(3.0))
    with pytest.raises(ValueError, match=r"rows \[1\]"):
        check_data(_no_negatives, np.array([0.0, -1.0]))


def test_inside_a_compiled_step_the_check_is_left_out() -> None:
    calls = []

    def record(values: np.ndarray) -> None:
        calls.append(values)

    @jax.jit
    def step(x):
        check_data(record, x)
        return x * 2

    np.testing.assert_array_equal(step(jnp.array([-1.0, 2.0])), [-2.0, 4.0])
    assert calls == []


def test_dry_run_raises_the_checks_own_error_for_any_chunk() -> None:
    x = np.ones(10, dtype=np.float32)
    y = np.zeros(10, dtype=np.float32)
    assert dry_run(model, {"x": x, "y": y}, {}, chunk_rows=4).observed_sites == ("obs",)
    for row in (0, 5, 9):  # first, middle and last (topped-up) chunk; the program is reused
        bad = x.copy()
        bad[row] = -1.0
        with pytest.raises(ValueError, match=rf"negative values at rows \[{row % 4}\]") as info:
            dry_run(model, {"x": bad, "y": y}, {}, chunk_rows=4)
        assert info.value.__notes__ == [
            f"(checked in chunks of 4 rows: row numbers in this message count from row "
            f"{row - row % 4} of the data)"
        ]
    dry_run(model, {"x": x, "y": y}, {}, chunk_rows=4)  # clean data passes again


def test_none_values_pass_through() -> None:
    seen = []

    def check(codes: np.ndarray, weights: np.ndarray | None) -> None:
        seen.append((codes.tolist(), weights))

    def weighted_model(codes):
        check_data(check, codes, None)

    dry_run(weighted_model, {"codes": np.array([1, 2])}, {})
    assert seen == [([1, 2], None)]


def test_checks_run_in_the_order_the_model_met_them_and_the_first_error_wins() -> None:
    order = []

    def first(values: np.ndarray) -> None:
        order.append("first")
        raise ValueError("first check")

    def second(values: np.ndarray) -> None:
        order.append("second")
        raise ValueError("second check")

    def two_checks(x):
        check_data(second, x * 2)  # a derived value: it leaves the program as an output too
        check_data(first, x)

    with pytest.raises(ValueError, match="second check"):
        dry_run(two_checks, {"x": np.ones(3, dtype=np.float32)}, {})
    assert order == ["second"]


def test_a_check_inside_vmap_says_to_check_the_inputs_instead() -> None:
    def vmapped_model(x):
        per_row = jax.vmap(lambda row: (check_data(_no_negatives, row), row.sum())[1])(x)
        numpyro.deterministic("total", per_row.sum())

    with pytest.raises(
        RuntimeError, match=r"check_data\(_no_negatives, \.\.\.\) was called .*jax\.vmap"
    ):
        dry_run(vmapped_model, {"x": np.ones((4, 2), dtype=np.float32)}, {})


SINGLE_CPU_CHILD = """
import os, sys
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
import numpy as np
sys.path.insert(0, sys.argv[1])
from test_checks import model
from blayers_core.engine.dry_run import dry_run
x = np.ones(300_000, dtype=np.float32)
print(dry_run(model, {"x": x, "y": x}, {}).observed_sites)
"""


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity (Linux)")
def test_dry_run_finishes_on_a_single_cpu() -> None:
    """Host callbacks (``jax.debug.callback``) with operands of this size deadlock when the process
    may use one CPU only: the checks must not depend on them."""
    out = subprocess.run(
        [sys.executable, "-c", SINGLE_CPU_CHILD, str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == "('obs',)"
