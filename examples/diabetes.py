"""Fit a Bayesian linear regression with an adaptive prior to scikit-learn's diabetes data.

    python examples/diabetes.py [--out diabetes_fit.png] [--steps 3000]

The model, by name through the plugin registry (standardised features x and target y):

    scale ~ HalfNormal(1);  beta_j ~ Normal(0, scale);  sigma ~ Exponential(1)
    y_i ~ Normal(x_i @ beta, sigma)

Prints the posterior summary next to scikit-learn's BayesianRidge and writes a figure with the
loss curve and a forest plot of the coefficients, named by feature (posterior mean and 90%
interval; ArviZ's highest-density interval when ArviZ is installed).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def load_data() -> tuple[np.ndarray, np.ndarray, list[str]]:
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes()
    x = (bunch.data - bunch.data.mean(0)) / bunch.data.std(0)
    y = (bunch.target - bunch.target.mean()) / bunch.target.std()
    return x.astype(np.float32), y.astype(np.float32), list(bunch.feature_names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="diabetes_fit.png", help="where to write the figure")
    parser.add_argument("--steps", type=int, default=3000, help="optimisation steps")
    parser.add_argument("--batch-size", type=int, default=128, help="rows per minibatch")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")  # write the figure to a file; no window
    import optax

    from blayers_core import fit, layer, link

    x, y, features = load_data()
    adaptive, gaussian = layer("adaptive"), link("gaussian")

    def model(x, y=None):
        return gaussian(adaptive("beta", x), y)

    start = time.perf_counter()
    result = fit(
        model,
        x=x,
        y=y,
        loss="batched_elbo",
        guide="auto_normal",
        optimizer="adam",
        lr=optax.cosine_decay_schedule(0.05, args.steps),
        batch_size=args.batch_size,
        num_steps=args.steps,
        seed=0,
    )
    elapsed = time.perf_counter() - start
    print(f"diabetes: {x.shape[0]} rows, {x.shape[1]} features; fit in {elapsed:.1f} s")
    print(result.summary())

    from sklearn.linear_model import BayesianRidge

    ridge = BayesianRidge().fit(x, y)
    beta = result.summary(sites=["beta/beta"])
    print("\ncoefficient   blayers mean [90% interval]      BayesianRidge")
    for j, name in enumerate(features):
        mean, low, high = beta.iloc[j][["mean", "5%", "95%"]]
        print(f"{name:<12}{mean:>9.3f} [{low:>7.3f}, {high:>7.3f}]{ridge.coef_[j]:>17.3f}")
    predicted = result.predict(x=x).mean
    r2 = 1 - np.sum((y - predicted) ** 2) / np.sum((y - y.mean()) ** 2)
    print(f"\nin-sample R^2: blayers {r2:.3f}, BayesianRidge {ridge.score(x, y):.3f}")

    result.plot(
        args.out, sites=["beta/beta", "beta/scale", "obs/sigma"], labels={"beta/beta": features}
    )
    print(f"figure written to {Path(args.out).resolve()}")


if __name__ == "__main__":
    main()
