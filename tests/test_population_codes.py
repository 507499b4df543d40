"""The population code ``-1`` in the index layers: a zero row inside ``allow_population_codes()``,
an error (concrete codes) or NaN (traced codes) outside it, never another level's row.

Each layer's output is compared with the same output computed by hand from its sampled
parameters, with the rows of population codes left out of the sums.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from numpyro import handlers

from blayers_core import FitResult, allow_population_codes, population_codes_allowed, sample_prior
from blayers_plugins import (
    AR1Layer,
    EmbeddingLayer,
    FixedEffectsLayer,
    FMLayer,
    LowRankInteractionLayer,
    RandomEffectsLayer,
    RandomSlopesLayer,
    RandomWalkLayer,
    gaussian_link_exp,
)

P = -1
CODES = np.array([[0, 3], [P, 1], [2, P], [P, P], [1, 0]], dtype=np.int32)  # 2 fields (3, 4)
OFFSETS = np.array([0, 3])
ONE_FIELD = np.array([2, P, 0, P, 1], dtype=np.int32)
X = np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32)


def run_with_return(layer, *inputs, units=2):
    box = {}

    def fn():
        box["out"] = layer("L", *inputs, units=units)

    tr = handlers.trace(handlers.seed(fn, 0)).get_trace()
    return np.asarray(box["out"]), {k: np.asarray(v["value"]) for k, v in tr.items()}


def bag(table: np.ndarray, codes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``sum_f table[offset_f + code]`` over the fields whose code is not the population code."""
    out = np.zeros((codes.shape[0], *table.shape[1:]), np.float32)
    for n, row in enumerate(codes):
        for f, code in enumerate(row):
            if code != P:
                out[n] += table[offsets[f] + code]
    return out


@pytest.mark.parametrize(
    "layer, site",
    [
        (EmbeddingLayer(num_categories=(3, 4)), "L/theta"),
        (RandomEffectsLayer(num_categories=(3, 4)), "L/theta"),
        (RandomEffectsLayer(num_categories=(3, 4), noncentered=True), "L/theta"),
        (FixedEffectsLayer(num_categories=(3, 4)), "L/theta"),
    ],
)
def test_bag_layers_skip_population_codes(layer, site) -> None:
    with allow_population_codes():
        out, sites = run_with_return(layer, CODES)
    np.testing.assert_allclose(out, bag(sites[site], CODES, OFFSETS), rtol=1e-6, atol=1e-6)
    assert np.all(out[3] == 0)  # both fields unseen: the population mean, zero


def test_single_field_layers_give_zero_for_population_codes() -> None:
    seen = ONE_FIELD != P
    with allow_population_codes():
        for layer, site in [
            (RandomWalkLayer(num_categories=3), "L/theta"),
            (AR1Layer(num_categories=3), "L/theta"),
        ]:
            out, sites = run_with_return(layer, ONE_FIELD)
            np.testing.assert_allclose(out[seen], sites[site][ONE_FIELD[seen]], rtol=1e-6)
            assert np.all(out[~seen] == 0)
        out, sites = run_with_return(RandomSlopesLayer(num_categories=3), X, ONE_FIELD)
    beta = sites["L/beta"]  # (C, d, u)
    expected = np.stack(
        [X[n] @ beta[g] if g != P else np.zeros(2, np.float32) for n, g in enumerate(ONE_FIELD)]
    )
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_factorization_machine_leaves_out_population_codes() -> None:
    codes = np.array([[0, 3, 1], [P, 1, 0], [2, P, P], [1, 0, 1]], dtype=np.int32)
    offsets = np.array([0, 3, 7])
    with allow_population_codes():
        out, sites = run_with_return(FMLayer(low_rank_dim=3, num_categories=(3, 4, 2)), codes)
    theta = sites["L/theta"]  # (C, k, u)
    expected = np.zeros((4, 2), np.float32)
    for n, row in enumerate(codes):
        active = [theta[offsets[f] + c] for f, c in enumerate(row) if c != P]
        for i in range(len(active)):
            for j in range(i + 1, len(active)):
                expected[n] += np.sum(active[i] * active[j], axis=0)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[2], 0, atol=1e-5)  # one active field: no pair to interact


def test_low_rank_interaction_with_a_population_code() -> None:
    layer = LowRankInteractionLayer(low_rank_dim=2, x_num_categories=(3, 4))
    with allow_population_codes():
        out, sites = run_with_return(layer, CODES, X)
    projected_x = bag(sites["L/x_theta"], CODES, OFFSETS)  # (n, k, u)
    projected_z = np.einsum("nd,dku->nku", X, sites["L/z_theta"])
    np.testing.assert_allclose(out, np.sum(projected_x * projected_z, axis=1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "layer, inputs",
    [
        (EmbeddingLayer(num_categories=(3, 4)), (CODES,)),
        (RandomEffectsLayer(num_categories=(3, 4)), (CODES,)),
        (FMLayer(low_rank_dim=2, num_categories=(3, 4)), (CODES,)),
        (RandomWalkLayer(num_categories=3), (ONE_FIELD,)),
        (RandomSlopesLayer(num_categories=3), (X, ONE_FIELD)),
    ],
)
def test_population_codes_outside_the_block_raise(layer, inputs) -> None:
    assert not population_codes_allowed()
    with pytest.raises(ValueError, match="outside their range"):
        run_with_return(layer, *inputs)


def test_traced_population_codes_are_nan_outside_the_block_and_zero_inside() -> None:
    """Under jit the codes cannot be checked: -1 gives NaN, never the last row (a wrap-around),
    and the zero row only inside the block (the flag is read when JAX traces, so each block
    traces its own function, as ``predict`` does)."""
    for layer in (
        RandomEffectsLayer(num_categories=(3, 4)),
        FMLayer(low_rank_dim=2, num_categories=(3, 4)),
    ):

        def traced(layer=layer):
            return jax.jit(lambda codes: handlers.seed(lambda: layer("L", codes, units=2), 0)())

        outside = np.asarray(traced()(CODES))
        with allow_population_codes():
            inside = np.asarray(traced()(CODES))
        has_population = (CODES == P).any(axis=1)
        assert np.isnan(outside[has_population]).all()
        assert np.isfinite(inside).all()
        np.testing.assert_array_equal(outside[~has_population], inside[~has_population])


@pytest.mark.parametrize("population_first", [False, True], ids=["seen-first", "population-first"])
def test_predict_at_the_population_level_in_either_order(population_first) -> None:
    """``predict(..., unseen="population")`` after an ordinary ``predict`` of the same shapes, and
    the other way round: a program compiled outside ``allow_population_codes()`` must not serve a
    call inside it (the unseen rows would be NaN), nor the other way round.

    The model's mean is the random effect alone, so an unseen row's mean is exactly 0 and a seen
    row's is the same whichever call came first."""
    effects = RandomEffectsLayer(num_categories=3)

    def model(g, y=None):  # a new function for each order: the caches start empty
        return gaussian_link_exp(effects("g", g), y)

    codes = np.array([0, 1, 2, 1, 0, 2], dtype=np.int32)
    unseen = np.where(np.arange(6) < 2, P, codes).astype(np.int32)
    prior = sample_prior(model, num_samples=20, seed=0, g=codes)
    result = FitResult(
        model=model,
        guide=None,
        params={},
        losses=np.zeros(0),
        posterior_samples={k: v for k, v in prior.items() if k != "obs"},
        observed_sites=("obs",),
        constants={},
        num_rows=len(codes),
    )

    def seen():
        return result.predict(g=codes, kind="mean", quantiles=()).mean

    def population():
        return result.predict(g=unseen, kind="mean", quantiles=(), unseen="population").mean

    if population_first:
        at_population, known = population(), seen()
    else:
        known, at_population = seen(), population()
    assert np.isfinite(at_population).all()
    np.testing.assert_array_equal(at_population[:2], 0.0)
    np.testing.assert_allclose(at_population[2:], known[2:], rtol=1e-6)
    theta = np.asarray(prior["g/theta"])[..., 0]  # (draws, levels)
    np.testing.assert_allclose(known, theta[:, codes].mean(0), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="outside their range"):
        result.predict(g=unseen, kind="mean")  # and outside the block, -1 still raises
