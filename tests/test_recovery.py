"""Recovery of known parameters of simulated data with ``fit``, for links and layers.

Fitting is what dominates the cost (one compilation per model), so independent components share
one model: each has its own observed site (links with different ``name=``) driven by its own small
layer on shared inputs, and one ``fit`` recovers all of them. Four fits in all:

* continuous links: log-normal, Student-t, gamma, exponential, beta;
* count and discrete links: categorical, zero-inflated Poisson, zero-inflated negative binomial;
* interaction layers: fm3, bilinear, lowrank_bilinear, horseshoe_interaction;
* embedding (two fields, two units driving a per-row Gaussian), mixture and fixed_prior.

Each module-scoped fixture fits once; the tests compare its posterior with the simulation's true
parameters (tolerances of about 3-4 standard errors) and, more tightly, with an independent
estimate where there is one: least squares, or a maximum-likelihood fit with scipy. Factor layers
are not identifiable, so they are compared through the interaction coefficients they imply;
categorical logits only through differences between classes.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import numpyro.distributions as dist
import optax
import pytest
from scipy import optimize, special, stats

import blayers_core
from blayers_plugins.layers import (
    BilinearLayer,
    EmbeddingLayer,
    FixedPriorLayer,
    FM3Layer,
    HorseshoeInteractionLayer,
    LowRankBilinearLayer,
    MixtureLayer,
)
from blayers_plugins.layers.pairwise import cross_products, pairwise_products
from blayers_plugins.links import (
    BetaLink,
    CategoricalLink,
    ExponentialLink,
    GammaLink,
    GaussianLink,
    LogNormalLink,
    StudentTLink,
    ZeroInflatedNegativeBinomialLink,
    ZeroInflatedPoissonLink,
)

pytestmark = pytest.mark.slow

STEPS = 2000
SEED = 0


def _fit(model, seed: int = SEED, **data: Any) -> blayers_core.FitResult:
    return blayers_core.fit(
        model,
        num_steps=STEPS,
        lr=optax.cosine_decay_schedule(0.05, STEPS),
        guide="auto_normal",
        num_samples=400,
        progress_bar=False,
        seed=seed,
        **data,
    )


def _mean(result: blayers_core.FitResult, site: str) -> np.ndarray:
    """Posterior mean of a site, with its shape."""
    return np.asarray(result.posterior_samples[site]).mean(axis=0)


def _design(rng: np.random.Generator, n: int) -> np.ndarray:
    """An intercept column and two standard normal features, ``(n, 3)``."""
    return np.column_stack([np.ones(n), rng.normal(size=(n, 2))]).astype(np.float32)


def _lstsq(features: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.linalg.lstsq(np.asarray(features, np.float64), y, rcond=None)[0]


# ------------------------------------------------------------------------- continuous links
CONTINUOUS = {  # true coefficients on (1, x1, x2) and auxiliary parameters
    "lognormal": {"beta": [0.3, 0.5, -0.4], "sigma": 0.4},
    "student_t": {"beta": [0.5, -0.7, 0.3], "sigma": 0.5},  # df 4, the link's default
    "gamma": {"beta": [0.2, 0.4, -0.3], "shape": 3.0},
    "exponential": {"beta": [0.1, 0.5, 0.3]},
    "beta": {"beta": [-0.3, 0.8, -0.5], "precision": 10.0},
}


def simulate_continuous(seed: int, n: int = 1500) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = _design(rng, n)
    eta = {k: x @ np.asarray(v["beta"]) for k, v in CONTINUOUS.items()}
    p = CONTINUOUS
    y_ln = np.exp(eta["lognormal"] + p["lognormal"]["sigma"] * rng.normal(size=n))
    y_t = eta["student_t"] + p["student_t"]["sigma"] * rng.standard_t(4.0, size=n)
    k = p["gamma"]["shape"]
    y_gamma = rng.gamma(k, np.exp(eta["gamma"]) / k)
    y_exp = rng.exponential(np.exp(eta["exponential"]))
    m, phi = special.expit(eta["beta"]), p["beta"]["precision"]
    y_beta = np.clip(rng.beta(m * phi, (1.0 - m) * phi), 1e-6, 1.0 - 1e-6)
    data = dict(x=x, y_ln=y_ln, y_t=y_t, y_gamma=y_gamma, y_exp=y_exp, y_beta=y_beta)
    return {key: np.asarray(value, np.float32) for key, value in data.items()}


def fit_continuous(seed: int = SEED) -> tuple[blayers_core.FitResult, dict[str, np.ndarray]]:
    layer = FixedPriorLayer(coef_prior=dist.Normal(0.0, 2.0))
    links = {
        "ln": LogNormalLink(name="y_ln"),
        "t": StudentTLink(name="y_t"),
        "gamma": GammaLink(name="y_gamma"),
        "exp": ExponentialLink(name="y_exp"),
        "beta": BetaLink(name="y_beta"),
    }

    def model(x, y_ln=None, y_t=None, y_gamma=None, y_exp=None, y_beta=None):
        targets = {"ln": y_ln, "t": y_t, "gamma": y_gamma, "exp": y_exp, "beta": y_beta}
        for key, link in links.items():
            link(layer(key, x), targets[key])

    data = simulate_continuous(seed)
    return _fit(model, seed=seed, **data), data


@pytest.fixture(scope="module")
def continuous():
    return fit_continuous()


def _coef(result, layer: str) -> np.ndarray:
    return _mean(result, f"{layer}/beta")[:, 0]


def test_lognormal_link_recovers_coefficients_and_scale(continuous):
    result, data = continuous
    truth = CONTINUOUS["lognormal"]
    # log y is Gaussian: least squares on log y is the maximum-likelihood estimate.
    np.testing.assert_allclose(
        _coef(result, "ln"), _lstsq(data["x"], np.log(data["y_ln"])), atol=0.01
    )
    np.testing.assert_allclose(_coef(result, "ln"), truth["beta"], atol=0.05)
    np.testing.assert_allclose(_mean(result, "y_ln/sigma"), truth["sigma"], atol=0.02)


def test_student_t_link_recovers_coefficients_and_scale(continuous):
    result, _ = continuous
    truth = CONTINUOUS["student_t"]
    np.testing.assert_allclose(_coef(result, "t"), truth["beta"], atol=0.08)
    np.testing.assert_allclose(_mean(result, "y_t/sigma"), truth["sigma"], rtol=0.1)


def test_gamma_link_recovers_log_mean_coefficients_and_shape(continuous):
    result, _ = continuous
    truth = CONTINUOUS["gamma"]
    np.testing.assert_allclose(_coef(result, "gamma"), truth["beta"], atol=0.06)
    np.testing.assert_allclose(_mean(result, "y_gamma/shape"), truth["shape"], rtol=0.12)


def test_exponential_link_recovers_log_mean_coefficients(continuous):
    result, _ = continuous
    np.testing.assert_allclose(_coef(result, "exp"), CONTINUOUS["exponential"]["beta"], atol=0.1)


def test_beta_link_recovers_logit_mean_coefficients_and_precision(continuous):
    result, _ = continuous
    truth = CONTINUOUS["beta"]
    np.testing.assert_allclose(_coef(result, "beta"), truth["beta"], atol=0.06)
    np.testing.assert_allclose(_mean(result, "y_beta/precision"), truth["precision"], rtol=0.12)


# ------------------------------------------------------------------ count and discrete links
CATEGORICAL_BETA = np.array(  # (features, classes); class 0 is the reference
    [[0.0, 0.5, -0.3], [0.0, 1.0, -0.8], [0.0, -0.6, 0.9]]
)
ZIP = {"beta": [0.8, 0.5, -0.4], "gate": 0.3}
ZINB = {"beta": [1.5, 0.4, 0.3], "concentration": 2.0, "gate": 0.25}


def simulate_counts(seed: int, n: int = 2000) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = _design(rng, n)
    probs = special.softmax(x @ CATEGORICAL_BETA, axis=1)
    y_cat = (rng.uniform(size=(n, 1)) > np.cumsum(probs, axis=1)).sum(axis=1)
    rate = np.exp(x @ np.asarray(ZIP["beta"]))
    y_zip = np.where(rng.uniform(size=n) < ZIP["gate"], 0, rng.poisson(rate))
    mean, phi = np.exp(x @ np.asarray(ZINB["beta"])), ZINB["concentration"]
    y_zinb = np.where(
        rng.uniform(size=n) < ZINB["gate"], 0, rng.negative_binomial(phi, phi / (phi + mean))
    )
    return {
        "x": x,
        "y_cat": y_cat.astype(np.int32),
        "y_zip": y_zip.astype(np.int32),
        "y_zinb": y_zinb.astype(np.int32),
    }


def fit_counts(seed: int = SEED) -> tuple[blayers_core.FitResult, dict[str, np.ndarray]]:
    layer = FixedPriorLayer(coef_prior=dist.Normal(0.0, 2.0))
    cat = CategoricalLink(num_classes=3, name="y_cat")
    zip_link = ZeroInflatedPoissonLink(name="y_zip")
    zinb_link = ZeroInflatedNegativeBinomialLink(name="y_zinb")

    def model(x, y_cat=None, y_zip=None, y_zinb=None):
        cat(layer("cat", x, units=3), y_cat)
        zip_link(layer("zip", x), y_zip)
        zinb_link(layer("zinb", x), y_zinb)

    data = simulate_counts(seed)
    return _fit(model, seed=seed, **data), data


@pytest.fixture(scope="module")
def counts():
    return fit_counts()


def categorical_mle(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Maximum-likelihood class contrasts ``(d, K)`` (class 0 the reference), with scipy."""
    d, k = x.shape[1], CATEGORICAL_BETA.shape[1]
    x = np.asarray(x, np.float64)

    def nll(b):
        logits = x @ np.concatenate([np.zeros((d, 1)), b.reshape(d, k - 1)], axis=1)
        return -special.log_softmax(logits, axis=1)[np.arange(y.size), y].sum()

    b = optimize.minimize(nll, np.zeros(d * (k - 1)), method="BFGS").x
    return np.concatenate([np.zeros((d, 1)), b.reshape(d, k - 1)], axis=1)


def zero_inflated_mle(x: np.ndarray, y: np.ndarray, negative_binomial: bool) -> dict[str, Any]:
    """Maximum-likelihood coefficients, gate (and concentration) of a zero-inflated model."""
    x = np.asarray(x, np.float64)
    d = x.shape[1]

    def unpack(p):
        out = {"beta": p[:d], "gate": special.expit(p[d])}
        if negative_binomial:
            out["concentration"] = np.exp(p[d + 1])
        return out

    def nll(p):
        q = unpack(p)
        mean = np.exp(x @ q["beta"])
        if negative_binomial:
            phi = q["concentration"]
            logpmf = stats.nbinom.logpmf(y, phi, phi / (phi + mean))
        else:
            logpmf = stats.poisson.logpmf(y, mean)
        gate = q["gate"]
        zero = np.logaddexp(np.log(gate), np.log1p(-gate) + logpmf)
        return -np.where(y == 0, zero, np.log1p(-gate) + logpmf).sum()

    start = np.zeros(d + 1 + negative_binomial)
    return unpack(optimize.minimize(nll, start, method="BFGS").x)


def test_categorical_link_recovers_class_contrasts_and_probabilities(counts):
    result, data = counts
    x, y = data["x"], data["y_cat"]
    draws = np.asarray(result.posterior_samples["cat/beta"])  # (S, 3 features, 3 classes)
    contrasts = (draws - draws[:, :, :1]).mean(axis=0)  # only differences are identified
    np.testing.assert_allclose(contrasts, categorical_mle(x, y), atol=0.05)
    np.testing.assert_allclose(contrasts, CATEGORICAL_BETA, atol=0.3)
    fitted = special.softmax(np.einsum("nd,sdk->snk", x, draws), axis=2).mean(axis=0)
    true = special.softmax(x @ CATEGORICAL_BETA, axis=1)
    assert np.abs(fitted - true).mean() < 0.03, np.abs(fitted - true).mean()


def test_zero_inflated_poisson_link_recovers_rate_coefficients_and_gate(counts):
    result, data = counts
    beta, gate = _coef(result, "zip"), _mean(result, "y_zip/gate")
    mle = zero_inflated_mle(data["x"], data["y_zip"], negative_binomial=False)
    np.testing.assert_allclose(beta, mle["beta"], atol=0.03)
    np.testing.assert_allclose(gate, mle["gate"], atol=0.02)
    np.testing.assert_allclose(beta, ZIP["beta"], atol=0.08)
    np.testing.assert_allclose(gate, ZIP["gate"], atol=0.05)


def test_zero_inflated_negative_binomial_link_recovers_mean_dispersion_and_gate(counts):
    result, data = counts
    beta, gate = _coef(result, "zinb"), _mean(result, "y_zinb/gate")
    concentration = _mean(result, "y_zinb/concentration")
    mle = zero_inflated_mle(data["x"], data["y_zinb"], negative_binomial=True)
    np.testing.assert_allclose(beta, mle["beta"], atol=0.03)
    np.testing.assert_allclose(gate, mle["gate"], atol=0.02)
    np.testing.assert_allclose(concentration, mle["concentration"], rtol=0.1)
    np.testing.assert_allclose(beta, ZINB["beta"], atol=0.12)
    np.testing.assert_allclose(gate, ZINB["gate"], atol=0.05)
    np.testing.assert_allclose(concentration, ZINB["concentration"], rtol=0.25)


# ---------------------------------------------------------------------- interaction layers
TRIPLES = list(itertools.combinations(range(5), 3))  # 10 triples of 5 features
FM3_FACTORS = np.array(  # (d, 2): rank 2, fitted with rank 3 (easier to optimise)
    [[1.0, 0.3], [0.8, -0.7], [-0.9, 0.6], [0.5, 1.0], [-0.4, -0.8]]
)
BILINEAR_W = np.array([[1.0, -0.5, 0.0], [0.6, 0.8, -1.0], [-0.7, 0.0, 0.5]])  # (d_x, d_z)
LOWRANK_W = np.outer([1.0, -0.5, 0.8, 0.0], [0.9, 0.6, -0.7]) + np.outer(
    [0.0, 0.7, 0.3, -0.8], [-0.4, 0.8, 0.5]
)  # rank 2, (4, 3)
PAIR_BETA = np.array([1.5, 0.0, 0.0, -1.0, 0.0, 0.0])  # pairs (0,1) (0,2) (0,3) (1,2) (1,3) (2,3)
INTERACTION_NOISE = {"y_fm3": 0.3, "y_bil": 0.3, "y_lr": 0.3, "y_hs": 2.0}


def implied_triples(factors: np.ndarray) -> np.ndarray:
    """FM3's coefficient of ``x_i x_j x_k`` (``i < j < k``) for factors ``(..., d, rank)``."""
    return np.stack(
        [
            (factors[..., i, :] * factors[..., j, :] * factors[..., k, :]).sum(-1)
            for i, j, k in TRIPLES
        ],
        axis=-1,
    )


def triple_products(x: np.ndarray) -> np.ndarray:
    return np.stack([x[:, i] * x[:, j] * x[:, k] for i, j, k in TRIPLES], axis=1)


def simulate_interactions(seed: int, n: int = 500) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5))  # fm3 uses all 5 columns, the other layers the first 4
    z = rng.normal(size=(n, 3))
    noise = {k: s * rng.normal(size=n) for k, s in INTERACTION_NOISE.items()}
    data = {
        "x": x,
        "z": z,
        "y_fm3": triple_products(x) @ implied_triples(FM3_FACTORS) + noise["y_fm3"],
        "y_bil": np.einsum("ni,ij,nj->n", x[:, :3], BILINEAR_W, z) + noise["y_bil"],
        "y_lr": np.einsum("ni,ij,nj->n", x[:, :4], LOWRANK_W, z) + noise["y_lr"],
        "y_hs": np.asarray(pairwise_products(x[:, :4])) @ PAIR_BETA + noise["y_hs"],
    }
    return {key: np.asarray(value, np.float32) for key, value in data.items()}


def fit_interactions(seed: int = SEED) -> tuple[blayers_core.FitResult, dict[str, np.ndarray]]:
    fm3, bilinear = FM3Layer(low_rank_dim=3), BilinearLayer()
    lowrank, horseshoe = LowRankBilinearLayer(low_rank_dim=2), HorseshoeInteractionLayer(tau0=0.1)
    links = {name: GaussianLink(name=name) for name in INTERACTION_NOISE}

    def model(x, z, y_fm3=None, y_bil=None, y_lr=None, y_hs=None):
        links["y_fm3"](fm3("fm3", x), y_fm3)
        links["y_bil"](bilinear("bil", x[:, :3], z), y_bil)
        links["y_lr"](lowrank("lr", x[:, :4], z), y_lr)
        links["y_hs"](horseshoe("hs", x[:, :4]), y_hs)

    data = simulate_interactions(seed)
    return _fit(model, seed=seed, **data), data


@pytest.fixture(scope="module")
def interactions():
    return fit_interactions()


def _noise_recovered(result, site: str) -> None:
    np.testing.assert_allclose(_mean(result, f"{site}/sigma"), INTERACTION_NOISE[site], rtol=0.15)


def test_fm3_recovers_the_implied_three_way_coefficients(interactions):
    result, data = interactions
    theta = np.asarray(result.posterior_samples["fm3/theta"])[..., 0]  # (S, d, k)
    triples = implied_triples(theta).mean(axis=0)
    least_squares = _lstsq(triple_products(data["x"]), data["y_fm3"])
    np.testing.assert_allclose(triples, least_squares, atol=0.02)
    np.testing.assert_allclose(triples, implied_triples(FM3_FACTORS), atol=0.1)
    _noise_recovered(result, "y_fm3")


def test_bilinear_recovers_the_weight_matrix(interactions):
    result, data = interactions
    w = _mean(result, "bil/beta")[..., 0]
    least_squares = _lstsq(cross_products(data["x"][:, :3], data["z"]), data["y_bil"])
    np.testing.assert_allclose(w.ravel(), least_squares, atol=0.03)
    np.testing.assert_allclose(w, BILINEAR_W, atol=0.08)
    _noise_recovered(result, "y_bil")


def test_lowrank_bilinear_recovers_the_implied_weight_matrix(interactions):
    result, data = interactions
    a = np.asarray(result.posterior_samples["lr/x_theta"])[..., 0]  # (S, d_x, k)
    b = np.asarray(result.posterior_samples["lr/z_theta"])[..., 0]  # (S, d_z, k)
    w = np.einsum("sik,sjk->ij", a, b) / a.shape[0]
    np.testing.assert_allclose(w, LOWRANK_W, atol=0.1)
    least_squares = _lstsq(cross_products(data["x"][:, :4], data["z"]), data["y_lr"])
    np.testing.assert_allclose(w.ravel(), least_squares, atol=0.08)  # full rank: a bit noisier
    _noise_recovered(result, "y_lr")


def test_horseshoe_interaction_keeps_the_active_pairs_and_shrinks_the_rest(interactions):
    result, data = interactions
    beta = _mean(result, "hs/beta")[:, 0]
    signal = PAIR_BETA != 0
    least_squares = _lstsq(pairwise_products(data["x"][:, :4]), data["y_hs"])
    # Large coefficients are left almost unshrunk (close to least squares and to the truth) ...
    np.testing.assert_allclose(beta[signal], least_squares[signal], atol=0.05)
    np.testing.assert_allclose(beta[signal], PAIR_BETA[signal], atol=0.4)  # about 4 SE
    # ... the null pairs are pulled towards zero, inside least squares' noise ...
    assert np.abs(beta[~signal]).sum() < 0.85 * np.abs(least_squares[~signal]).sum()
    assert np.abs(beta[~signal]).max() < 0.2
    # ... because their local scales are much smaller than those of the active pairs.
    local = np.median(np.asarray(result.posterior_samples["hs/lambda"])[..., 0], axis=0)
    assert local[signal].min() > 2 * local[~signal].max(), local
    _noise_recovered(result, "y_hs")


# ---------------------------------------------------------- embedding, mixture, fixed prior
EMB_FIELDS = (6, 3)
EMB_LOC = (np.array([-1.0, -0.4, 0.0, 0.5, 1.0, 1.5]), np.array([-0.5, 0.0, 0.6]))
EMB_RAW_SCALE = (np.array([-1.0, -0.6, -0.2, 0.2, -0.8, 0.0]), np.array([0.0, -0.4, 0.3]))
MIXTURE_BETA = np.array([2.0, 0.0, 0.0, -1.5, 0.0, 1.0])
FIXED_BETA = np.array([0.7, -1.2, 0.4])
MIXTURE_NOISE = 2.0  # least squares' standard errors (0.05) are then wider than the spike


def _cells() -> tuple[np.ndarray, np.ndarray]:
    """True location and scale of every (field 0, field 1) cell, ``(6, 3)`` each."""
    loc = EMB_LOC[0][:, None] + EMB_LOC[1][None, :]
    scale = np.logaddexp(0.0, EMB_RAW_SCALE[0][:, None] + EMB_RAW_SCALE[1][None, :])
    return loc, scale


def simulate_linear(seed: int, n: int = 1800) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    codes = np.column_stack([rng.integers(0, c, n) for c in EMB_FIELDS]).astype(np.int32)
    loc, scale = _cells()
    y_emb = loc[codes[:, 0], codes[:, 1]] + scale[codes[:, 0], codes[:, 1]] * rng.normal(size=n)
    w = rng.normal(size=(n, MIXTURE_BETA.size))
    y_mix = w @ MIXTURE_BETA + MIXTURE_NOISE * rng.normal(size=n)
    v = rng.normal(size=(n, FIXED_BETA.size))
    y_fixed = v @ FIXED_BETA + 0.5 * rng.normal(size=n)
    floats = dict(w=w, y_emb=y_emb, y_mix=y_mix, v=v, y_fixed=y_fixed)
    return {"codes": codes, **{k: np.asarray(a, np.float32) for k, a in floats.items()}}


def fit_linear(seed: int = SEED) -> tuple[blayers_core.FitResult, dict[str, Any]]:
    embedding = EmbeddingLayer(num_categories=EMB_FIELDS)
    mixture = MixtureLayer(component_dists=(dist.Normal(0.0, 0.02), dist.Normal(0.0, 2.0)))
    fixed = FixedPriorLayer(coef_prior=dist.Laplace(0.0, 1.0))
    emb_link = GaussianLink(scale="per_row", name="y_emb")
    mix_link, fixed_link = GaussianLink(name="y_mix"), GaussianLink(name="y_fixed")

    def model(codes, w, v, y_emb=None, y_mix=None, y_fixed=None):
        emb_link(embedding("emb", codes, units=2), y_emb)  # (location, raw scale) per row
        mix_link(mixture("mix", w), y_mix)
        fixed_link(fixed("fixed", v), y_fixed)

    data = simulate_linear(seed)
    return _fit(model, seed=seed, **data), data


@pytest.fixture(scope="module")
def linear():
    return fit_linear()


def test_embedding_recovers_the_location_and_scale_of_every_cell(linear):
    result, data = linear
    theta = np.asarray(result.posterior_samples["emb/theta"])  # (S, 6 + 3, 2): two fields
    first, second = theta[:, : EMB_FIELDS[0]], theta[:, EMB_FIELDS[0] :]
    cell = first[:, :, None, :] + second[:, None, :, :]  # summed over fields, (S, 6, 3, 2)
    loc_hat = cell[..., 0].mean(axis=0)
    scale_hat = np.logaddexp(0.0, cell[..., 1]).mean(axis=0)
    loc, scale = _cells()
    np.testing.assert_allclose(loc_hat, loc, atol=0.15)
    np.testing.assert_allclose(scale_hat, scale, rtol=0.2)
    # Independent estimate: least squares on the one-hot codes of both fields (additive cells).
    codes, y = data["codes"], data["y_emb"]
    one_hot = np.concatenate(
        [np.eye(size)[codes[:, field]] for field, size in enumerate(EMB_FIELDS)], axis=1
    )
    coef = _lstsq(one_hot, y)
    cells_ls = coef[: EMB_FIELDS[0], None] + coef[None, EMB_FIELDS[0] :]
    np.testing.assert_allclose(loc_hat, cells_ls, atol=0.1)


def test_mixture_prior_recovers_coefficients_and_shrinks_the_null_ones(linear):
    result, data = linear
    beta = _mean(result, "mix/beta")[:, 0]
    signal = MIXTURE_BETA != 0
    least_squares = _lstsq(data["w"], data["y_mix"])
    np.testing.assert_allclose(beta[signal], least_squares[signal], atol=0.03)
    np.testing.assert_allclose(beta[signal], MIXTURE_BETA[signal], atol=0.2)
    # The spike (sd 0.02) pulls the null coefficients in, well inside least squares' noise.
    assert np.abs(beta[~signal]).sum() < 0.5 * np.abs(least_squares[~signal]).sum()
    assert np.abs(beta[~signal]).max() < 0.05
    np.testing.assert_allclose(_mean(result, "y_mix/sigma"), MIXTURE_NOISE, rtol=0.1)


def test_fixed_prior_layer_recovers_least_squares(linear):
    result, data = linear
    beta = _mean(result, "fixed/beta")[:, 0]
    np.testing.assert_allclose(beta, _lstsq(data["v"], data["y_fixed"]), atol=0.02)
    np.testing.assert_allclose(beta, FIXED_BETA, atol=0.08)
    np.testing.assert_allclose(_mean(result, "y_fixed/sigma"), 0.5, rtol=0.15)
