"""Integer index inputs of `fm` and `lowrank_interaction`, checked against the dense layers on
one-hot (or weighted multi-hot) matrices built here with NumPy, and against hand-written NumPyro.

Shapes are tiny and nothing is jitted except in the one (slow) recovery fit.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
import pytest
from helpers import assert_same_log_joint, site_summary, trace
from helpers import run_with as _run
from numpyro.infer.util import log_density

import blayers_core
from blayers_core import fit
from blayers_plugins import FMLayer, GaussianLink, LowRankInteractionLayer

N, K = 7, 2
FIELDS = (5, 4, 6)  # one-hot fields: 15 table rows
VOCAB, SLOTS = 6, 3  # multi-hot rows: up to 3 codes of a shared vocabulary of 6


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _codes(seed: int = 0, n: int = N, fields: tuple[int, ...] = FIELDS) -> np.ndarray:
    rng = _rng(seed)
    return np.stack([rng.integers(0, c, size=n) for c in fields], axis=1)


def _one_hot(codes: np.ndarray, fields: tuple[int, ...]) -> np.ndarray:
    """The dense ``(n, sum(fields))`` one-hot matrix, built independently of the layer."""
    x = np.zeros((codes.shape[0], sum(fields)), np.float32)
    offset = 0
    for j, c in enumerate(fields):
        x[np.arange(codes.shape[0]), offset + codes[:, j]] = 1.0
        offset += c
    return x


def _multi_hot(seed: int = 1, n: int = N) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Padded multi-hot rows: distinct active codes with float weights, padding weighted 0.

    Returns codes ``(n, SLOTS)``, values ``(n, SLOTS)`` and the dense ``(n, VOCAB)`` matrix.
    """
    rng = _rng(seed)
    codes = np.zeros((n, SLOTS), np.int64)
    values = np.zeros((n, SLOTS), np.float32)
    dense = np.zeros((n, VOCAB), np.float32)
    for row in range(n):
        active = 1 + row % SLOTS  # 1, 2 or 3 active codes
        chosen = rng.choice(VOCAB, size=active, replace=False)
        codes[row, :active] = chosen
        codes[row, active:] = chosen[0]  # padding repeats a valid code with weight 0
        values[row, :active] = rng.uniform(0.5, 2.0, size=active)
        dense[row, chosen] = values[row, :active]
    return codes, values, dense


def _fm_params(rng: np.random.Generator, rows: int, units: int, name: str = "fm") -> dict:
    return {
        f"{name}/scale": rng.uniform(0.5, 2.0, size=(units,)).astype(np.float32),
        f"{name}/theta": rng.normal(size=(rows, K, units)).astype(np.float32),
    }


def _fm_naive(x: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Pairwise sum over distinct feature pairs, in float64 loops."""
    out = np.zeros((x.shape[0], theta.shape[-1]))
    for row, c in itertools.product(range(x.shape[0]), range(theta.shape[-1])):
        for i, j in itertools.combinations(range(x.shape[1]), 2):
            out[row, c] += theta[i, :, c] @ theta[j, :, c] * x[row, i] * x[row, j]
    return out


def _fm_reference(rows: int, units: int):
    def reference(*_):
        scale = numpyro.sample("fm/scale", dist.HalfNormal(1.0).expand([units]).to_event(1))
        numpyro.sample("fm/theta", dist.Normal(0.0, scale).expand([rows, K, units]).to_event(3))

    return reference


# ------------------------------------------------------------------ equality with dense input
@pytest.mark.parametrize("units", [1, 2])
def test_fm_codes_equal_dense_one_hot(units):
    codes = _codes()
    x = _one_hot(codes, FIELDS)
    params = _fm_params(_rng(2), sum(FIELDS), units)
    sparse, dense = FMLayer(low_rank_dim=K, num_categories=FIELDS), FMLayer(low_rank_dim=K)

    lp_sparse = assert_same_log_joint(
        lambda c: sparse("fm", c, units=units), _fm_reference(sum(FIELDS), units), params, codes
    )
    lp_dense, _ = log_density(lambda x: dense("fm", x, units=units), (x,), {}, params)
    np.testing.assert_allclose(lp_sparse, float(lp_dense), rtol=1e-6)

    out_sparse = _run(lambda: sparse("fm", codes, units=units), data=params)
    out_dense = _run(lambda: dense("fm", x, units=units), data=params)
    assert out_sparse.shape == (N, units)
    np.testing.assert_allclose(out_sparse, out_dense, rtol=1e-5, atol=1e-5)
    naive = _fm_naive(x.astype(np.float64), params["fm/theta"].astype(np.float64))
    np.testing.assert_allclose(out_sparse, naive, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("units", [1, 2])
def test_fm_weighted_multi_hot_equals_dense_matrix(units):
    codes, values, x = _multi_hot()
    params = _fm_params(_rng(3), VOCAB, units)
    sparse = FMLayer(low_rank_dim=K, num_categories=VOCAB, weighted=True)
    dense = FMLayer(low_rank_dim=K)

    lp_sparse = assert_same_log_joint(
        lambda c, v: sparse("fm", c, v, units=units),
        _fm_reference(VOCAB, units),
        params,
        codes,
        values,
    )
    lp_dense, _ = log_density(lambda x: dense("fm", x, units=units), (x,), {}, params)
    np.testing.assert_allclose(lp_sparse, float(lp_dense), rtol=1e-6)

    out_sparse = _run(lambda: sparse("fm", codes, values, units=units), data=params)
    out_dense = _run(lambda: dense("fm", x, units=units), data=params)
    assert out_sparse.shape == (N, units)
    np.testing.assert_allclose(out_sparse, out_dense, rtol=1e-5, atol=1e-5)
    naive = _fm_naive(x.astype(np.float64), params["fm/theta"].astype(np.float64))
    np.testing.assert_allclose(out_sparse, naive, rtol=1e-4, atol=1e-4)


def test_fm_unweighted_shared_vocabulary_equals_multi_hot_of_ones():
    rng = _rng(4)
    codes = np.stack([rng.choice(VOCAB, size=SLOTS, replace=False) for _ in range(N)])
    x = np.zeros((N, VOCAB), np.float32)
    np.put_along_axis(x, codes, 1.0, axis=1)
    params = _fm_params(_rng(5), VOCAB, 1)
    out_sparse = _run(
        lambda: FMLayer(low_rank_dim=K, num_categories=VOCAB)("fm", codes), data=params
    )
    out_dense = _run(lambda: FMLayer(low_rank_dim=K)("fm", x), data=params)
    np.testing.assert_allclose(out_sparse, out_dense, rtol=1e-5, atol=1e-5)


def _lowrank_reference(dx: int, dz: int, units: int):
    def reference(*_):
        hn = dist.HalfNormal(1.0).expand([units]).to_event(1)
        xs = numpyro.sample("lr/x_scale", hn)
        numpyro.sample("lr/x_theta", dist.Normal(0.0, xs).expand([dx, K, units]).to_event(3))
        zs = numpyro.sample("lr/z_scale", hn)
        numpyro.sample("lr/z_theta", dist.Normal(0.0, zs).expand([dz, K, units]).to_event(3))

    return reference


def _lowrank_case(case: str) -> tuple[dict, tuple, np.ndarray, np.ndarray]:
    """Layer config, inputs of the index layer, and the dense x and z they stand for."""
    if case == "sparse_x_dense_z":
        codes, z = _codes(6), _rng(7).normal(size=(N, 3)).astype(np.float32)
        return {"x_num_categories": FIELDS}, (codes, z), _one_hot(codes, FIELDS), z
    if case == "dense_x_weighted_z":
        x = _rng(8).normal(size=(N, 3)).astype(np.float32)
        codes, values, z = _multi_hot(9)
        return {"z_num_categories": VOCAB, "z_weighted": True}, (x, codes, values), x, z
    x_codes, z_codes = _codes(10), _codes(11, fields=(3, 2))
    config = {"x_num_categories": FIELDS, "z_num_categories": (3, 2)}
    return config, (x_codes, z_codes), _one_hot(x_codes, FIELDS), _one_hot(z_codes, (3, 2))


@pytest.mark.parametrize("units", [1, 2])
@pytest.mark.parametrize("case", ["sparse_x_dense_z", "dense_x_weighted_z", "both_sparse"])
def test_lowrank_index_inputs_equal_dense_one_hot(case, units):
    config, inputs, x, z = _lowrank_case(case)
    rng = _rng(12)
    params = {
        "lr/x_scale": rng.uniform(0.5, 2.0, size=(units,)).astype(np.float32),
        "lr/x_theta": rng.normal(size=(x.shape[1], K, units)).astype(np.float32),
        "lr/z_scale": rng.uniform(0.5, 2.0, size=(units,)).astype(np.float32),
        "lr/z_theta": rng.normal(size=(z.shape[1], K, units)).astype(np.float32),
    }
    sparse = LowRankInteractionLayer(low_rank_dim=K, **config)
    dense = LowRankInteractionLayer(low_rank_dim=K)

    lp_sparse = assert_same_log_joint(
        lambda *a: sparse("lr", *a, units=units),
        _lowrank_reference(x.shape[1], z.shape[1], units),
        params,
        *inputs,
    )
    lp_dense, _ = log_density(lambda x, z: dense("lr", x, z, units=units), (x, z), {}, params)
    np.testing.assert_allclose(lp_sparse, float(lp_dense), rtol=1e-6)

    out_sparse = _run(lambda: sparse("lr", *inputs, units=units), data=params)
    u, v = params["lr/x_theta"], params["lr/z_theta"]
    bilinear = np.array(
        [[x[n] @ (u[:, :, c] @ v[:, :, c].T) @ z[n] for c in range(units)] for n in range(N)]
    )
    assert out_sparse.shape == (N, units)
    np.testing.assert_allclose(out_sparse, bilinear, rtol=1e-4, atol=1e-4)


def test_lowrank_repeated_codes_add_up_like_a_dense_count():
    """The interaction is linear in each side, so repeats are just counts (unlike in the FM)."""
    codes = np.array([[1, 1, 2], [0, 3, 3]])
    counts = np.array([[0, 2, 1, 0], [1, 0, 0, 2]], np.float32)
    z = _rng(13).normal(size=(2, 2)).astype(np.float32)
    params = {
        "lr/x_theta": _rng(14).normal(size=(4, K, 1)).astype(np.float32),
        "lr/z_theta": _rng(15).normal(size=(2, K, 1)).astype(np.float32),
    }
    sparse = _run(
        lambda: LowRankInteractionLayer(low_rank_dim=K, x_num_categories=4)("lr", codes, z),
        data=params,
    )
    dense = _run(lambda: LowRankInteractionLayer(low_rank_dim=K)("lr", counts, z), data=params)
    np.testing.assert_allclose(sparse, dense, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------ shapes and sites
def test_sites_and_shapes_are_those_of_the_dense_layer_on_one_hot():
    tr = trace(lambda: FMLayer(low_rank_dim=K, num_categories=FIELDS)("fm", _codes(), units=3))
    assert set(tr) == {"fm/scale", "fm/theta"}
    assert tr["fm/scale"]["value"].shape == (3,)
    assert tr["fm/theta"]["value"].shape == (sum(FIELDS), K, 3)
    assert tr["fm/theta"]["fn"].batch_shape == ()  # one event, no stray batch dims
    layer = LowRankInteractionLayer(low_rank_dim=K, z_num_categories=VOCAB, z_weighted=True)
    codes, values, _ = _multi_hot()
    tr = trace(lambda: layer("lr", _rng(0).normal(size=(N, 3)), codes, values, units=2))
    assert tr["lr/x_theta"]["value"].shape == (3, K, 2)
    assert tr["lr/z_theta"]["value"].shape == (VOCAB, K, 2)


def test_one_field_of_codes_may_be_one_dimensional():
    codes = _rng(16).integers(0, 4, size=N)
    params = {"lr/x_theta": _rng(17).normal(size=(4, K, 1)).astype(np.float32)}
    z = _rng(18).normal(size=(N, 2)).astype(np.float32)
    params["lr/z_theta"] = _rng(19).normal(size=(2, K, 1)).astype(np.float32)
    flat = _run(
        lambda: LowRankInteractionLayer(low_rank_dim=K, x_num_categories=4)("lr", codes, z),
        data=params,
    )
    column = _run(
        lambda: LowRankInteractionLayer(low_rank_dim=K, x_num_categories=(4,))(
            "lr", codes[:, None], z
        ),
        data=params,
    )
    assert flat.shape == (N, 1)
    np.testing.assert_array_equal(flat, column)
    # A lone field in an FM has no partner: the output is zero, with the right shape.
    out = _run(lambda: FMLayer(low_rank_dim=K, num_categories=4)("fm", codes, units=2))
    assert out.shape == (N, 2)
    np.testing.assert_allclose(out, 0.0, atol=1e-5)


def test_list_and_numpy_category_counts_are_accepted():
    layer = FMLayer(low_rank_dim=K, num_categories=[np.int64(5), 4, 6])
    assert layer.num_categories == FIELDS
    assert FMLayer(low_rank_dim=K, num_categories=np.int32(6)).num_categories == 6
    assert isinstance(blayers_core.layer("fm", low_rank_dim=K, num_categories=FIELDS), FMLayer)


def _all_shapes(jaxpr) -> list[tuple[int, ...]]:
    shapes = []
    for eqn in jaxpr.eqns:
        shapes += [tuple(v.aval.shape) for v in eqn.outvars]
        for param in eqn.params.values():
            for sub in param if isinstance(param, list | tuple) else [param]:
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    shapes += _all_shapes(inner)
    return shapes


def test_no_one_hot_sized_array_is_built_forward_or_backward():
    """Every intermediate of the log density and its gradient is smaller than rows x categories."""
    codes = _codes()
    layer = FMLayer(low_rank_dim=K, num_categories=FIELDS)
    y = np.zeros(N, np.float32)

    def loss(theta):
        def model():
            GaussianLink(scale=1.0)(layer("fm", codes), y)

        lp, _ = log_density(model, (), {}, {"fm/scale": jnp.ones(1), "fm/theta": theta})
        return lp

    jaxpr = jax.make_jaxpr(jax.value_and_grad(loss))(jnp.ones((sum(FIELDS), K, 1)))
    shapes = _all_shapes(jaxpr.jaxpr)
    assert (N, len(FIELDS), K, 1) in shapes  # the gathered factor rows
    assert max(int(np.prod(s)) for s in shapes) < N * sum(FIELDS)


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize("bad", [0, -3, (4, 0), (), True, 2.5, "abc", (3, 2.0)])
def test_num_categories_must_be_positive_ints(bad):
    with pytest.raises(ValueError, match="num_categories must be a positive int"):
        FMLayer(low_rank_dim=K, num_categories=bad)
    with pytest.raises(ValueError, match="z_num_categories must be a positive int"):
        LowRankInteractionLayer(low_rank_dim=K, z_num_categories=bad)


def test_weights_need_index_inputs_and_a_boolean_flag():
    with pytest.raises(ValueError, match=r"weighted=True .* needs num_categories"):
        FMLayer(low_rank_dim=K, weighted=True)
    with pytest.raises(ValueError, match=r"x_weighted=True .* needs x_num_categories"):
        LowRankInteractionLayer(low_rank_dim=K, x_weighted=True)
    with pytest.raises(TypeError, match="weighted must be True or False"):
        FMLayer(low_rank_dim=K, num_categories=3, weighted=1)


@pytest.mark.parametrize("code", [-1, 4])
def test_out_of_range_codes_raise_on_an_eager_call(code):
    codes = _codes(fields=(4, 4, 6))
    codes[2, 1] = code
    with pytest.raises(ValueError, match=rf"'fm': x has 1 codes outside.*row 2 field 1: {code}"):
        _run(lambda: FMLayer(low_rank_dim=K, num_categories=(4, 4, 6))("fm", codes))
    layer = LowRankInteractionLayer(low_rank_dim=K, z_num_categories=(4, 4, 6))
    with pytest.raises(ValueError, match=r"'lr': z has 1 codes outside"):
        _run(lambda: layer("lr", np.ones((N, 2)), codes))


@pytest.mark.parametrize("code", [-2, 5])
def test_out_of_range_codes_raise_in_fit_before_tracing(code):
    codes = _codes(fields=(5, 4))
    codes[3, 0] = code
    layer = FMLayer(low_rank_dim=K, num_categories=(5, 4))

    def model(codes, y=None):
        return GaussianLink()(layer("fm", codes), y)

    with pytest.raises(ValueError, match=rf"x has 1 codes outside.*row 3 field 0: {code}"):
        fit(model, codes=codes, y=np.zeros(N, np.float32), num_steps=1, progress_bar=False)


def test_traced_codes_out_of_range_give_nan_not_a_clamped_or_wrapped_row():
    """Inside jit the codes cannot be checked; a bad one must not silently pick another row."""
    layer = FMLayer(low_rank_dim=K, num_categories=FIELDS)
    params = _fm_params(_rng(21), sum(FIELDS), 1)
    codes = _codes()
    codes[1, 0] = -1  # would wrap around to the last row
    codes[2, 2] = 6  # global row 15 of 15: would be clamped to the last row
    compiled = jax.jit(lambda c: _run(lambda: layer("fm", c), data=params))
    out = np.asarray(compiled(codes))
    assert np.isnan(out[[1, 2]]).all()
    assert np.isfinite(np.delete(out, [1, 2], axis=0)).all()


def test_bad_code_arrays_and_weights_are_rejected():
    fm = FMLayer(low_rank_dim=K, num_categories=FIELDS)
    with pytest.raises(TypeError, match="x must hold integer category codes"):
        _run(lambda: fm("fm", _one_hot(_codes(), FIELDS)))
    with pytest.raises(ValueError, match="num_categories gives 3 field sizes but x has 2 columns"):
        _run(lambda: fm("fm", _codes()[:, :2]))
    with pytest.raises(TypeError, match=r"takes inputs \(x, values\), got 1"):
        _run(lambda: FMLayer(low_rank_dim=K, num_categories=VOCAB, weighted=True)("fm", _codes()))
    codes, values, _ = _multi_hot()
    weighted = FMLayer(low_rank_dim=K, num_categories=VOCAB, weighted=True)
    with pytest.raises(ValueError, match=r"values has shape \(7, 2\) but the codes x have shape"):
        _run(lambda: weighted("fm", codes, values[:, :2]))
    with pytest.raises(ValueError, match=r"different numbers of rows.*'values': 6"):
        _run(lambda: weighted("fm", codes, values[:6]))
    layer = LowRankInteractionLayer(low_rank_dim=K, x_num_categories=(6, 6, 6), x_weighted=True)
    with pytest.raises(ValueError, match="x_values has 2 columns but num_categories gives 3"):
        _run(lambda: layer("lr", codes, values[:, :2], np.ones((N, 2))))


def test_a_code_repeated_with_weight_in_a_shared_vocabulary_row_is_rejected():
    codes, values, _ = _multi_hot()
    codes[4, 1] = codes[4, 0]  # row 4 has two active codes: make them equal
    with pytest.raises(ValueError, match=r"x repeats a code within a row \(row 4: code"):
        _run(
            lambda: FMLayer(low_rank_dim=K, num_categories=VOCAB, weighted=True)(
                "fm", codes, values
            )
        )
    with pytest.raises(ValueError, match="x repeats a code"):
        _run(lambda: FMLayer(low_rank_dim=K, num_categories=VOCAB)("fm", np.array([[1, 2, 1]])))


# ------------------------------------------------------------------------------- recovery
@pytest.mark.slow
def test_fit_recovers_a_rank_two_fm_over_three_categorical_fields():
    fields, rank, n, noise = (4, 3, 3), 2, 400, 0.2
    rng = _rng(20)
    theta = rng.normal(0.0, 0.8, size=(sum(fields), rank))
    cells = np.array(list(itertools.product(*(range(c) for c in fields))))  # all 36 rows
    codes = cells[rng.integers(0, len(cells), size=n)]

    def truth(codes):
        return _fm_naive(_one_hot(codes, fields).astype(np.float64), theta[:, :, None])[:, 0]

    y = (truth(codes) + noise * rng.normal(size=n)).astype(np.float32)
    layer = FMLayer(low_rank_dim=rank, num_categories=fields)

    def model(codes, y=None):
        return GaussianLink()(layer("fm", codes), y)

    steps = 1500
    result = fit(
        model,
        codes=codes,
        y=y,
        guide="auto_normal",
        batch_size=100,
        num_steps=steps,
        lr=optax.cosine_decay_schedule(0.03, steps),
        num_samples=200,
        progress_bar=False,
    )
    # theta is identified only up to rotation: compare the interaction surface on every cell.
    predicted = result.predict(codes=cells).mean
    error = np.sqrt(np.mean((np.asarray(predicted) - truth(cells)) ** 2))
    assert error < 0.1, error
    assert np.std(truth(cells)) > 0.5  # so the check above means something
    np.testing.assert_allclose(site_summary(result, "obs/sigma"), noise, atol=0.04)
    bad = cells.copy()
    bad[0, 2] = 3
    with pytest.raises(ValueError, match="x has 1 codes outside"):
        result.predict(codes=bad)


@pytest.mark.parametrize("cls", ["EmbeddingLayer", "RandomEffectsLayer"])
def test_weighted_multi_hot_codes_equal_the_weighted_one_hot_product(cls) -> None:
    """Padded multi-hot rows (weight 0 for padding) give weighted_one_hot @ table, no one-hot built."""
    import blayers_plugins

    layer_class = getattr(blayers_plugins, cls)
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 7, size=(6, 4))
    values = rng.uniform(0.5, 2.0, size=(6, 4)).astype(np.float32)
    values[:, 3] = 0.0  # the last column is padding
    layer = layer_class(num_categories=7, weighted=True)
    table = rng.normal(size=(7, 2)).astype(np.float32)
    out = _run(lambda: layer("e", codes, values, units=2), data={"e/theta": table})
    dense = np.zeros((6, 7), np.float32)
    for n in range(6):
        for f in range(4):
            dense[n, codes[n, f]] += values[n, f]
    np.testing.assert_allclose(out, dense @ table, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="values must have the shape of the codes"):
        layer("e", codes, values[:, :2])
    with pytest.raises(TypeError, match="takes inputs \\(x, values\\)"):
        layer("e", codes)
