"""Poisson and negative binomial regression on the RAND Health Insurance Experiment, vs statsmodels.

    python examples/counts.py [--num-steps 4000] [--batch-size 1024] [--seed 0]

The data ship with statsmodels (``statsmodels.datasets.randhie``): 20,190 person-years, the
number of outpatient visits to a doctor (``mdvis``) and 9 covariates (coinsurance, deductible,
income, health status, ...). Rows are split 80/20 into training and test sets; covariates are
standardised with the training mean and sd, so every coefficient is the change in log mean visits
per sd of its covariate.

The models, by name through the plugin registry (x: standardised covariates, y: visits):

    b0 ~ Normal(0, 5);  scale ~ HalfNormal(1);  beta_j ~ Normal(0, scale)
    poisson:            y_i ~ Poisson(exp(b0 + x_i @ beta))
    negative_binomial:  phi ~ Exponential(1);  y_i ~ NB2(mean exp(b0 + x_i @ beta), phi)

The baselines are statsmodels' maximum likelihood fits of the same models on the same design:
``GLM(family=Poisson())`` and ``NegativeBinomial`` (NB2, its ``alpha`` is ``1 / phi``). With
16,000 training rows and 10 coefficients the prior is weak, so the posterior means should sit
close to the MLE. Prints the coefficients side by side and, on the test rows, the mean Poisson
deviance, the log predictive density per row and the share of zero counts each model expects.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
from scipy import stats
from scipy.special import logsumexp
from sklearn.metrics import mean_poisson_deviance

FEATURES = (
    "lncoins",
    "idp",
    "lpi",
    "fmde",
    "physlm",
    "disea",
    "hlthg",
    "hlthf",
    "hlthp",
)


def load_data(seed: int, test_share: float = 0.2) -> dict[str, Any]:
    """RAND HIE visits split into train and test rows, covariates standardised on train."""
    import statsmodels.api as sm

    frame = sm.datasets.randhie.load_pandas().data
    x = frame[list(FEATURES)].to_numpy(np.float64)
    y = frame["mdvis"].to_numpy(np.float64)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = round(test_share * len(y))
    test, train = order[:n_test], order[n_test:]
    mean, sd = x[train].mean(0), x[train].std(0)
    z = (x - mean) / sd
    return {
        "x_train": z[train].astype(np.float32),
        "y_train": y[train].astype(np.float32),
        "x_test": z[test].astype(np.float32),
        "y_test": y[test].astype(np.float32),
    }


def linear_predictor(samples: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """``(draws, rows)`` draws of ``b0 + x @ beta`` from the posterior draws."""
    beta = np.asarray(samples["beta/beta"], np.float64)[..., 0]  # (draws, features)
    b0 = np.asarray(samples["b0/beta"], np.float64)  # (draws, 1)
    return b0 + beta @ x.T.astype(np.float64)


def log_predictive_density(logpmf: np.ndarray) -> float:
    """Mean over rows of ``log mean_s p(y_i | draw s)``, from ``(draws, rows)`` log pmfs."""
    return float(np.mean(logsumexp(logpmf, axis=0) - np.log(logpmf.shape[0])))


def conditional_se(cov: np.ndarray) -> np.ndarray:
    """Each parameter's sd given the others, ``1 / sqrt(diag(cov^-1))``, for a normal law."""
    return 1.0 / np.sqrt(np.diag(np.linalg.inv(cov)))


def fit_blayers(family: str, data: dict[str, Any], args: argparse.Namespace) -> Any:
    import numpyro.distributions as dist
    import optax

    from blayers_core import fit, guide, layer, link

    intercept = layer("intercept", coef_prior=dist.Normal(0.0, 5.0))
    adaptive = layer("adaptive")
    likelihood = link(family)

    def model(x, y=None):
        return likelihood(intercept("b0", x) + adaptive("beta", x), y)

    return fit(
        model,
        x=data["x_train"],
        y=data["y_train"],
        loss="batched_elbo",
        # Mean-field normal guide started at sd 0.01, near the posterior sd of a coefficient
        # with 16,000 rows (NumPyro's default 0.1 takes thousands of minibatch steps to shrink).
        guide=guide("auto_normal", model, init_scale=0.01),
        optimizer="adam",
        lr=optax.cosine_decay_schedule(args.lr, args.num_steps, alpha=0.02),
        batch_size=args.batch_size,
        num_steps=args.num_steps,
        seed=args.seed,
        progress_bar=False,
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-steps", type=int, default=4000, help="optimisation steps per fit")
    parser.add_argument("--batch-size", type=int, default=1024, help="rows per minibatch")
    parser.add_argument("--lr", type=float, default=0.03, help="initial Adam learning rate")
    parser.add_argument("--seed", type=int, default=0, help="seeds the split and the fits")
    args = parser.parse_args(argv)

    import statsmodels.api as sm

    data = load_data(args.seed)
    x_train, y_train = data["x_train"].astype(np.float64), data["y_train"].astype(np.float64)
    x_test, y_test = data["x_test"], data["y_test"].astype(np.float64)
    design_train, design_test = sm.add_constant(x_train), sm.add_constant(x_test.astype(np.float64))
    print(
        f"RAND HIE doctor visits: {len(y_train)} training rows, {len(y_test)} test rows, "
        f"{x_train.shape[1]} standardised covariates; mean visits {y_train.mean():.2f}, "
        f"variance {y_train.var():.1f}, zeros {np.mean(y_train == 0):.1%}"
    )

    glm = sm.GLM(y_train, design_train, family=sm.families.Poisson()).fit()
    nb = sm.NegativeBinomial(y_train, design_train, loglike_method="nb2").fit(disp=0, maxiter=200)
    baselines = {
        "poisson": {
            "name": "GLM Poisson",
            "coef": glm.params,
            "se": glm.bse,
            "cov": np.asarray(glm.cov_params()),
            "phi": None,
        },
        "negative_binomial": {  # the last parameter is alpha = 1 / phi
            "name": "NegativeBinomial",
            "coef": nb.params[:-1],
            "se": nb.bse[:-1],
            "cov": np.asarray(nb.cov_params()),  # coefficients and alpha
            "phi": 1.0 / float(nb.params[-1]),
        },
    }

    out: dict[str, Any] = {"features": ["intercept", *FEATURES], "n_test": len(y_test)}
    for family, baseline in baselines.items():
        start = time.perf_counter()
        result = fit_blayers(family, data, args)
        seconds = time.perf_counter() - start
        samples = result.posterior_samples
        coef_draws = np.concatenate(
            [np.asarray(samples["b0/beta"]), np.asarray(samples["beta/beta"])[..., 0]], axis=1
        )  # (draws, 1 + features)
        rate = np.exp(linear_predictor(samples, x_test))  # (draws, test rows)
        base_rate = np.exp(design_test @ np.asarray(baseline["coef"]))  # (test rows,)
        if family == "poisson":
            logpmf, base_logpmf = (
                stats.poisson.logpmf(y_test, rate),
                stats.poisson.logpmf(y_test, base_rate),
            )
            zeros, base_zeros = np.exp(-rate), np.exp(-base_rate)
            phi = None
        else:  # NB2 with mean m and concentration phi is scipy's nbinom(phi, phi / (phi + m))
            phi_draws = np.asarray(samples["obs/concentration"], np.float64)[:, None]
            base_phi = baseline["phi"]
            logpmf = stats.nbinom.logpmf(y_test, phi_draws, phi_draws / (phi_draws + rate))
            base_logpmf = stats.nbinom.logpmf(y_test, base_phi, base_phi / (base_phi + base_rate))
            zeros = (phi_draws / (phi_draws + rate)) ** phi_draws
            base_zeros = (base_phi / (base_phi + base_rate)) ** base_phi
            phi = float(phi_draws.mean())

        row = {
            "seconds": seconds,
            "coef": coef_draws.mean(0),
            "coef_sd": coef_draws.std(0),
            "baseline_coef": np.asarray(baseline["coef"]),
            "baseline_se": np.asarray(baseline["se"]),
            # a mean-field guide fits each coefficient's sd given all the others, which for a
            # normal posterior with covariance C is 1 / sqrt(diag(C^-1)), below the marginal se
            "baseline_conditional_se": conditional_se(baseline["cov"])[: coef_draws.shape[1]],
            # posterior predictive mean exp(b0 + x beta), averaged over the draws
            "deviance": mean_poisson_deviance(y_test, rate.mean(0)),
            "baseline_deviance": mean_poisson_deviance(y_test, base_rate),
            "lpd": log_predictive_density(logpmf),
            "baseline_lpd": float(np.mean(base_logpmf)),
            "zeros": float(np.mean(zeros)),
            "baseline_zeros": float(np.mean(base_zeros)),
            "observed_zeros": float(np.mean(y_test == 0)),
            "phi": phi,
            "baseline_phi": baseline["phi"],
        }
        out[family] = row
        print(f"\n=== {family}: blayers fit in {seconds:.1f} s ===")
        print(result.summary())
        report(baseline["name"], out["features"], row)
    return out


def report(baseline: str, features: list[str], row: dict[str, Any]) -> None:
    print(
        f"\n{'coefficient':<12}{'blayers mean (sd)':>22}{'statsmodels ' + baseline + ' (se)':>38}"
    )
    for name, c, s, b, se in zip(
        features, row["coef"], row["coef_sd"], row["baseline_coef"], row["baseline_se"], strict=True
    ):
        print(f"{name:<12}{c:>13.4f}{f'({s:.4f})':>9}{b:>29.4f}{f'({se:.4f})':>9}")
    if row["phi"] is not None:
        print(f"{'phi':<12}{row['phi']:>13.4f}{'':>9}{row['baseline_phi']:>29.4f}")
    print(f"\n{'test rows':<24}{'blayers':>9}{'statsmodels':>14}")
    print(f"{'mean Poisson deviance':<24}{row['deviance']:>9.4f}{row['baseline_deviance']:>14.4f}")
    print(f"{'log predictive density':<24}{row['lpd']:>9.4f}{row['baseline_lpd']:>14.4f}")
    print(
        f"{'share of zeros':<24}{row['zeros']:>9.3f}{row['baseline_zeros']:>14.3f}"
        f"   (observed {row['observed_zeros']:.3f})"
    )


if __name__ == "__main__":
    main()
