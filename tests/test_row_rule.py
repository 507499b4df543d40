"""The row rule (``blayers_core.engine.data``): which values are row arrays, array constants or
static constants, decided in one place and so the same in the dry run, training and prediction."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from blayers_core import DataError, fit
from blayers_core.engine.data import (
    is_row_array,
    split_constants,
    split_prediction_data,
    split_rows_and_constants,
)
from blayers_plugins import AdaptiveLayer, gaussian_link_exp


def test_the_predicates() -> None:
    assert is_row_array(np.zeros((5, 2)), 5)
    assert is_row_array(jax.numpy.zeros(5), 5)
    assert not is_row_array(np.zeros((4, 2)), 5)
    assert not is_row_array(np.float32(5.0), 5)
    assert not is_row_array(np.array(5.0), 5)
    assert not is_row_array([0, 1, 2, 3, 4], 5)  # a list is a constant


def test_fit_data_split_by_the_longest_leading_dimension() -> None:
    data = {
        "x": np.zeros((6, 2)),
        "y": np.zeros(6),
        "offset": np.zeros(2),
        "scale": np.array(2.0),
        "label": "a",
    }
    split = split_rows_and_constants(data)
    assert split.num_rows == 6 and set(split.rows) == {"x", "y"}
    arrays, static = split_constants(split.constants)
    assert set(arrays) == {"offset"} and set(static) == {"scale", "label"}
    by_count = split_rows_and_constants(data, num_rows=2)
    assert set(by_count.rows) == {"offset"}
    with pytest.raises(DataError, match="num_obs=3 but no array argument has 3 rows"):
        split_rows_and_constants(data, num_rows=3)


def test_prediction_data_are_rows_of_one_length() -> None:
    split = split_prediction_data({"x": np.zeros((4, 2)), "flag": True})
    assert split.num_rows == 4 and set(split.rows) == {"x"} and split.constants == {"flag": True}
    with pytest.raises(DataError, match="different numbers of rows"):
        split_prediction_data({"x": np.zeros((4, 2)), "offset": np.zeros(2)})


def test_a_scalar_array_constant_is_static_in_the_dry_run_training_and_predict() -> None:
    """The model sees a 0-d array constant as the concrete value everywhere (it may branch on
    it), and a 1-d one as an argument of the compiled programs."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 2)).astype(np.float32)
    y = x.sum(axis=1)
    seen: set[tuple[str, bool]] = set()

    def model(x, scale, offset, y=None):
        seen.add(("scale", isinstance(scale, jax.core.Tracer)))
        seen.add(("offset", isinstance(offset, jax.core.Tracer)))
        mu = AdaptiveLayer()("mu", x) * (2.0 if scale > 1 else 1.0) + offset[0]
        return gaussian_link_exp(mu, y)

    scale, offset = np.array(2.0, dtype=np.float32), np.zeros(1, dtype=np.float32)
    result = fit(
        model, x=x, y=y, scale=scale, offset=offset, num_steps=3, num_samples=2, progress_bar=False
    )
    result.predict(x=x[:5])
    assert seen == {("scale", False), ("offset", True)}
