"""Bad input raises the library's own error, naming the argument (or the layer) and the bad value.

Each fault case builds a call that used to give a silent wrong answer or a raw NumPyro/JAX error:
``int64`` category codes that wrapped to ``int32`` before the range check, one layer name used
twice, predictions with other columns than training, a categorical pandas/polars Series as an
argument, and data without rows. The positive paths check what those calls must keep doing.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable
from pathlib import Path

import attrs
import numpy as np
import numpyro
import pandas as pd
import polars as pl
import pytest
from numpyro import handlers

from blayers_core import DataError, DuplicateLayerError, FitResult, fit, load
from blayers_plugins import AdaptiveLayer, RandomEffectsLayer, gaussian_link_exp

N, C = 20, 5
FIT = {"num_steps": 5, "progress_bar": False, "num_samples": 10, "seed": 0}
LEVELS = ("a", "b", "c", "d", "e")


def codes(dtype: type = np.int64) -> np.ndarray:
    return (np.arange(N) % C).astype(dtype)


def with_code(row: int, value: int, dtype: type = np.int64) -> np.ndarray:
    g = codes(dtype)
    g[row] = value
    return g


def target() -> np.ndarray:
    return np.random.default_rng(0).normal(size=N).astype(np.float32)


def features(d: int = 3) -> np.ndarray:
    return np.random.default_rng(1).normal(size=(N, d)).astype(np.float32)


def effects_model(g, y=None):
    return gaussian_link_exp(RandomEffectsLayer(num_categories=C)("g", g), y)


def linear_model(x, y=None):
    return gaussian_link_exp(AdaptiveLayer()("x", x), y)


def both_model(x, g, y=None):
    mu = AdaptiveLayer()("x", x) + RandomEffectsLayer(num_categories=C)("g", g)
    return gaussian_link_exp(mu, y)


def twice_model(x, g, y=None):
    mu = RandomEffectsLayer(num_categories=C)("shared", g) + AdaptiveLayer()("shared", x)
    return gaussian_link_exp(mu, y)


def categorical_series(values=None, categories=LEVELS) -> pd.Series:
    values = [LEVELS[i] for i in codes()] if values is None else values
    return pd.Series(pd.Categorical(values, categories=list(categories)))


@pytest.fixture(scope="module")
def linear_fit() -> FitResult:
    return fit(linear_model, x=features(), y=target(), **FIT)


@pytest.fixture(scope="module")
def codes_fit() -> FitResult:
    return fit(effects_model, g=codes(np.int32), y=target(), **FIT)


@pytest.fixture(scope="module")
def series_fit() -> FitResult:
    return fit(effects_model, g=categorical_series(), y=target(), **FIT)


def trace_twice_eagerly() -> None:
    handlers.trace(handlers.seed(twice_model, rng_seed=0)).get_trace(features(), codes())


def layer_call_eagerly() -> None:
    handlers.seed(effects_model, rng_seed=0)(with_code(3, 2**31), target())


# ------------------------------------------------------------------------------ fault cases
#: (id, the faulty call, given the module's fits, the error type, patterns its message must hold)
FAULTS: list[tuple[str, Callable[[dict[str, FitResult]], object], type, tuple[str, ...]]] = [
    (
        "int64 code 2**32 + 1 does not wrap to 1",
        lambda fits: fit(effects_model, g=with_code(3, 2**32 + 1), y=target(), **FIT),
        DataError,
        (r"argument 'g'", r"row 3: 4294967297", r"-2147483648\.\.2147483647"),
    ),
    (
        "int64 code 2**31 is shown as itself",
        lambda fits: fit(effects_model, g=with_code(7, 2**31), y=target(), **FIT),
        DataError,
        (r"argument 'g'", r"row 7: 2147483648\b", r"int32"),
    ),
    (
        "uint64 code beyond uint32",
        lambda fits: fit(effects_model, g=with_code(2, 2**33, np.uint64), y=target(), **FIT),
        DataError,
        (r"argument 'g'", r"row 2: 8589934592", r"uint32"),
    ),
    (
        "int64 code in a 2-D code matrix names row and column",
        lambda fits: fit(
            effects_model, g=np.stack([codes(), with_code(5, -(2**40))], axis=1), y=target(), **FIT
        ),
        DataError,
        (r"argument 'g'", r"row 5, column 1: -1099511627776"),
    ),
    (
        "int64 code beyond int32 at predict",
        lambda fits: fits["codes"].predict(g=with_code(4, 2**32 + 1)),
        DataError,
        (r"argument 'g'", r"row 4: 4294967297"),
    ),
    (
        "int64 code beyond int32 in an eager layer call",
        lambda fits: layer_call_eagerly(),
        ValueError,
        (r"layer 'g'", r"row 3 field 0: 2147483648\b", r"valid 0\.\.4"),
    ),
    (
        "one layer name used twice in a fit",
        lambda fits: fit(twice_model, x=features(), g=codes(), y=target(), **FIT),
        DuplicateLayerError,
        (
            r"layer name 'shared' is used twice",
            r"RandomEffectsLayer\('shared', x \(20,\)\)",
            r"AdaptiveLayer\('shared', x \(20, 3\)\)",
            r"'shared/",
        ),
    ),
    (
        "one layer name used twice in a traced model",
        lambda fits: trace_twice_eagerly(),
        DuplicateLayerError,
        (r"'shared'", r"\(20,\)", r"\(20, 3\)"),
    ),
    (
        "predict with more columns than training",
        lambda fits: fits["linear"].predict(x=features(4)),
        DataError,
        (r"argument 'x'", r"\(20, 4\)", r"\(n, 3\)"),
    ),
    (
        "predict with a 1-D x where training had 3 columns",
        lambda fits: fits["linear"].predict(x=features()[:, 0]),
        DataError,
        (r"argument 'x'", r"\(20,\)", r"\(n, 3\)"),
    ),
    (
        "predict with float codes where training had integer codes",
        lambda fits: fits["codes"].predict(g=codes().astype(np.float32)),
        DataError,
        (r"argument 'g'", r"float32", r"integer"),
    ),
    (
        "zero rows of arrays",
        lambda fits: fit(effects_model, g=codes()[:0], y=target()[:0], **FIT),
        DataError,
        (r"empty", r"'g'", r"'y'", r"0 rows"),
    ),
    (
        "zero rows of a DataFrame",
        lambda fits: fit(
            effects_model, data=pd.DataFrame({"g": categorical_series()[:0], "y": target()[:0]})
        ),
        DataError,
        (r"empty", r"data=", r"0 rows"),
    ),
    (
        "zero rows at predict",
        lambda fits: fits["linear"].predict(x=features()[:0]),
        DataError,
        (r"empty", r"'x'", r"0 rows"),
    ),
    (
        "unseen level of a categorical Series at predict",
        lambda fits: fits["series"].predict(
            g=categorical_series(["a", "z"] * (N // 2), categories=("a", "z"))
        ),
        DataError,
        (r"argument 'g' \(a Series\)", r"'z'", r"not seen in training"),
    ),
    (
        "categorical Series for an argument fitted on codes",
        lambda fits: fits["codes"].predict(g=categorical_series()),
        DataError,
        (r"argument 'g' \(a Series\)", r"levels are unknown"),
    ),
    (
        "numeric Series for an argument fitted on categories",
        lambda fits: fits["series"].predict(g=pd.Series(codes())),
        DataError,
        (r"argument 'g' \(a Series\)", r"was categorical in training"),
    ),
    (
        "categorical Series with a missing value",
        lambda fits: fit(
            effects_model, g=categorical_series(["a", None] * (N // 2)), y=target(), **FIT
        ),
        DataError,
        (r"argument 'g' \(a Series\)", r"1?0 missing values"),
    ),
]


@pytest.fixture(scope="module")
def fits(linear_fit, codes_fit, series_fit) -> dict[str, FitResult]:
    return {"linear": linear_fit, "codes": codes_fit, "series": series_fit}


@pytest.mark.parametrize(
    ("call", "error", "patterns"),
    [case[1:] for case in FAULTS],
    ids=[case[0] for case in FAULTS],
)
def test_a_fault_raises_naming_the_argument_and_the_value(fits, call, error, patterns) -> None:
    with pytest.raises(error) as raised:
        call(fits)
    message = str(raised.value)
    for pattern in patterns:
        assert re.search(pattern, message), (pattern, message)


# ------------------------------------------------------------------------------ positive paths
def test_int64_codes_in_range_fit_and_predict_like_int32_codes(codes_fit) -> None:
    result = fit(effects_model, g=codes(np.int64), y=target(), **FIT)
    for name, value in codes_fit.params.items():
        np.testing.assert_array_equal(np.asarray(result.params[name]), np.asarray(value))
    wide = result.predict(g=codes(np.int64), kind="mean")
    narrow = codes_fit.predict(g=codes(np.int32), kind="mean")
    np.testing.assert_array_equal(wide.mean, narrow.mean)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: categorical_series(), id="pandas Categorical"),
        pytest.param(
            lambda: pl.Series([LEVELS[i] for i in codes()], dtype=pl.Enum(list(LEVELS))),
            id="polars Enum",
        ),
        pytest.param(lambda: pd.Series([LEVELS[i] for i in codes()]), id="pandas strings"),
    ],
)
def test_a_categorical_series_fits_and_predicts_as_its_codes(make, codes_fit) -> None:
    result = fit(effects_model, g=make(), y=target(), **FIT)
    assert result.levels == {"g": LEVELS}
    assert result.encoder is not None and result.encoder.num_categories("g") == C
    for name, value in codes_fit.params.items():
        np.testing.assert_array_equal(np.asarray(result.params[name]), np.asarray(value))
    from_series = result.predict(g=make(), kind="mean")
    from_codes = codes_fit.predict(g=codes(np.int32), kind="mean")
    np.testing.assert_array_equal(from_series.mean, from_codes.mean)


def test_to_arviz_reads_a_categorical_series_as_in_training(series_fit, codes_fit) -> None:
    pytest.importorskip("arviz")
    from_series = series_fit.to_arviz(g=categorical_series(), y=target(), seed=1)
    from_codes = series_fit.to_arviz(g=codes(np.int32), y=target(), seed=1)
    np.testing.assert_array_equal(
        np.asarray(from_series["log_likelihood"]["obs"]),
        np.asarray(from_codes["log_likelihood"]["obs"]),
    )


def test_a_categorical_series_uses_its_declared_order() -> None:
    reordered = fit(effects_model, g=categorical_series(categories=LEVELS[::-1]), y=target(), **FIT)
    assert reordered.levels == {"g": LEVELS[::-1]}
    # predict encodes with the training order, whatever the new Series declares
    from_series = reordered.predict(g=categorical_series(), kind="mean").mean
    from_codes = reordered.predict(g=(C - 1 - codes()).astype(np.int32), kind="mean").mean
    np.testing.assert_array_equal(from_series, from_codes)


def test_unseen_series_levels_can_be_predicted_at_the_population_level(series_fit) -> None:
    new = categorical_series(["a", "z"] * (N // 2), categories=("a", "z"))
    p = series_fit.predict(g=new, unseen="population", kind="mean")
    assert p.mean.shape == (N,) and np.isfinite(p.mean).all()


def test_a_series_argument_is_read_with_a_dataframe(series_fit) -> None:
    frame = pd.DataFrame({"x": features()[:, 0], "y": target()})
    result = fit(both_model, data=frame, columns={"x": ["x"]}, g=categorical_series(), **FIT)
    assert result.levels == {"g": LEVELS}
    p = result.predict(data=frame, g=categorical_series(), kind="mean")
    assert p.mean.shape == (N,)
    with pytest.raises(DataError, match=r"argument 'g' was given to fit as a categorical Series"):
        result.predict(data=frame)


def test_numeric_series_stay_arrays_of_their_dtype(codes_fit) -> None:
    result = fit(effects_model, g=pd.Series(codes()), y=pd.Series(target()), **FIT)
    assert result.levels == {}
    assert result.data_signature == {"g": ((), "i"), "y": ((), "f")}
    p = result.predict(g=pl.Series(codes()), kind="mean")
    np.testing.assert_array_equal(p.mean, codes_fit.predict(g=codes(), kind="mean").mean)


def test_a_layer_name_may_repeat_under_another_scope_or_in_another_trace() -> None:
    def scoped(x, y=None):
        with handlers.scope(prefix="a"):
            first = AdaptiveLayer()("x", x)
        with handlers.scope(prefix="b"):
            second = AdaptiveLayer()("x", x)
        return gaussian_link_exp(first + second, y)

    result = fit(scoped, x=features(), y=target(), **FIT)
    assert {"a/x/beta", "b/x/beta"} <= set(result.posterior_samples)
    seeded = handlers.seed(linear_model, rng_seed=0)
    tracer = handlers.trace(seeded)
    tracer.get_trace(features(), target())
    assert "x/beta" in tracer.get_trace(features(), target())  # the same handler, run again


def test_the_data_signature_is_saved_and_an_old_file_without_it_still_loads(
    linear_fit, tmp_path: Path
) -> None:
    assert linear_fit.data_signature == {"x": ((3,), "f"), "y": ((), "f")}
    path = linear_fit.save(tmp_path / "fit.npz")
    again = load(path, model=linear_model)
    assert again.data_signature == linear_fit.data_signature
    with pytest.raises(DataError, match=r"argument 'x' has shape \(20, 4\)"):
        again.predict(x=features(4))

    with np.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    meta = json.loads(arrays["meta_json"].tobytes().decode("utf-8"))
    del meta["data_signature"]
    arrays["meta_json"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    old = tmp_path / "old.npz"
    np.savez(old, **arrays)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = load(old, model=linear_model)
    assert loaded.data_signature is None
    np.testing.assert_array_equal(
        loaded.predict(x=features(), kind="mean").mean,
        linear_fit.predict(x=features(), kind="mean").mean,
    )


def test_a_result_without_a_signature_does_not_check_columns(linear_fit) -> None:
    unknown = attrs.evolve(linear_fit, data_signature=None)
    assert unknown.predict(x=features(), kind="mean").mean.shape == (N,)


def test_the_duplicate_check_records_nothing_without_a_trace() -> None:
    # no trace handler: NumPyro keeps no sites, so there is nothing to collide with
    out = handlers.seed(twice_model, rng_seed=0)(features(), codes())
    assert np.shape(out) == (N,)
    assert numpyro.primitives._PYRO_STACK == []


X64_SCRIPT = textwrap.dedent(
    """
    import jax
    jax.config.update("jax_enable_x64", True)
    import numpy as np
    from blayers_core import fit
    from blayers_plugins import RandomEffectsLayer, gaussian_link_exp

    def model(g, y=None):
        return gaussian_link_exp(RandomEffectsLayer(num_categories=5)("g", g), y)

    y = np.zeros(20)
    g = (np.arange(20) % 5).astype(np.int64)
    fit(model, g=g, y=y, num_steps=2, progress_bar=False, num_samples=2)
    g[3] = 2**32 + 1
    try:
        fit(model, g=g, y=y, num_steps=2, progress_bar=False, num_samples=2)
    except ValueError as error:
        print("RAISED", error)
    """
)


def test_with_x64_enabled_the_layer_sees_and_reports_the_real_int64_code() -> None:
    done = subprocess.run(
        [sys.executable, "-c", X64_SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "RAISED layer 'g'" in done.stdout, done.stdout + done.stderr[-3000:]
    assert "row 3 field 0: 4294967297" in done.stdout, done.stdout
