"""Coverage of minibatch VI (and of NUTS, as a reference) on data simulated from the prior.

    .venv/bin/python benchmarks/calibration.py                      # K=100 VI fits, 20 NUTS fits
    .venv/bin/python benchmarks/calibration.py --correlation 0.9    # strongly correlated features
    .venv/bin/python benchmarks/calibration.py --datasets 10 --nuts-datasets 0   # a smoke run

The model is the README's regression, an adaptive linear layer and a Gaussian link::

    linear/scale ~ HalfNormal(1); linear/beta ~ Normal(0, linear/scale); obs/sigma ~ Exponential(1)
    obs ~ Normal(x @ linear/beta, obs/sigma)

For each of K data sets, every latent and ``y`` are drawn jointly from the prior
(``blayers_core.sample_prior``) on one fixed design matrix (standard-normal features with a common
pairwise correlation, ``--correlation``), and the model is fitted with the default VI of
``blayers_core.fit`` (``batched_elbo``, ``auto_normal`` mean-field guide, Adam) on minibatches.
For every scalar parameter the script reports the fraction of data sets whose central 90%
posterior interval (5% and 95% quantiles of the posterior draws) holds the true value. For a
calibrated posterior the expected fraction is 0.90, with a Monte Carlo standard error of
``sqrt(0.9 * 0.1 / K)`` (0.03 for K=100). The first ``--nuts-datasets`` data sets are also
fitted with NUTS for reference. Nothing is asserted; the script prints a table and the command.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from blayers_core import fit, layer, link, sample_prior

#: The central interval whose coverage is measured.
INTERVAL = 0.9
#: Data set ``k`` is drawn with seed ``seed + k`` and fitted with ``seed + k + FIT_SEED_OFFSET``,
#: so the sampler's random numbers never repeat those that drew the true values.
FIT_SEED_OFFSET = 1_000_000

adaptive, gaussian = layer("adaptive"), link("gaussian")

#: A fit: ``(x, y, seed, options) -> posterior draws {site: (draws, ...)}``.
FitFn = Callable[[np.ndarray, np.ndarray, int, argparse.Namespace], Mapping[str, Any]]


def model(x: Any, y: Any = None) -> Any:
    """The README's linear regression: adaptive coefficients and a Gaussian likelihood."""
    return gaussian(adaptive("linear", x), y)


def design_matrix(rows: int, features: int, correlation: float, seed: int) -> np.ndarray:
    """Standard-normal features whose pairs all have correlation ``correlation``."""
    cov = np.full((features, features), correlation) + (1 - correlation) * np.eye(features)
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(rows, features)) @ np.linalg.cholesky(cov).T).astype(np.float32)


def simulate(x: np.ndarray, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """One joint prior draw: the true latent values and the simulated target ``y``."""
    draw = sample_prior(model, num_samples=1, seed=seed, x=x)
    y = np.asarray(draw.pop("obs")[0], dtype=np.float32)
    return {site: np.asarray(value) for site, value in draw.items()}, y


def scalar_items(values: Mapping[str, Any]) -> Iterator[tuple[str, np.ndarray]]:
    """Every scalar element of every site as ``(label, (draws,))``; labels ``site[i]``."""
    for site in sorted(values):
        arr = np.asarray(values[site])
        flat = arr.reshape(arr.shape[0], -1)
        for j in range(flat.shape[1]):
            yield (f"{site}[{j}]" if flat.shape[1] > 1 else site), flat[:, j]


def covered(truth: Mapping[str, np.ndarray], draws: Mapping[str, Any]) -> dict[str, bool]:
    """Whether the central ``INTERVAL`` posterior interval of each scalar holds its true value."""
    true_values = {label: column[0] for label, column in scalar_items(truth)}
    tail = (1 - INTERVAL) / 2
    result = {}
    for label, column in scalar_items(draws):
        lower, upper = np.quantile(column, [tail, 1 - tail])
        result[label] = bool(lower <= true_values[label] <= upper)
    return result


def fit_vi(x: np.ndarray, y: np.ndarray, seed: int, args: argparse.Namespace) -> Mapping[str, Any]:
    """Posterior draws of the default minibatch VI (``batched_elbo``, ``auto_normal``, Adam)."""
    result = fit(
        model,
        batch_size=args.batch_size,
        num_epochs=args.epochs,
        lr=args.lr,
        num_samples=args.draws,
        seed=seed,
        progress_bar=False,
        x=x,
        y=y,
    )
    return result.posterior_samples


def fit_nuts(
    x: np.ndarray, y: np.ndarray, seed: int, args: argparse.Namespace
) -> Mapping[str, Any]:
    """Posterior draws of one NUTS chain on every row (its sampling warnings are counted)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit(
            model,
            method="nuts",
            num_warmup=args.nuts_warmup,
            num_samples=args.nuts_draws,
            num_chains=1,
            seed=seed,
            progress_bar=False,
            x=x,
            y=y,
        )
    args.nuts_warnings += sum("divergent" in str(w.message) for w in caught)
    return result.posterior_samples


def coverage(
    fit_fn: FitFn, x: np.ndarray, datasets: int, args: argparse.Namespace
) -> tuple[dict[str, float], float]:
    """Fraction of ``datasets`` simulated data sets covered per parameter, and seconds per fit."""
    hits: dict[str, list[bool]] = {}
    start = time.perf_counter()
    for k in range(datasets):
        truth, y = simulate(x, args.seed + k)
        draws = fit_fn(x, y, args.seed + k + FIT_SEED_OFFSET, args)
        for label, hit in covered(truth, draws).items():
            hits.setdefault(label, []).append(hit)
    seconds = (time.perf_counter() - start) / max(datasets, 1)
    return {label: float(np.mean(h)) for label, h in hits.items()}, seconds


def table(columns: Mapping[str, Mapping[str, float]]) -> str:
    """A Markdown table: one row per parameter, one column per method."""
    names = list(columns)
    labels = sorted({label for column in columns.values() for label in column})
    lines = [
        "| parameter | " + " | ".join(names) + " |",
        "| --- | " + " | ".join("---:" for _ in names) + " |",
    ]
    for label in labels:
        cells = [f"{columns[n][label]:.2f}" if label in columns[n] else "" for n in names]
        lines.append(f"| `{label}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command-line options (counts, data size, VI and NUTS settings)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=100, help="K data sets fitted with VI")
    parser.add_argument(
        "--nuts-datasets", type=int, default=20, help="the first K' also fitted with NUTS (0: no)"
    )
    parser.add_argument("--rows", type=int, default=2000, help="rows per data set")
    parser.add_argument("--features", type=int, default=2)
    parser.add_argument("--correlation", type=float, default=0.0, help="between features")
    parser.add_argument("--batch-size", type=int, default=100, help="VI rows per step")
    parser.add_argument("--epochs", type=int, default=100, help="VI passes over the data")
    parser.add_argument("--lr", type=float, default=0.01, help="VI Adam learning rate")
    parser.add_argument("--draws", type=int, default=1000, help="VI posterior draws per fit")
    parser.add_argument("--nuts-warmup", type=int, default=500, help="NUTS warm-up iterations")
    parser.add_argument("--nuts-draws", type=int, default=1000, help="NUTS draws per fit")
    parser.add_argument("--seed", type=int, default=0, help="data set k uses seed + k")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Fit the simulated data sets with VI (and NUTS) and print the coverage table."""
    args = parse_args(argv)
    args.nuts_warnings = 0
    x = design_matrix(args.rows, args.features, args.correlation, args.seed)
    columns: dict[str, dict[str, float]] = {}
    vi, vi_seconds = coverage(fit_vi, x, args.datasets, args)
    columns[f"VI (K={args.datasets})"] = vi
    timings = [f"VI {vi_seconds:.2f} s per fit"]
    if args.nuts_datasets > 0:
        nuts, nuts_seconds = coverage(fit_nuts, x, args.nuts_datasets, args)
        columns[f"NUTS (K={args.nuts_datasets})"] = nuts
        timings.append(
            f"NUTS {nuts_seconds:.2f} s per fit, {args.nuts_warnings} fits with divergences"
        )
    print("command:", shlex.join([sys.executable, *sys.argv]))
    print(
        f"coverage of the central {INTERVAL:.0%} posterior interval (expected {INTERVAL:.2f}, "
        f"Monte Carlo s.e. {np.sqrt(INTERVAL * (1 - INTERVAL) / args.datasets):.3f} at "
        f"K={args.datasets}); {args.rows} rows, {args.features} features, correlation "
        f"{args.correlation}; {'; '.join(timings)}"
    )
    print(table(columns))


if __name__ == "__main__":
    main()
