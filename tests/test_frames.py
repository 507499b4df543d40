"""DataFrames as data: pandas and polars frames give the same fit as the arrays they encode.

Also: level maps (declared category order, else sorted), the unseen-level policy at prediction
(an error by default; the population level, checked against the posterior draws with the layer's
contribution removed by hand), and the errors for unknown columns, missing values and mixed types.
"""

from __future__ import annotations

import json

import attrs
import jax
import numpy as np
import pandas as pd
import polars as pl
import pytest

from blayers_core import DataEncoder, DataError, fit
from blayers_core.contract.population import POPULATION_CODE, population_codes_allowed
from blayers_plugins import AdaptiveLayer, RandomEffectsLayer, gaussian_link_exp

LEVELS = ("a", "b", "c")
COLUMNS = {"x": ["age", "bmi", "bp"], "y": "target", "g": "group"}


def simulate(n: int = 120, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    g = rng.integers(0, 3, size=n).astype(np.int32)
    effects = np.array([-1.0, 0.5, 1.5])
    y = (x @ np.array([1.0, -0.5, 0.25]) + effects[g] + 0.3 * rng.normal(size=n)).astype(np.float32)
    return {"x": x, "g": g, "y": y}


def columns_of(arrays: dict[str, np.ndarray]) -> dict[str, object]:
    x = arrays["x"]
    return {
        "age": x[:, 0],
        "bmi": x[:, 1],
        "bp": x[:, 2],
        "group": list(np.array(LEVELS)[arrays["g"]]),
        "target": arrays["y"],
        "unused": ["ignored"] * len(x),
    }


def as_pandas(arrays: dict[str, np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame(columns_of(arrays))


def model(x, g, y=None):
    mu = AdaptiveLayer()("x", x) + RandomEffectsLayer(num_categories=3)("g", g)
    return gaussian_link_exp(mu, y)


FIT = {"num_steps": 150, "lr": 0.05, "progress_bar": False, "num_samples": 100, "seed": 3}


@pytest.fixture(scope="module")
def fitted():
    arrays = simulate()
    return arrays, fit(model, data=as_pandas(arrays), columns=COLUMNS, **FIT)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["pandas", "polars"])
def test_a_frame_fits_exactly_like_the_arrays_it_holds(backend, fitted) -> None:
    arrays, from_pandas = fitted
    if backend == "pandas":
        result = from_pandas
        df = as_pandas(arrays)
        prebuilt = fit(model, data=df, columns=DataEncoder.from_frame(df, COLUMNS), **FIT)
        for got, want in zip(
            jax.tree_util.tree_leaves(prebuilt.params),
            jax.tree_util.tree_leaves(result.params),
            strict=True,
        ):
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    else:
        result = fit(model, data=pl.DataFrame(columns_of(arrays)), columns=COLUMNS, **FIT)
    reference = fit(model, **arrays, **FIT)
    leaves = jax.tree_util.tree_leaves(result.params)
    expected = jax.tree_util.tree_leaves(reference.params)
    assert len(leaves) == len(expected)
    for got, want in zip(leaves, expected, strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert result.levels == {"group": LEVELS}
    assert result.encoder.num_categories("g") == 3
    assert reference.encoder is None and reference.levels == {}


@pytest.mark.slow
def test_arguments_named_like_columns_are_taken_by_default(fitted) -> None:
    arrays, from_columns = fitted
    df = pd.DataFrame(
        {"g": list(np.array(LEVELS)[arrays["g"]]), "y": arrays["y"], "other": "not read"}
    )
    # g and y by name, x as a keyword; "other" is no model argument and is not read
    result = fit(model, data=df, x=arrays["x"], **FIT)
    assert [s.argument for s in result.encoder.arguments] == ["g", "y"]
    for got, want in zip(
        jax.tree_util.tree_leaves(result.params),
        jax.tree_util.tree_leaves(from_columns.params),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_level_order_follows_declared_categories_else_sorted() -> None:
    values = ["b", "c", "a", "b"]
    pandas_cat = pd.DataFrame({"s": pd.Categorical(values, categories=["c", "a", "b", "d"])})
    polars_enum = pl.DataFrame({"s": pl.Series(values, dtype=pl.Enum(["c", "a", "b", "d"]))})
    polars_cat = pl.DataFrame({"s": pl.Series(values, dtype=pl.Categorical)})
    strings = pd.DataFrame({"s": values})
    for df, levels in [
        (pandas_cat, ("c", "a", "b", "d")),  # declared order, unused level kept
        (polars_enum, ("c", "a", "b", "d")),
        (polars_cat, ("a", "b", "c")),
        (strings, ("a", "b", "c")),
    ]:
        encoder = DataEncoder.from_frame(df, {"s": "s"})
        assert encoder.levels == {"s": levels}
        codes = encoder.encode(df)["s"]
        assert [levels[c] for c in codes] == values


def test_numbers_booleans_and_stacked_categories() -> None:
    df = pl.DataFrame(
        {
            "n": [1, 2, 3],
            "flag": [True, False, True],
            "u": ["x", "y", "x"],
            "v": ["p", "p", "q"],
        }
    )
    encoder = DataEncoder.from_frame(df, {"x": ["n", "flag"], "codes": ["u", "v"]})
    out = encoder.encode(df)
    np.testing.assert_array_equal(out["x"], [[1, 1], [2, 0], [3, 1]])
    assert out["x"].dtype == np.float32 and out["x"].shape == (3, 2)
    np.testing.assert_array_equal(out["codes"], [[0, 0], [1, 0], [0, 1]])
    assert out["codes"].dtype == np.int32
    assert encoder.num_categories("codes") == (2, 2)
    with pytest.raises(ValueError, match="numeric"):
        encoder.num_categories("x")


def test_the_encoder_round_trips_through_json() -> None:
    df = pd.DataFrame(
        {"a": [0.5, 1.5], "g": pd.Categorical(["z", "y"], categories=["z", "y"]), "k": [3, 1]}
    )
    df["k"] = df["k"].astype("category")  # integer levels stay integers
    encoder = DataEncoder.from_frame(df, {"x": ["a"], "g": "g", "k": "k"})
    restored = DataEncoder.from_json_dict(json.loads(json.dumps(encoder.to_json_dict())))
    assert restored == encoder
    assert restored.levels == {"g": ("z", "y"), "k": (1, 3)}
    for name, value in encoder.encode(df).items():
        np.testing.assert_array_equal(restored.encode(df)[name], value)
    with pytest.raises(ValueError, match="format"):
        DataEncoder.from_json_dict({**encoder.to_json_dict(), "format": 99})


def test_a_prebuilt_encoder_refuses_training_levels_it_does_not_know() -> None:
    arrays = simulate(20)
    df = as_pandas(arrays)
    encoder = DataEncoder.from_frame(df[df["group"] != "c"], COLUMNS)
    with pytest.raises(DataError, match=r"column 'group' has 1 level not seen.*'c'"):
        fit(model, data=df, columns=encoder, **FIT)


def test_helpful_errors() -> None:
    df = pd.DataFrame({"age": [1.0, 2.0], "group": ["a", "b"], "target": [0.0, 1.0]})
    with pytest.raises(DataError, match=r"no column 'agee'.*columns: \['age', 'group', 'target'\]"):
        DataEncoder.from_frame(df, {"x": ["agee"]})
    with pytest.raises(DataError, match=r"stacks numeric columns with categorical.*\['group'\]"):
        DataEncoder.from_frame(df, {"x": ["age", "group"]})
    with pytest.raises(DataError, match="does not take"):
        fit(model, data=df, columns={"x": ["age"], "z": "group"}, **FIT)
    with pytest.raises(DataError, match="not a DataFrame"):
        fit(model, data={"x": np.ones((2, 1))}, columns={"x": ["age"]}, **FIT)
    with pytest.raises(DataError, match="no model argument names a column"):
        fit(model, data=pd.DataFrame({"q": [1.0]}), **FIT)
    with pytest.raises(DataError, match="both in columns= and as keywords"):
        fit(model, data=df, columns={"y": "target"}, y=np.ones(2), **FIT)
    for frame, column, count in [
        (pd.DataFrame({"a": [1.0, np.nan, np.nan]}), "a", 2),
        (pl.DataFrame({"a": [1.0, None, float("nan")]}), "a", 2),
        (pl.DataFrame({"a": ["u", None, "v"]}), "a", 1),
        (pd.DataFrame({"a": ["u", None, "v"]}), "a", 1),
    ]:
        with pytest.raises(DataError, match=rf"column '{column}' has {count} missing values"):
            DataEncoder.from_frame(frame, {"x": column})
    dates = pd.DataFrame({"d": pd.to_datetime(["2020-01-01", "2020-01-02"])})
    with pytest.raises(DataError, match="neither numeric nor categorical"):
        DataEncoder.from_frame(dates, {"d": "d"})


def test_unseen_levels_raise_or_get_the_population_code() -> None:
    train = pd.DataFrame({"g": ["a", "b", "c"]})
    new = pl.DataFrame({"g": ["b", "zz", "a", "yy", "zz"]})
    encoder = DataEncoder.from_frame(train, {"g": "g"})
    with pytest.raises(
        DataError, match=r"column 'g' has 2 levels not seen.*'yy', 'zz'.*population"
    ):
        encoder.encode(new)
    codes = encoder.encode(new, unseen="population")["g"]
    np.testing.assert_array_equal(codes, [1, POPULATION_CODE, 0, POPULATION_CODE, POPULATION_CODE])
    with pytest.raises(ValueError, match="unseen must be"):
        encoder.encode(new, unseen="drop")


@pytest.mark.slow
def test_prediction_from_a_frame_matches_arrays_and_draws_the_target(fitted) -> None:
    _, result = fitted
    new = simulate(9, seed=5)
    df_new = as_pandas(new)  # holds a target column: not read, since the model has y=None
    from_frame = result.predict(data=df_new, seed=7, return_draws=True)
    from_arrays = result.predict(x=new["x"], g=new["g"], seed=7, return_draws=True)
    np.testing.assert_array_equal(from_frame.draws, from_arrays.draws)
    assert np.all(np.asarray(from_frame.sd) > 0)


@pytest.mark.slow
def test_unseen_level_at_the_population_level_drops_the_group_effect(fitted) -> None:
    _, result = fitted
    new = simulate(8, seed=6)
    seen = as_pandas(new)
    unseen = seen.assign(group=["new"] * 4 + list(seen["group"][4:]))
    with pytest.raises(DataError, match=r"column 'group' has 1 level not seen.*'new'"):
        result.predict(data=unseen)
    assert not population_codes_allowed()
    population = result.predict(data=unseen, unseen="population", seed=11, return_draws=True)
    known = result.predict(data=seen, seed=11, return_draws=True)
    assert not population_codes_allowed()
    # Same seed and shapes give the same noise, so the draws differ exactly by the group effect
    # of each draw: theta[s, g] for the four rows whose level is unseen, nothing for the others.
    theta = np.asarray(result.posterior_samples["g/theta"])[..., 0]  # (draws, levels)
    expected = np.asarray(known.draws).copy()
    expected[:, :4] -= theta[:, new["g"][:4]]
    np.testing.assert_allclose(np.asarray(population.draws), expected, rtol=1e-5, atol=1e-5)
    # arrays of codes with -1 follow the same policy
    codes = np.where(np.arange(8) < 4, POPULATION_CODE, new["g"]).astype(np.int32)
    from_arrays = result.predict(
        x=new["x"], g=codes, unseen="population", seed=11, return_draws=True
    )
    np.testing.assert_array_equal(np.asarray(from_arrays.draws), np.asarray(population.draws))
    with pytest.raises(ValueError, match="outside their range"):
        result.predict(x=new["x"], g=codes, seed=11)
    with pytest.raises(DataError, match="fitted on arrays"):
        attrs.evolve(result, encoder=None).predict(data=seen)
    # never another level's prediction
    for level in range(3):
        moved = np.asarray(known.draws)[:, :4] - theta[:, new["g"][:4]] + theta[:, [level]]
        assert not np.allclose(np.asarray(population.draws)[:, :4], moved, atol=1e-3)
