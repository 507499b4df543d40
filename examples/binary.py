"""Logistic regression on real binary outcomes, vs statsmodels' Logit or scikit-learn's.

    python examples/binary.py [--data fair|breast_cancer] [--num-steps 2000] [--seed 0]

Two data sets that ship with the baselines' packages, split 75/25 into training and test rows
(stratified), covariates standardised with the training mean and sd:

* ``fair`` (default, ``statsmodels.datasets.fair``): 6,366 women surveyed by Redbook in 1974;
  the outcome is whether they reported any extramarital affair, the 8 covariates are marriage
  rating, age, years married, children, religiousness, education and both occupations. The
  model has an adaptive prior,

      b0 ~ Normal(0, 5);  scale ~ HalfNormal(1);  beta_j ~ Normal(0, scale)
      y_i ~ Bernoulli(sigmoid(b0 + x_i @ beta)),

  and the baseline is statsmodels' ``Logit`` (maximum likelihood). With 4,774 training rows and
  9 coefficients the prior is weak and the posterior is close to normal, so the posterior means
  should sit close to the MLE.

* ``breast_cancer`` (``sklearn.datasets.load_breast_cancer``): 569 tumours, malignant or benign,
  30 strongly correlated image features. The model has a fixed prior ``beta_j ~ Normal(0, 1)``
  (same intercept and likelihood), and the baseline is scikit-learn's ``LogisticRegression(C=1)``,
  whose L2 penalty is exactly that prior: it returns the posterior mode (MAP). The classes are
  nearly separable, so the posterior is skewed and its mean lies further from zero than its mode;
  the coefficients agree in sign and order, not to the second decimal.

Prints the coefficients side by side and, on the test rows, accuracy and log loss for both.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

FAIR_FEATURES = (
    "rate_marriage",
    "age",
    "yrs_married",
    "children",
    "religious",
    "educ",
    "occupation",
    "occupation_husb",
)


def load_data(name: str, seed: int) -> dict[str, Any]:
    """Train/test rows (25% test, stratified) with covariates standardised on train."""
    from sklearn.model_selection import train_test_split

    if name == "fair":
        import statsmodels.api as sm

        frame = sm.datasets.fair.load_pandas().data
        x = frame[list(FAIR_FEATURES)].to_numpy(np.float64)
        y = (frame["affairs"].to_numpy() > 0).astype(np.float64)
        features = list(FAIR_FEATURES)
    else:
        from sklearn.datasets import load_breast_cancer

        bunch = load_breast_cancer()
        x, y = bunch.data.astype(np.float64), bunch.target.astype(np.float64)
        features = [str(f) for f in bunch.feature_names]
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=seed, stratify=y
    )
    mean, sd = x_train.mean(0), x_train.std(0)
    return {
        "features": features,
        "x_train": ((x_train - mean) / sd).astype(np.float32),
        "y_train": y_train.astype(np.float32),
        "x_test": ((x_test - mean) / sd).astype(np.float32),
        "y_test": y_test,
    }


def fit_blayers(data_name: str, data: dict[str, Any], args: argparse.Namespace) -> Any:
    import numpyro.distributions as dist
    import optax

    from blayers_core import fit, layer, link

    intercept = layer("intercept", coef_prior=dist.Normal(0.0, 5.0))
    if data_name == "fair":
        linear = layer("adaptive")
    else:
        linear = layer("fixed_prior", coef_prior=dist.Normal(0.0, 1.0))  # = L2 penalty, C = 1
    logit = link("logit")

    def model(x, y=None):
        return logit(intercept("b0", x) + linear("beta", x), y)

    return fit(
        model,
        x=data["x_train"],
        y=data["y_train"],
        loss="batched_elbo",
        guide="auto_multivariate_normal",  # full covariance: correlated covariates
        optimizer="adam",
        lr=optax.cosine_decay_schedule(args.lr, args.num_steps, alpha=0.02),
        batch_size=args.batch_size,
        num_steps=args.num_steps,
        seed=args.seed,
        progress_bar=False,
    )


def fit_baseline(data_name: str, data: dict[str, Any]) -> dict[str, Any]:
    """Coefficients (intercept first), their standard errors where defined, test probabilities."""
    x_train, y_train = data["x_train"].astype(np.float64), data["y_train"].astype(np.float64)
    x_test = data["x_test"].astype(np.float64)
    if data_name == "fair":
        import statsmodels.api as sm

        logit = sm.Logit(y_train, sm.add_constant(x_train)).fit(disp=0)
        return {
            "name": "statsmodels Logit (MLE)",
            "coef": np.asarray(logit.params),
            "se": np.asarray(logit.bse),
            "prob": np.asarray(logit.predict(sm.add_constant(x_test))),
        }
    from sklearn.linear_model import LogisticRegression

    # sklearn minimises ||w||^2 / 2 + C * sum(log loss): C = 1 is the Normal(0, 1) prior's MAP
    # (the intercept is not penalised; the model's Normal(0, 5) intercept prior is nearly flat).
    clf = LogisticRegression(C=1.0, max_iter=10_000).fit(x_train, y_train)
    return {
        "name": "sklearn LogisticRegression(C=1) (MAP)",
        "coef": np.concatenate([clf.intercept_, clf.coef_[0]]),
        "se": None,
        "prob": clf.predict_proba(x_test)[:, 1],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=("fair", "breast_cancer"), default="fair")
    parser.add_argument("--num-steps", type=int, default=2000, help="optimisation steps")
    parser.add_argument(
        "--batch-size", type=int, default=1024, help="rows per minibatch (0: all rows)"
    )
    parser.add_argument("--lr", type=float, default=0.03, help="initial Adam learning rate")
    parser.add_argument("--seed", type=int, default=0, help="seeds the split and the fit")
    args = parser.parse_args(argv)
    args.batch_size = args.batch_size or None

    from sklearn.metrics import accuracy_score, log_loss

    data = load_data(args.data, args.seed)
    y_test = data["y_test"]
    print(
        f"{args.data}: {len(data['y_train'])} training rows, {len(y_test)} test rows, "
        f"{len(data['features'])} standardised covariates; positive share "
        f"{data['y_train'].mean():.3f}"
    )
    baseline = fit_baseline(args.data, data)

    start = time.perf_counter()
    result = fit_blayers(args.data, data, args)
    seconds = time.perf_counter() - start
    samples = result.posterior_samples
    coef_draws = np.concatenate(
        [np.asarray(samples["b0/beta"]), np.asarray(samples["beta/beta"])[..., 0]], axis=1
    ).astype(np.float64)  # (draws, 1 + features)
    eta = coef_draws[:, :1] + coef_draws[:, 1:] @ data["x_test"].T.astype(np.float64)
    prob = np.mean(1.0 / (1.0 + np.exp(-eta)), axis=0)  # posterior predictive P(y = 1)

    out: dict[str, Any] = {
        "data": args.data,
        "baseline": baseline["name"],
        "features": ["intercept", *data["features"]],
        "seconds": seconds,
        "coef": coef_draws.mean(0),
        "coef_sd": coef_draws.std(0),
        "baseline_coef": baseline["coef"],
        "baseline_se": baseline["se"],
        "accuracy": accuracy_score(y_test, prob > 0.5),
        "baseline_accuracy": accuracy_score(y_test, baseline["prob"] > 0.5),
        "log_loss": log_loss(y_test, prob),
        "baseline_log_loss": log_loss(y_test, baseline["prob"]),
    }
    print(f"\nblayers fit in {seconds:.1f} s")
    print(result.summary())
    report(out)
    return out


def report(out: dict[str, Any]) -> None:
    se = out["baseline_se"]
    print(f"\n{'coefficient':<24}{'blayers mean (sd)':>22}   {out['baseline']}")
    for j, name in enumerate(out["features"]):
        sd = f"({out['coef_sd'][j]:.4f})"
        base = f"{out['baseline_coef'][j]:>9.4f}" + (f" ({se[j]:.4f})" if se is not None else "")
        print(f"{name:<24}{out['coef'][j]:>13.4f}{sd:>9}   {base}")
    print(f"\n{'test rows':<24}{'blayers':>9}{'baseline':>12}")
    print(f"{'accuracy':<24}{out['accuracy']:>9.3f}{out['baseline_accuracy']:>12.3f}")
    print(f"{'log loss':<24}{out['log_loss']:>9.4f}{out['baseline_log_loss']:>12.4f}")


if __name__ == "__main__":
    main()
