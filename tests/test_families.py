"""The likelihood families beyond the Gaussian, checked against hand-written NumPyro and scipy.

Every link's log joint equals a plain NumPyro model written with explicit sample statements (often
through a different NumPyro class or parameterisation: ``GammaPoisson`` for NB2,
``OrderedLogistic`` for the ordinal link) and, independently of NumPyro, scipy's densities.
Nothing here is jitted except the fits, which are marked slow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
import pytest
from helpers import assert_same_log_joint, site_summary, trace
from numpyro import handlers
from numpyro.infer.util import log_density
from scipy import special, stats

import blayers_core
from blayers_plugins.layers import FixedPriorLayer
from blayers_plugins.links import GaussianLink
from blayers_plugins.links.families import (
    REGISTERED,
    BetaLink,
    CategoricalLink,
    ExponentialLink,
    GammaLink,
    LogitLink,
    LogNormalLink,
    NegativeBinomialLink,
    OrdinalLink,
    PoissonLink,
    StudentTLink,
    ZeroInflatedNegativeBinomialLink,
    ZeroInflatedPoissonLink,
)

N = 6
RNG = np.random.default_rng(0)
MU = RNG.normal(size=(N, 1)).astype(np.float32)  # one predictor column, as a layer returns
MU2 = RNG.normal(size=(N, 2)).astype(np.float32)  # per-row scale: (location, raw scale)
MU3 = RNG.normal(size=(N, 3)).astype(np.float32)  # categorical logits, K = 3
REAL_Y = RNG.normal(size=N).astype(np.float32)
POSITIVE_Y = RNG.gamma(2.0, 1.0, size=N).astype(np.float32)
COUNTS = np.array([0, 3, 0, 1, 7, 2], np.int32)
BINARY = np.array([0, 1, 1, 0, 1, 0], np.int32)
UNIT_Y = np.array([0.1, 0.5, 0.93, 0.2, 0.61, 0.05], np.float32)
CODES3 = np.array([0, 2, 1, 1, 0, 2], np.int32)
CODES4 = np.array([0, 3, 1, 2, 3, 0], np.int32)


def f64(a: Any) -> np.ndarray:
    return np.asarray(a, np.float64)


def softplus(a: Any) -> np.ndarray:
    return np.logaddexp(0.0, f64(a))


def mean_of(mu: np.ndarray) -> np.ndarray:
    return np.exp(f64(mu[:, 0]))


def ordinal_logpmf(eta: np.ndarray, cutpoints: np.ndarray, y: np.ndarray) -> np.ndarray:
    """log P(y | eta) of the cumulative logit model, in float64 with scipy."""
    upper = np.concatenate([cutpoints, [np.inf]])[y]
    lower = np.concatenate([[-np.inf], cutpoints])[y]
    return np.log(stats.logistic.cdf(upper - eta) - stats.logistic.cdf(lower - eta))


# ----------------------------------------------------------------------------- the cases
@dataclass
class Case:
    """A link, its data and parameters, the hand-written model and scipy's log joint."""

    id: str
    link: Any
    mu: np.ndarray
    y: np.ndarray
    params: dict[str, Any]
    reference: Callable[[np.ndarray, np.ndarray], Any]
    scipy_log_joint: Callable[[np.ndarray, np.ndarray, dict[str, Any]], float]


def _lognormal_ref(mu, y):
    sigma = numpyro.sample("obs/sigma", dist.Exponential(1.0))
    return numpyro.sample(
        "obs",
        dist.TransformedDistribution(dist.Normal(mu[:, 0], sigma), dist.transforms.ExpTransform()),
        obs=y,
    )


def _student_ref(mu, y):
    sigma = numpyro.sample("obs/sigma", dist.Exponential(1.0))
    return numpyro.sample("obs", dist.StudentT(4.0, mu[:, 0], sigma), obs=y)


def _student_learned_df_ref(mu, y):
    sigma = numpyro.sample("obs/sigma", dist.HalfNormal(2.0))
    df = numpyro.sample("obs/df", dist.Gamma(2.0, 0.1))
    return numpyro.sample("obs", dist.StudentT(df, mu[:, 0], sigma), obs=y)


def _student_known_ref(mu, y):
    return numpyro.sample("obs", dist.StudentT(7.0, mu[:, 0], 0.4), obs=y)


def _per_row_ref(family):
    def reference(mu, y):
        sigma = jax.nn.softplus(mu[:, 1])
        return numpyro.sample("obs", family(mu[:, 0], sigma), obs=y)

    return reference


def _gamma_ref(mu, y):
    k = numpyro.sample("obs/shape", dist.Exponential(1.0))
    mean = np.exp(mu[:, 0])
    return numpyro.sample("obs", dist.Gamma(k, k / mean), obs=y)


def _exponential_ref(mu, y):
    return numpyro.sample("obs", dist.Exponential(1.0 / np.exp(mu[:, 0])), obs=y)


def _beta_ref(mu, y):
    phi = numpyro.sample("obs/precision", dist.Exponential(1.0))
    m = 1.0 / (1.0 + np.exp(-mu[:, 0]))
    return numpyro.sample("obs", dist.Beta(m * phi, (1.0 - m) * phi), obs=y)


def _poisson_ref(mu, y):
    return numpyro.sample("obs", dist.Poisson(np.exp(mu[:, 0])), obs=y)


def _nb_ref(mu, y):
    phi = numpyro.sample("obs/concentration", dist.Exponential(1.0))
    mean = np.exp(mu[:, 0])
    return numpyro.sample("obs", dist.GammaPoisson(phi, phi / mean), obs=y)


def _zip_ref(mu, y):
    gate = numpyro.sample("obs/gate", dist.Beta(2.0, 5.0))
    return numpyro.sample("obs", dist.ZeroInflatedPoisson(gate, np.exp(mu[:, 0])), obs=y)


def _zinb_ref(mu, y):
    phi = numpyro.sample("obs/concentration", dist.Exponential(1.0))
    gate = numpyro.sample("obs/gate", dist.Beta(1.0, 1.0))
    rate = np.exp(mu[:, 0])
    # Explicit mixture: log(gate [y = 0] + (1 - gate) NB(y)).
    nb = dist.GammaPoisson(phi, phi / rate).log_prob(y)
    mixture = np.where(
        y == 0, np.logaddexp(np.log(gate), np.log1p(-gate) + nb), np.log1p(-gate) + nb
    )
    numpyro.factor("obs_lik", mixture.sum())


def _logit_ref(mu, y):
    return numpyro.sample("obs", dist.Bernoulli(probs=1.0 / (1.0 + np.exp(-mu[:, 0]))), obs=y)


def _categorical_ref(mu, y):
    probs = np.exp(mu) / np.exp(mu).sum(axis=1, keepdims=True)
    return numpyro.sample("obs", dist.Categorical(probs=probs), obs=y)


def _ordinal_ref(num_classes):
    def reference(mu, y):
        first = numpyro.sample("obs/first_cutpoint", dist.Normal(0.0, 2.0))
        cutpoints = first[None]
        if num_classes > 2:
            gaps = numpyro.sample(
                "obs/cutpoint_gaps", dist.Exponential(1.0).expand([num_classes - 2]).to_event(1)
            )
            cutpoints = np.concatenate([cutpoints, first + np.cumsum(gaps)])
        return numpyro.sample("obs", dist.OrderedLogistic(mu[:, 0], cutpoints), obs=y)

    return reference


def _ordinal_scipy(mu, y, p):
    gaps = f64(p.get("obs/cutpoint_gaps", np.zeros(0)))
    first = float(p["obs/first_cutpoint"])
    cutpoints = first + np.concatenate([[0.0], np.cumsum(gaps)])
    return (
        stats.norm.logpdf(first, 0.0, 2.0)
        + stats.expon.logpdf(gaps).sum()
        + ordinal_logpmf(f64(mu[:, 0]), cutpoints, y).sum()
    )


def _zi_scipy(logpmf, gate, y):
    return np.where(y == 0, np.log(gate + (1 - gate) * np.exp(logpmf)), np.log1p(-gate) + logpmf)


def _nb_logpmf(y, mean, phi):
    return stats.nbinom.logpmf(y, phi, phi / (phi + mean))


CASES = [
    Case(
        "lognormal",
        LogNormalLink(),
        MU,
        POSITIVE_Y,
        {"obs/sigma": np.float32(0.7)},
        _lognormal_ref,
        lambda mu, y, p: (
            stats.expon.logpdf(0.7) + stats.lognorm.logpdf(y, s=0.7, scale=mean_of(mu)).sum()
        ),
    ),
    Case(
        "lognormal_per_row",
        LogNormalLink(scale="per_row"),
        MU2,
        POSITIVE_Y,
        {},
        _per_row_ref(dist.LogNormal),
        lambda mu, y, p: stats.lognorm.logpdf(
            y, s=softplus(mu[:, 1]), scale=np.exp(f64(mu[:, 0]))
        ).sum(),
    ),
    Case(
        "student_t",
        StudentTLink(),
        MU,
        REAL_Y,
        {"obs/sigma": np.float32(0.6)},
        _student_ref,
        lambda mu, y, p: stats.expon.logpdf(0.6) + stats.t.logpdf(y, 4.0, mu[:, 0], 0.6).sum(),
    ),
    Case(
        "student_t_learned_df",
        StudentTLink(df_prior=dist.Gamma(2.0, 0.1), sigma_prior=dist.HalfNormal(2.0)),
        MU,
        REAL_Y,
        {"obs/sigma": np.float32(0.9), "obs/df": np.float32(3.5)},
        _student_learned_df_ref,
        lambda mu, y, p: (
            stats.halfnorm.logpdf(0.9, scale=2.0)
            + stats.gamma.logpdf(3.5, a=2.0, scale=10.0)
            + stats.t.logpdf(y, 3.5, mu[:, 0], 0.9).sum()
        ),
    ),
    Case(
        "student_t_known",
        StudentTLink(df=7.0, scale=0.4),
        MU,
        REAL_Y,
        {},
        _student_known_ref,
        lambda mu, y, p: stats.t.logpdf(y, 7.0, mu[:, 0], 0.4).sum(),
    ),
    Case(
        "student_t_per_row",
        StudentTLink(scale="per_row"),
        MU2,
        REAL_Y,
        {},
        _per_row_ref(lambda loc, s: dist.StudentT(4.0, loc, s)),
        lambda mu, y, p: stats.t.logpdf(y, 4.0, mu[:, 0], softplus(mu[:, 1])).sum(),
    ),
    Case(
        "gaussian_per_row",
        GaussianLink(scale="per_row"),
        MU2,
        REAL_Y,
        {},
        _per_row_ref(dist.Normal),
        lambda mu, y, p: stats.norm.logpdf(y, mu[:, 0], softplus(mu[:, 1])).sum(),
    ),
    Case(
        "gamma",
        GammaLink(),
        MU,
        POSITIVE_Y,
        {"obs/shape": np.float32(2.5)},
        _gamma_ref,
        lambda mu, y, p: (
            stats.expon.logpdf(2.5) + stats.gamma.logpdf(y, a=2.5, scale=mean_of(mu) / 2.5).sum()
        ),
    ),
    Case(
        "exponential",
        ExponentialLink(),
        MU,
        POSITIVE_Y,
        {},
        _exponential_ref,
        lambda mu, y, p: stats.expon.logpdf(y, scale=mean_of(mu)).sum(),
    ),
    Case(
        "beta",
        BetaLink(),
        MU,
        UNIT_Y,
        {"obs/precision": np.float32(5.0)},
        _beta_ref,
        lambda mu, y, p: (
            stats.expon.logpdf(5.0)
            + stats.beta.logpdf(
                y, special.expit(f64(mu[:, 0])) * 5.0, special.expit(-f64(mu[:, 0])) * 5.0
            ).sum()
        ),
    ),
    Case(
        "poisson",
        PoissonLink(),
        MU,
        COUNTS,
        {},
        _poisson_ref,
        lambda mu, y, p: stats.poisson.logpmf(y, mean_of(mu)).sum(),
    ),
    Case(
        "negative_binomial",
        NegativeBinomialLink(),
        MU,
        COUNTS.astype(np.float32),  # counts as whole floats are fine
        {"obs/concentration": np.float32(2.0)},
        _nb_ref,
        lambda mu, y, p: stats.expon.logpdf(2.0) + _nb_logpmf(y, mean_of(mu), 2.0).sum(),
    ),
    Case(
        "zip",
        ZeroInflatedPoissonLink(gate_prior=dist.Beta(2.0, 5.0)),
        MU,
        COUNTS,
        {"obs/gate": np.float32(0.3)},
        _zip_ref,
        lambda mu, y, p: (
            stats.beta.logpdf(0.3, 2.0, 5.0)
            + _zi_scipy(stats.poisson.logpmf(y, mean_of(mu)), 0.3, y).sum()
        ),
    ),
    Case(
        "zinb",
        ZeroInflatedNegativeBinomialLink(),
        MU,
        COUNTS,
        {"obs/concentration": np.float32(1.5), "obs/gate": np.float32(0.2)},
        _zinb_ref,
        lambda mu, y, p: (
            stats.expon.logpdf(1.5) + _zi_scipy(_nb_logpmf(y, mean_of(mu), 1.5), 0.2, y).sum()
        ),
    ),
    Case(
        "logit",
        LogitLink(),
        MU,
        BINARY,
        {},
        _logit_ref,
        lambda mu, y, p: stats.bernoulli.logpmf(y, special.expit(f64(mu[:, 0]))).sum(),
    ),
    Case(
        "categorical",
        CategoricalLink(),
        MU3,
        CODES3,
        {},
        _categorical_ref,
        lambda mu, y, p: special.log_softmax(f64(mu), axis=1)[np.arange(N), y].sum(),
    ),
    Case(
        "ordinal",
        OrdinalLink(num_classes=4),
        MU,
        CODES4,
        {"obs/first_cutpoint": np.float32(-0.5), "obs/cutpoint_gaps": np.float32([0.7, 1.2])},
        _ordinal_ref(4),
        _ordinal_scipy,
    ),
    Case(
        "ordinal_two_classes",
        OrdinalLink(num_classes=2),
        MU,
        BINARY,
        {"obs/first_cutpoint": np.float32(0.3)},
        _ordinal_ref(2),
        _ordinal_scipy,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_log_joint_matches_hand_written_numpyro_and_scipy(case):
    def model(mu, y):
        return case.link(mu, y)

    lp = assert_same_log_joint(model, case.reference, case.params, case.mu, case.y)
    expected = case.scipy_log_joint(case.mu, case.y, case.params)
    np.testing.assert_allclose(lp, expected, rtol=2e-5)


def test_every_registered_link_has_a_log_joint_case():
    covered = {type(c.link) for c in CASES}
    assert set(REGISTERED.values()) <= covered


def test_links_compose_with_a_layer_that_builds_the_predictor_columns():
    """units=2 builds the (location, raw scale) predictor; units=K builds the logits."""
    x = RNG.normal(size=(N, 2)).astype(np.float32)
    params = {
        "loc/beta": RNG.normal(size=(2, 2)).astype(np.float32),
        "cls/beta": RNG.normal(size=(2, 3)).astype(np.float32),
    }

    def model(x):
        GaussianLink(scale="per_row", name="y")(FixedPriorLayer()("loc", x, units=2), REAL_Y)
        CategoricalLink(num_classes=3, name="c")(FixedPriorLayer()("cls", x, units=3), CODES3)

    def reference(x):
        loc_beta = numpyro.sample("loc/beta", dist.Normal(0, 1).expand([2, 2]).to_event(2))
        cls_beta = numpyro.sample("cls/beta", dist.Normal(0, 1).expand([2, 3]).to_event(2))
        out = x @ loc_beta
        numpyro.sample("y", dist.Normal(out[:, 0], jax.nn.softplus(out[:, 1])), obs=REAL_Y)
        numpyro.sample("c", dist.Categorical(logits=x @ cls_beta), obs=CODES3)

    assert_same_log_joint(model, reference, params, x)


def test_ordinal_probabilities_sum_to_one_and_stay_finite_in_the_tails():
    """Closed-form log-probabilities: exact where 1 - sigmoid(30) rounds to 0 in float32."""
    link = OrdinalLink(num_classes=4)
    params = {"obs/first_cutpoint": np.float32(-1.0), "obs/cutpoint_gaps": np.float32([0.5, 2.0])}
    eta = np.array([-30.0, -2.0, 0.0, 0.7, 3.0, 30.0], np.float32)[:, None]
    tr = handlers.trace(handlers.substitute(handlers.seed(lambda: link(eta), 0), params))
    fn = tr.get_trace()["obs"]["fn"]
    probs = np.exp(f64(fn.logits) - special.logsumexp(f64(fn.logits), axis=1, keepdims=True))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.exp(f64(fn.logits)).sum(axis=1), 1.0, atol=1e-5)
    cutpoints = np.array([-1.0, -0.5, 1.5])
    for k in range(4):
        y = np.full(6, k)
        expected = ordinal_logpmf(f64(eta[:, 0]), cutpoints, y)
        finite = np.isfinite(expected)
        np.testing.assert_allclose(
            np.asarray(fn.log_prob(y))[finite], expected[finite], rtol=1e-4, atol=1e-5
        )
    # The extreme rows: log P(y = 3 | eta = -30) = log sigmoid(-31.5), not log(0).
    assert np.isfinite(np.asarray(fn.log_prob(np.full(6, 3)))).all()
    np.testing.assert_allclose(float(fn.log_prob(np.full(6, 3))[0]), -31.5, rtol=1e-5)
    np.testing.assert_allclose(
        OrdinalLink.cutpoints(params["obs/first_cutpoint"], params["obs/cutpoint_gaps"]),
        cutpoints,
        rtol=1e-6,
    )


# -------------------------------------------------------------------------------------- shapes
SHAPE_CASES = [c for c in CASES if c.id in {*REGISTERED, "gaussian_per_row", "lognormal_per_row"}]


@pytest.mark.parametrize("case", SHAPE_CASES, ids=[c.id for c in SHAPE_CASES])
def test_observed_and_drawn_targets_have_one_value_per_row(case):
    mu = case.mu
    tr = trace(lambda: case.link(mu, case.y))
    assert tr["obs"]["is_observed"]
    assert tr["obs"]["fn"].batch_shape == (N,)
    assert tr["obs"]["value"].shape == (N,)
    draws = handlers.seed(lambda: case.link(mu), rng_seed=1)()
    assert draws.shape == (N,)
    # Draws lie in the target's support: feeding them back passes the link's checks.
    if case.id not in {"beta", "gamma"}:  # float32 draws of these may round onto 0 or 1
        trace(lambda: case.link(mu, np.asarray(draws)))


def test_two_links_in_one_model_keep_their_own_sites():
    def model():
        PoissonLink(name="clicks")(MU, COUNTS)
        ZeroInflatedNegativeBinomialLink(name="sales")(MU, COUNTS)
        StudentTLink(name="price", df_prior=dist.Exponential(0.1))(MU, REAL_Y)
        OrdinalLink(name="rating", num_classes=4)(MU, CODES4)
        NegativeBinomialLink()(MU, COUNTS)

    assert set(trace(model)) == {
        "clicks",
        "sales",
        "sales/concentration",
        "sales/gate",
        "price",
        "price/sigma",
        "price/df",
        "rating",
        "rating/first_cutpoint",
        "rating/cutpoint_gaps",
        "obs",
        "obs/concentration",
    }


def test_float_and_bool_codes_are_accepted_and_jit_skips_only_the_value_checks():
    link = CategoricalLink()
    lp_int, _ = log_density(lambda: link(MU3, CODES3), (), {}, {})
    lp_float, _ = log_density(lambda: link(MU3, CODES3.astype(np.float32)), (), {}, {})
    np.testing.assert_allclose(float(lp_float), float(lp_int))
    lp_bool, _ = log_density(lambda: LogitLink()(MU, BINARY.astype(bool)), (), {}, {})
    lp_binary, _ = log_density(lambda: LogitLink()(MU, BINARY), (), {}, {})
    np.testing.assert_allclose(float(lp_bool), float(lp_binary), rtol=1e-6)

    @jax.jit
    def jitted(mu, y):
        return log_density(
            lambda: OrdinalLink(num_classes=4)(mu, y),
            (),
            {},
            {"obs/first_cutpoint": np.float32(0.0), "obs/cutpoint_gaps": np.float32([1.0, 1.0])},
        )[0]

    eager = log_density(
        lambda: OrdinalLink(num_classes=4)(MU, CODES4),
        (),
        {},
        {"obs/first_cutpoint": np.float32(0.0), "obs/cutpoint_gaps": np.float32([1.0, 1.0])},
    )[0]
    np.testing.assert_allclose(float(jitted(MU, CODES4)), float(eager), rtol=1e-6)


# ----------------------------------------------------------------------------- registry
@pytest.mark.parametrize("name", sorted(REGISTERED))
def test_registry_builds_every_family_by_name(name):
    config = {"num_classes": 3} if name == "ordinal" else {}
    link = blayers_core.link(name, name="target", **config)
    assert type(link) is REGISTERED[name]
    assert link.name == "target"
    assert isinstance(blayers_core.link(f"blayers:{name}", **config), REGISTERED[name])


# ------------------------------------------------------------------------- invalid targets
COUNT_LINKS = [
    PoissonLink(),
    NegativeBinomialLink(),
    ZeroInflatedPoissonLink(),
    ZeroInflatedNegativeBinomialLink(),
]


@pytest.mark.parametrize("link", COUNT_LINKS, ids=lambda link: type(link).__name__)
@pytest.mark.parametrize("bad", [-1.0, 2.5, np.nan])
def test_count_links_reject_negative_fractional_and_missing_counts(link, bad):
    y = COUNTS.astype(np.float32)
    y[4] = bad
    with pytest.raises(
        ValueError,
        match=rf"link 'obs' \({type(link).__name__}\): y must hold non-negative integer counts "
        r"\(0, 1, 2, \.\.\.\); 1 of 6 values are outside that \(y\[4\] = ",
    ):
        trace(lambda: link(MU, y))


@pytest.mark.parametrize(
    ("link", "mu", "y", "allowed"),
    [
        (LogitLink(), MU, [0, 1, 2, 0, 1, 0], r"binary outcomes 0 or 1"),
        (LogitLink(), MU, [0, 1, 0.5, 0, 1, 0], r"binary outcomes 0 or 1"),
        (CategoricalLink(), MU3, [0, 1, 3, 0, 1, 0], r"integer class codes 0\.\.2"),
        (CategoricalLink(), MU3, [0, 1, -1, 0, 1, 0], r"integer class codes 0\.\.2"),
        (CategoricalLink(), MU3, [0, 1, 1.5, 0, 1, 0], r"integer class codes 0\.\.2"),
        (OrdinalLink(num_classes=4), MU, [0, 1, 4, 0, 1, 0], r"integer class codes 0\.\.3"),
        (BetaLink(), MU, [0.5, 0.5, 1.0, 0.5, 0.5, 0.5], r"proportions strictly inside \(0, 1\)"),
        (BetaLink(), MU, [0.5, 0.5, 0.0, 0.5, 0.5, 0.5], r"proportions strictly inside \(0, 1\)"),
        (LogNormalLink(), MU, [1, 1, 0, 1, 1, 1], r"strictly positive values \(y > 0\)"),
        (LogNormalLink(scale="per_row"), MU2, [1, 1, -2, 1, 1, 1], r"strictly positive"),
        (GammaLink(), MU, [1, 1, 0, 1, 1, 1], r"strictly positive values \(y > 0\)"),
        (ExponentialLink(), MU, [1, 1, 0, 1, 1, 1], r"strictly positive values \(y > 0\)"),
    ],
    ids=lambda v: type(v).__name__ if hasattr(v, "name") else None,
)
def test_targets_outside_the_support_raise_naming_the_link(link, mu, y, allowed):
    y = np.asarray(y, np.float32)
    with pytest.raises(
        ValueError, match=rf"link 'obs' \({type(link).__name__}\): y must hold {allowed}.*y\[2\]"
    ):
        trace(lambda: link(mu, y))


def test_fit_reports_an_invalid_target_before_training():
    x = RNG.normal(size=(20, 2)).astype(np.float32)
    y = np.arange(20, dtype=np.float32) - 3.0  # three negative counts

    def model(x, y=None):
        return PoissonLink()(FixedPriorLayer()("mu", x), y)

    with pytest.raises(
        ValueError,
        match=r"3 of 20 values are outside that \(y\[0\] = -3, y\[1\] = -2, y\[2\] = -1\)",
    ):
        blayers_core.fit(model, x=x, y=y, num_steps=5, progress_bar=False)


# -------------------------------------------------------------------------- invalid shapes
@pytest.mark.parametrize("link", [GaussianLink, LogNormalLink, StudentTLink])
@pytest.mark.parametrize(("mu", "y"), [(MU, REAL_Y), (MU3, REAL_Y), (MU[:, 0], REAL_Y)])
def test_per_row_scale_needs_a_two_column_predictor(link, mu, y):
    with pytest.raises(
        ValueError,
        match=r"scale='per_row' the predictor mu must have shape \(n, 2\), column 0 the location "
        r"and column 1 the unconstrained scale \(sigma = softplus\(mu\[:, 1\]\)\)",
    ):
        trace(lambda: link(scale="per_row")(mu, np.abs(y)))


@pytest.mark.parametrize("y_shape", [(N, 1), (N, 2), (N - 1,)])
def test_per_row_scale_target_is_one_value_per_row(y_shape):
    with pytest.raises(ValueError, match=r"target y must have shape \(n,\) = \(6,\)"):
        trace(lambda: GaussianLink(scale="per_row")(MU2, np.ones(y_shape, np.float32)))


@pytest.mark.parametrize(
    ("link", "mu", "y", "match"),
    [
        (CategoricalLink(), MU[:, 0], CODES3, r"logits mu must have shape \(n, K\).*K >= 2"),
        (CategoricalLink(), MU, CODES3, r"logits mu must have shape \(n, K\).*got shape \(6, 1\)"),
        (CategoricalLink(num_classes=4), MU3, CODES3, r"K = num_classes = 4, got shape \(6, 3\)"),
        (CategoricalLink(), MU3, np.eye(3)[CODES3], r"one class code per row.*not one-hot"),
        (CategoricalLink(), MU3, CODES3[:, None], r"one class code per row"),
        (OrdinalLink(num_classes=3), MU[:, 0], CODES3[:, None], r"never broadcasts"),
        (PoissonLink(), MU, COUNTS[:-1], r"never broadcasts"),
    ],
)
def test_mismatched_discrete_shapes_raise(link, mu, y, match):
    with pytest.raises(ValueError, match=match):
        trace(lambda: link(mu, y))


# ------------------------------------------------------------------------ invalid arguments
@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (
            lambda: GammaLink(shape_prior=dist.Normal(0.0, 1.0)),
            ValueError,
            r"shape_prior.*positive",
        ),
        (lambda: BetaLink(precision_prior=dist.Beta(1.0, 1.0)), ValueError, "precision_prior"),
        (
            lambda: NegativeBinomialLink(concentration_prior=dist.Exponential),
            TypeError,
            r"concentration_prior must be a numpyro distribution instance",
        ),
        (
            lambda: ZeroInflatedPoissonLink(gate_prior=dist.Exponential(1.0)),
            ValueError,
            r"gate_prior must be a scalar distribution on the unit interval",
        ),
        (
            lambda: ZeroInflatedNegativeBinomialLink(gate_prior=dist.Beta(np.ones(2), 1.0)),
            ValueError,
            r"gate_prior must be a scalar distribution",
        ),
        (lambda: ZeroInflatedPoissonLink(gate_prior=dist.Beta), TypeError, "gate_prior"),
        (lambda: OrdinalLink(), TypeError, "num_classes"),
        (lambda: OrdinalLink(num_classes=1), ValueError, r"num_classes must be an int >= 2"),
        (lambda: OrdinalLink(num_classes=2.0), ValueError, r"num_classes must be an int >= 2"),
        (lambda: OrdinalLink(num_classes=True), ValueError, r"num_classes must be an int >= 2"),
        (
            lambda: OrdinalLink(num_classes=3, first_cutpoint_prior=dist.HalfNormal(1.0)),
            ValueError,
            r"first_cutpoint_prior must be a scalar distribution on the real line",
        ),
        (
            lambda: OrdinalLink(num_classes=3, gap_prior=dist.Normal(0.0, 1.0)),
            ValueError,
            r"gap_prior.*positive reals",
        ),
        (lambda: CategoricalLink(num_classes=1), ValueError, r"num_classes must be an int >= 2"),
        (lambda: StudentTLink(df=-1.0), ValueError, r"df must be a positive number"),
        (
            lambda: StudentTLink(df=3.0, df_prior=dist.Exponential(0.1)),
            ValueError,
            r"df \(fixed degrees of freedom\) or df_prior \(learned\), not both",
        ),
        (lambda: StudentTLink(df_prior=dist.Normal(0, 1)), ValueError, r"df_prior.*positive"),
        (
            lambda: LogNormalLink(scale="per-row"),
            ValueError,
            r"scale must be a positive number \(a known scale\), None .* or 'per_row'",
        ),
        (
            lambda: GaussianLink(scale="per_row", sigma_prior=dist.Exponential(1.0)),
            ValueError,
            r"sigma_prior.*not both",
        ),
        (lambda: LogitLink(mu=1.0), TypeError, "mu"),
    ],
)
def test_bad_constructor_arguments_raise_naming_them(build, error, match):
    with pytest.raises(error, match=match):
        build()


@pytest.mark.parametrize("cls", sorted(REGISTERED.values(), key=lambda c: c.__name__))
def test_link_name_must_be_a_plain_site_name(cls):
    config = {"num_classes": 3} if cls is OrdinalLink else {}
    with pytest.raises(ValueError, match=r"name must be a non-empty str without '/'"):
        cls(name="a/b", **config)


def test_links_are_frozen():
    link = PoissonLink()
    with pytest.raises(AttributeError):
        link.name = "other"  # type: ignore[misc]


# ------------------------------------------------------------------------------- recovery
def _simulate(kind: str, n: int, seed: int):
    rng = np.random.default_rng(seed)
    x = np.column_stack([np.ones(n), rng.normal(size=(n, 2))]).astype(np.float32)
    beta = np.array([0.5, 0.8, -0.6])
    eta = x @ beta
    if kind == "poisson":
        y = rng.poisson(np.exp(eta))
    elif kind == "negative_binomial":
        y = rng.negative_binomial(3.0, 3.0 / (3.0 + np.exp(eta)))  # concentration 3
    elif kind == "logit":
        y = rng.binomial(1, special.expit(eta))
    else:  # ordinal: no intercept in the predictor, cutpoints carry it
        beta = np.array([0.0, 1.2, -0.8])
        eta = x @ beta
        cutpoints = np.array([-1.0, 0.2, 1.5])
        y = (eta[:, None] + rng.logistic(size=(n, 1)) > cutpoints).sum(axis=1)
        x = x[:, 1:]
        beta = beta[1:]
    return x, y.astype(np.int32), beta


RECOVERY = {
    "poisson": (PoissonLink(), 0.12),
    "negative_binomial": (NegativeBinomialLink(concentration_prior=dist.Exponential(0.1)), 0.2),
    "logit": (LogitLink(), 0.3),
    "ordinal": (OrdinalLink(num_classes=4), 0.25),
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(RECOVERY))
def test_fit_recovers_known_coefficients(kind):
    link, tol = RECOVERY[kind]
    x, y, beta = _simulate(kind, 400, seed=3)

    def model(x, y=None):
        return link(FixedPriorLayer(coef_prior=dist.Normal(0.0, 3.0))("mu", x), y)

    steps = 1000
    result = blayers_core.fit(
        model,
        x=x,
        y=y,
        num_steps=steps,
        lr=optax.cosine_decay_schedule(0.05, steps),
        progress_bar=False,
        num_samples=200,
    )
    np.testing.assert_allclose(site_summary(result, "mu/beta"), beta, atol=tol)
    if kind == "negative_binomial":
        np.testing.assert_allclose(site_summary(result, "obs/concentration"), 3.0, rtol=0.4)
    if kind == "ordinal":
        draws = result.posterior_samples
        cutpoints = OrdinalLink.cutpoints(draws["obs/first_cutpoint"], draws["obs/cutpoint_gaps"])
        assert cutpoints.shape == (200, 3)
        np.testing.assert_allclose(cutpoints.mean(axis=0), [-1.0, 0.2, 1.5], atol=0.3)
    assert np.isfinite(result.losses).all()
