"""Sparse factorization machine: index input vs a dense one-hot matrix vs myFM (Gibbs sampling).

A synthetic recommender task: three categorical fields (by default 600, 350 and 50 levels), the
target a rank-8 factorization machine plus one bias per level plus Gaussian noise (sd 0.5), split
80/20 into train and test rows. Three fits, each timed end to end (input preparation, compilation,
training, posterior draws and test predictions):

* ``index``: ``FMLayer(num_categories=fields)`` on the ``(n, 3)`` integer codes, fitted with
  ``blayers_core.fit`` on minibatches;
* ``dense``: the same model on the ``(n, sum(fields))`` one-hot matrix (``FMLayer()`` and
  ``AdaptiveLayer()``): the same sites, priors and log density, so the same posterior;
* ``myfm``: myFM's Bayesian FM (Gibbs sampling, rank 8, one hyperprior group per field), when
  ``myfm`` is installed (``pip install myfm``; it is not a dependency of this project).

Each fit runs in a fresh Python process, so each pays its own compilations. Also reported for
``index`` and ``dense``: milliseconds per training step (gather a minibatch on the device, one SVI
update: the work of one step of ``fit``) in a jitted loop, the fastest of 10 chunks after a
warm-up call, outside the end-to-end time. Prints one JSON line; writes nothing (unless
``--compilation-cache DIR`` asks for JAX's persistent compilation cache there, to time warm
starts).

    .venv/bin/python benchmarks/sparse_fm.py [--rows 100000] [--fields 600,350,50] ...
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
from numpyro.infer import SVI, Predictive, init_to_uniform

import blayers_core
from blayers_plugins import AdaptiveLayer, Batched_Trace_ELBO, FMLayer, gaussian_link_exp


# ------------------------------------------------------------------------------------ data
def simulate(args: argparse.Namespace) -> dict[str, Any]:
    """Codes, targets and the train/test split of the synthetic recommender task."""
    rng = np.random.default_rng(args.seed)
    fields, total = tuple(args.fields), sum(args.fields)
    codes = np.stack([rng.integers(0, c, size=args.rows) for c in fields], axis=1)
    offsets = np.concatenate([[0], np.cumsum(fields)[:-1]])
    rows = codes + offsets  # global level ids
    theta = rng.normal(0.0, args.factor_sd, size=(total, args.rank))
    bias = rng.normal(0.0, args.bias_sd, size=total)
    summed = theta[rows].sum(axis=1)
    interactions = 0.5 * (summed**2 - (theta[rows] ** 2).sum(axis=1)).sum(axis=1)
    signal = args.intercept + bias[rows].sum(axis=1) + interactions
    y = (signal + args.noise * rng.normal(size=args.rows)).astype(np.float32)
    order = rng.permutation(args.rows)
    cut = round(0.8 * args.rows)
    train, test = order[:cut], order[cut:]
    return {
        "codes_train": codes[train].astype(np.int32),
        "codes_test": codes[test].astype(np.int32),
        "y_train": y[train],
        "y_test": y[test],
        "signal_sd": float(np.std(signal)),
        "oracle_rmse": float(np.sqrt(np.mean((y[test] - signal[test]) ** 2))),
    }


def one_hot(codes: np.ndarray, fields: tuple[int, ...]) -> np.ndarray:
    offsets = np.concatenate([[0], np.cumsum(fields)[:-1]])
    x = np.zeros((codes.shape[0], sum(fields)), np.float32)
    np.put_along_axis(x, codes + offsets, 1.0, axis=1)
    return x


# ---------------------------------------------------------------------------------- models
def make_models(fields: tuple[int, ...], rank: int) -> dict[str, Callable[..., Any]]:
    """The index-input and dense-input versions of one model, with identical sites and priors.

    intercept ~ Normal(0, 5); per-level biases with the adaptive prior (``linear/scale`` (1,),
    ``linear/beta`` (C, 1)); the rank-``rank`` FM (``fm/scale`` (1,), ``fm/theta`` (C, rank, 1));
    ``y ~ Normal(mu, sigma)`` with ``sigma ~ Exponential(1)``.
    """
    total = sum(fields)
    offsets = jnp.asarray(np.concatenate([[0], np.cumsum(fields)[:-1]]), dtype=jnp.int32)
    fm_index = FMLayer(low_rank_dim=rank, num_categories=fields)
    fm_dense = FMLayer(low_rank_dim=rank)
    linear_dense = AdaptiveLayer()

    def sparse_linear_term(codes: jax.Array) -> jax.Array:
        """BENCHMARK-ONLY, written in plain NumPyro: per-level biases with the adaptive prior,
        by gathering rows of beta. Same sites, priors and output as ``AdaptiveLayer()`` on the
        one-hot matrix (used by the dense model below)."""
        scale = numpyro.sample("linear/scale", dist.HalfNormal(1.0).expand([1]).to_event(1))
        beta = numpyro.sample("linear/beta", dist.Normal(0.0, scale).expand([total, 1]).to_event(2))
        return jnp.take(beta, jnp.asarray(codes) + offsets, axis=0).sum(axis=1)  # (n, 1)

    # record_mu: record the mean as site "mu" for test predictions (not while fitting).
    def index_model(codes: Any, y: Any = None, record_mu: bool = False) -> Any:
        intercept = numpyro.sample("intercept", dist.Normal(0.0, 5.0))
        mu = intercept + sparse_linear_term(codes) + fm_index("fm", codes)
        if record_mu:
            numpyro.deterministic("mu", mu[:, 0])
        return gaussian_link_exp(mu, y)

    def dense_model(x: Any, y: Any = None, record_mu: bool = False) -> Any:
        intercept = numpyro.sample("intercept", dist.Normal(0.0, 5.0))
        mu = intercept + linear_dense("linear", x) + fm_dense("fm", x)
        if record_mu:
            numpyro.deterministic("mu", mu[:, 0])
        return gaussian_link_exp(mu, y)

    return {"index": index_model, "dense": dense_model}


def make_guide(model: Callable[..., Any], args: argparse.Namespace) -> Any:
    # Small random factors to start: at theta = 0 the FM's gradient vanishes (a saddle).
    return blayers_core.guide(
        "auto_normal",
        model,
        init_scale=args.init_scale,
        init_loc_fn=init_to_uniform(radius=args.init_radius),
    )


def learning_rate(args: argparse.Namespace, num_steps: int) -> Any:
    return optax.warmup_cosine_decay_schedule(
        0.0, args.lr, min(100, num_steps // 10), num_steps, end_value=args.lr * 0.01
    )


def rmse(pred: Any, y: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(pred) - y) ** 2)))


# -------------------------------------------------------------------------------- variants
def run_blayers(variant: str, data: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    model = make_models(tuple(args.fields), args.rank)[variant]
    start = time.perf_counter()
    if variant == "index":
        train_in, test_in = {"codes": data["codes_train"]}, {"codes": data["codes_test"]}
    else:
        train_in = {"x": one_hot(data["codes_train"], tuple(args.fields))}
        test_in = {"x": one_hot(data["codes_test"], tuple(args.fields))}
    steps_per_epoch = -(-len(data["y_train"]) // args.batch_size)
    num_steps = args.epochs * steps_per_epoch
    result = blayers_core.fit(
        model,
        **train_in,
        y=data["y_train"],
        guide=make_guide(model, args),
        lr=learning_rate(args, num_steps),
        batch_size=args.batch_size,
        num_steps=num_steps,
        num_samples=args.samples,
        seed=args.seed,
        progress_bar=False,
    )
    fitted = time.perf_counter()
    predictive = Predictive(model, posterior_samples=result.posterior_samples, return_sites=["mu"])
    pred = predictive(jax.random.PRNGKey(1), **test_in, record_mu=True)["mu"].mean(axis=0)
    pred = np.asarray(jax.block_until_ready(pred))
    wall = time.perf_counter() - start
    return {
        "test_rmse": round(rmse(pred, data["y_test"]), 4),
        "wall_s": round(wall, 2),
        "fit_s": round(fitted - start, 2),
        "predict_s": round(wall - (fitted - start), 2),
        "ms_per_step": (
            round(ms_per_step(model, train_in, data["y_train"], args), 3)
            if args.timing_steps
            else None
        ),
        "num_steps": num_steps,
        "sigma_mean": round(float(np.mean(result.posterior_samples["obs/sigma"])), 4),
        "final_loss": round(float(np.mean(result.losses[-steps_per_epoch:])), 1),
    }


def ms_per_step(
    model: Callable[..., Any], rows: dict[str, Any], y: np.ndarray, args: argparse.Namespace
) -> float:
    """Steady-state time of one training step: gather a random batch of rows on the device and
    take one SVI update (the work of one step of ``fit``), in a jitted ``lax.scan``, timed after
    a warm-up (compiling) call."""
    n, batch = len(y), args.batch_size
    device_rows = {k: jnp.asarray(v) for k, v in {**rows, "y": y}.items()}
    svi = SVI(model, make_guide(model, args), optax.adam(1e-3), Batched_Trace_ELBO(num_obs=n))

    def take(key: jax.Array) -> dict[str, jax.Array]:
        index = jax.random.randint(key, (batch,), 0, n)
        return {k: jnp.take(v, index, axis=0) for k, v in device_rows.items()}

    def body(state: Any, key: jax.Array) -> tuple[Any, jax.Array]:
        return svi.update(state, **take(key))  # type: ignore[no-any-return]

    run = jax.jit(lambda state, keys: jax.lax.scan(body, state, keys))
    key = jax.random.PRNGKey(0)
    state = svi.init(key, **take(key))
    keys = jax.random.split(key, (11, args.timing_steps))  # a warm-up and 10 timed chunks
    state, _ = jax.block_until_ready(run(state, keys[0]))  # compiles
    timings = []
    for chunk_keys in keys[1:]:
        start = time.perf_counter()
        state, _ = jax.block_until_ready(run(state, chunk_keys))
        timings.append(time.perf_counter() - start)
    return 1000 * min(timings) / args.timing_steps


def run_floor(data: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """The floor of a cold ``index`` fit: the smallest program that trains the same model the
    same number of steps, hand-written in NumPyro without ``blayers_core.fit``. ``svi.init`` in
    one jitted program, then ONE jitted ``lax.scan`` of ``svi.update`` over random batches
    gathered on the device (a constant learning rate: the schedule costs nothing here), no dry
    run, no posterior draws, no predictions. Its compile time is what an engine cannot go below."""
    model = make_models(tuple(args.fields), args.rank)["index"]
    start = time.perf_counter()
    rows = {"codes": jnp.asarray(data["codes_train"]), "y": jnp.asarray(data["y_train"])}
    n, batch = len(data["y_train"]), args.batch_size
    num_steps = args.epochs * -(-n // batch)
    loss = Batched_Trace_ELBO(num_obs=n)
    svi = SVI(model, make_guide(model, args), optax.adam(args.lr), loss)

    def take(key: jax.Array) -> dict[str, jax.Array]:
        index = jax.random.randint(key, (batch,), 0, n)
        return {k: jnp.take(v, index, axis=0) for k, v in rows.items()}

    def body(state: Any, key: jax.Array) -> tuple[Any, jax.Array]:
        return svi.update(state, **take(key))  # type: ignore[no-any-return]

    init = jax.jit(lambda key: svi.init(key, **take(key)))
    run = jax.jit(lambda state, keys: jax.lax.scan(body, state, keys))
    key = jax.random.PRNGKey(args.seed)
    state = jax.block_until_ready(init(key))
    initialised = time.perf_counter()
    keys = jax.random.split(key, num_steps)
    compiled = run.lower(state, keys).compile()
    ready = time.perf_counter()
    jax.block_until_ready(compiled(state, keys))
    end = time.perf_counter()
    return {
        "wall_s": round(end - start, 2),
        "init_s": round(initialised - start, 2),
        "scan_trace_and_compile_s": round(ready - initialised, 2),
        "steps_s": round(end - ready, 2),
        "num_steps": num_steps,
    }


def run_myfm(data: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    try:
        import myfm
        import scipy.sparse as sps
    except ImportError:
        return {"skipped": "myfm is not installed (pip install myfm)"}
    fields = tuple(args.fields)
    offsets = np.concatenate([[0], np.cumsum(fields)[:-1]])

    def csr(codes: np.ndarray) -> Any:
        n = codes.shape[0]
        cols = (codes + offsets).ravel()
        rows = np.repeat(np.arange(n), len(fields))
        return sps.csr_matrix((np.ones(cols.size), (rows, cols)), shape=(n, sum(fields)))

    start = time.perf_counter()
    fm = myfm.MyFMRegressor(rank=args.rank, random_seed=args.seed)
    fm.fit(
        csr(data["codes_train"]),
        data["y_train"],
        n_iter=args.myfm_iter,
        n_kept_samples=args.myfm_kept,
        group_shapes=list(fields),
    )
    pred = fm.predict(csr(data["codes_test"]))
    wall = time.perf_counter() - start
    return {
        "test_rmse": round(rmse(pred, data["y_test"]), 4),
        "wall_s": round(wall, 2),
        "n_iter": args.myfm_iter,
        "n_kept_samples": args.myfm_kept,
        "version": getattr(myfm, "__version__", "unknown"),
    }


# ------------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=100_000, help="rows before the 80/20 split")
    p.add_argument(
        "--fields",
        type=lambda s: [int(v) for v in s.split(",")],
        default=[600, 350, 50],
        help="levels per categorical field, comma-separated",
    )
    p.add_argument("--rank", type=int, default=8, help="rank of the true and the fitted FM")
    p.add_argument("--noise", type=float, default=0.5, help="noise sd (the RMSE floor)")
    p.add_argument("--factor-sd", type=float, default=0.5, help="sd of the true FM factors")
    p.add_argument("--bias-sd", type=float, default=0.5, help="sd of the true per-level biases")
    p.add_argument("--intercept", type=float, default=3.0, help="true intercept")
    p.add_argument("--seed", type=int, default=0, help="seeds the data and every fit")
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--lr", type=float, default=0.05, help="peak of the warmup-cosine schedule")
    p.add_argument("--init-scale", type=float, default=0.01, help="auto_normal init_scale")
    p.add_argument("--init-radius", type=float, default=0.1, help="init_to_uniform radius")
    p.add_argument("--samples", type=int, default=100, help="posterior draws for predictions")
    p.add_argument("--timing-steps", type=int, default=100, help="steps per timed chunk (0: skip)")
    p.add_argument("--myfm-iter", type=int, default=200, help="myFM Gibbs iterations")
    p.add_argument("--myfm-kept", type=int, default=150, help="myFM draws kept (after burn-in)")
    p.add_argument(
        "--variants",
        type=lambda s: s.split(","),
        default=["index", "dense", "myfm"],
        help="which fits to run, comma-separated: index,dense,myfm,floor (floor: the smallest "
        "hand-written program training the index model, for its compile time)",
    )
    p.add_argument(
        "--compilation-cache",
        default=None,
        metavar="DIR",
        help="use (and fill) blayers' persistent compilation cache in DIR; default: none, every "
        "fit compiles from scratch",
    )
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def run_variant(variant: str, args: argparse.Namespace) -> dict[str, Any]:
    """One fit, in this process."""
    data = simulate(args)
    if variant == "myfm":
        return run_myfm(data, args)
    if variant == "floor":
        return run_floor(data, args)
    return run_blayers(variant, data, args)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:  # one variant in a fresh process: JAX's caches start cold for each
        print(json.dumps(run_variant(args.worker, args)))
        return
    for variant in args.variants:
        if variant not in ("index", "dense", "myfm", "floor"):
            raise SystemExit(f"unknown variant {variant!r}; choose from index, dense, myfm, floor")
    data = simulate(args)
    forwarded = list(argv if argv is not None else sys.argv[1:])
    # blayers' persistent cache is on by default: a cold run must turn it off explicitly.
    env = {**os.environ, "BLAYERS_COMPILATION_CACHE": args.compilation_cache or "off"}
    results: dict[str, Any] = {}
    for variant in args.variants:
        done = subprocess.run(
            [sys.executable, __file__, *forwarded, "--worker", variant],
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )
        if done.returncode != 0:
            raise SystemExit(f"variant {variant!r} failed:\n{done.stderr[-4000:]}")
        results[variant] = json.loads(done.stdout.strip().splitlines()[-1])
    if all(results.get(v, {}).get("ms_per_step") for v in ("index", "dense")):
        results["dense_over_index_step_time"] = round(
            results["dense"]["ms_per_step"] / results["index"]["ms_per_step"], 2
        )
    config = {k: v for k, v in vars(args).items() if k not in ("variants", "worker")}
    print(
        json.dumps(
            {
                "benchmark": "sparse_fm",
                "date": datetime.date.today().isoformat(),
                "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, jax {jax.__version__} "
                f"on {jax.default_backend()}",
                "config": config,
                "train_rows": len(data["y_train"]),
                "test_rows": len(data["y_test"]),
                "signal_sd": round(data["signal_sd"], 3),
                "oracle_test_rmse": round(data["oracle_rmse"], 4),
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
