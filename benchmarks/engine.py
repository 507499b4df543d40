"""Training-engine benchmark: blayers' fit against hand-written NumPyro in the same run.

    python benchmarks/engine.py            # n=200k x d=50 and n=1M x d=100, batch 1024
    python benchmarks/engine.py --quick    # n=20k x d=20, for a smoke run

Each variant runs in its own process (so peak memory is its own) and prints nothing; the parent
prints ONE JSON line:

* ``layer_overhead``: time per step of the same engine running the layered model
  (``layer("adaptive")`` + ``link("gaussian")``) and the same model hand-written with
  ``numpyro.sample`` calls, alternating fits in one process; ``ratio`` = layered / hand-written,
  each model's fastest fit (goal <= 1.02), ``median_ratio`` over all fits, and each fit's time.
* per data size: ``fit`` (shuffled minibatches, scan chunks), a hand-written Python loop around a
  jitted ``svi.update`` with NumPy shuffling and slicing (the common NumPyro idiom), and a
  hand-written single ``lax.scan`` over steps with a per-epoch ``jax.random.permutation``:
  steps/s, compile time, time to first step, peak RSS; ``floor_us`` is the memory-bandwidth floor
  of one step (bytes of the batch / measured read bandwidth) and ``x_floor`` how far each is from it.
* ``scaling``: fit's microseconds per step for batch sizes and widths.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time

WARMUP_STEPS = 50


def make_data(n: int, d: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    beta = rng.normal(size=d).astype(np.float32) / np.sqrt(d)
    y = (x @ beta + 0.5 * rng.normal(size=n)).astype(np.float32)
    return x, y


def layered_model():
    from blayers_core import layer, link

    adaptive, gaussian = layer("adaptive"), link("gaussian")

    def model(x, y=None):
        return gaussian(adaptive("beta", x), y)

    return model


def hand_model(x, y=None):
    import numpyro
    import numpyro.distributions as dist

    scale = numpyro.sample("beta/scale", dist.HalfNormal(1.0).expand([1]).to_event(1))
    beta = numpyro.sample("beta/beta", dist.Normal(0.0, scale).expand([x.shape[1], 1]).to_event(2))
    sigma = numpyro.sample("obs/sigma", dist.Exponential(1.0))
    return numpyro.sample("obs", dist.Normal((x @ beta)[:, 0], sigma), obs=y)


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextlib.contextmanager
def timed_chunks():
    """While open, every compiled training chunk waits for its result and appends its wall time
    (s) to the yielded list."""
    import jax

    from blayers_core.engine.program import TrainingProgram

    chunk_times = []
    run_chunk = TrainingProgram.run_chunk

    def timed_chunk(self, *args, **kwargs):
        begin = time.perf_counter()
        out = jax.block_until_ready(run_chunk(self, *args, **kwargs))
        chunk_times.append(time.perf_counter() - begin)
        return out

    TrainingProgram.run_chunk = timed_chunk
    try:
        yield chunk_times
    finally:
        TrainingProgram.run_chunk = run_chunk


def variant_fit(n, d, batch, steps, model_kind="layered"):
    """blayers fit; per-step time from the compiled chunks themselves (median chunk / its steps)."""
    import numpy as np

    from blayers_core import fit

    x, y = make_data(n, d)
    model = layered_model() if model_kind == "layered" else hand_model
    options = dict(batch_size=batch, guide="auto_normal", progress_bar=False, num_samples=10)
    chunk = min(steps, 500)
    start = time.perf_counter()
    fit(model, x=x, y=y, num_steps=1, chunk_size=1, **options)
    first_step = time.perf_counter() - start  # a complete one-step fit in a fresh process
    start = time.perf_counter()
    fit(model, x=x, y=y, num_steps=steps, chunk_size=chunk, **options)
    cold = time.perf_counter() - start

    with timed_chunks() as chunk_times:
        start = time.perf_counter()
        fit(model, x=x, y=y, num_steps=steps, chunk_size=chunk, **options, seed=1)
        warm = time.perf_counter() - start  # cached program: nothing compiles
    per_step = float(np.median(chunk_times)) / chunk
    return {
        "us_per_step": per_step * 1e6,
        "steps_per_s": 1 / per_step,
        "time_to_first_step_s": first_step,
        "compile_s": cold - warm,
        "fixed_cost_per_call_s": warm - sum(chunk_times),
        "peak_rss_mb": peak_rss_mb(),
    }


def variant_layer_overhead(n, d, batch, steps, rounds=5):
    """Layered vs hand-written model in ONE process, alternating fits, so that both see the same
    machine state. Each fit's per-step time is its median chunk (the first chunk, which also waits
    for the data to reach the device, is skipped); ``ratio`` compares each model's fastest fit,
    because on this machine a whole fit sometimes runs in a slow memory mode (about 2x, see
    benchmarks/README.md); ``median_ratio`` compares the medians over the rounds."""
    import numpy as np

    from blayers_core import fit

    x, y = make_data(n, d)
    models = {"layered": layered_model(), "hand_written": hand_model}
    options = dict(batch_size=batch, guide="auto_normal", progress_bar=False, num_samples=10)
    chunk = min(steps, 500)
    per_fit = {name: [] for name in models}
    for model in models.values():  # compile both first
        fit(model, x=x, y=y, num_steps=chunk, chunk_size=chunk, **options)
    with timed_chunks() as chunk_times:
        for seed in range(rounds):
            for name, model in models.items():
                chunk_times.clear()
                fit(model, x=x, y=y, num_steps=steps, chunk_size=chunk, seed=seed + 1, **options)
                per_fit[name].append(float(np.median(chunk_times[1:])) / chunk * 1e6)
    best = {name: min(times) for name, times in per_fit.items()}
    median = {name: float(np.median(times)) for name, times in per_fit.items()}
    return {
        "layered_us": best["layered"],
        "hand_written_us": best["hand_written"],
        "ratio": best["layered"] / best["hand_written"],
        "median_ratio": median["layered"] / median["hand_written"],
        "layered_us_per_fit": per_fit["layered"],
        "hand_written_us_per_fit": per_fit["hand_written"],
    }


def _svi(batch, n):
    import numpyro.optim  # noqa: F401
    import optax
    from numpyro.infer import SVI, init_to_median
    from numpyro.infer.autoguide import AutoNormal

    from blayers_plugins import Batched_Trace_ELBO

    return SVI(
        hand_model,
        AutoNormal(hand_model, init_loc_fn=init_to_median),
        optax.adam(1e-2),
        Batched_Trace_ELBO(num_obs=n),
    )


def variant_python_loop(n, d, batch, steps):
    """jit(svi.update) called from Python; NumPy permutation per epoch, host slicing per step."""
    import jax
    import numpy as np

    x, y = make_data(n, d)
    svi = _svi(batch, n)
    start = time.perf_counter()
    state = svi.init(jax.random.PRNGKey(0), x=x[:batch], y=y[:batch])
    update = jax.jit(svi.update)
    rng = np.random.default_rng(0)
    per_epoch = n // batch
    order = rng.permutation(n)

    def step(state, i):
        nonlocal order
        if i % per_epoch == 0:
            order = rng.permutation(n)
        idx = order[(i % per_epoch) * batch : (i % per_epoch + 1) * batch]
        return update(state, x=x[idx], y=y[idx])

    state, loss = step(state, 0)
    jax.block_until_ready(loss)
    first_step = time.perf_counter() - start
    for i in range(1, WARMUP_STEPS):
        state, loss = step(state, i)
    jax.block_until_ready(loss)
    start = time.perf_counter()
    for i in range(WARMUP_STEPS, steps):
        state, loss = step(state, i)
    jax.block_until_ready(loss)
    per_step = (time.perf_counter() - start) / (steps - WARMUP_STEPS)
    return {
        "us_per_step": per_step * 1e6,
        "steps_per_s": 1 / per_step,
        "time_to_first_step_s": first_step,
        "peak_rss_mb": peak_rss_mb(),
    }


def variant_single_scan(n, d, batch, steps):
    """One lax.scan over all steps; data on device; jax.random.permutation once per epoch."""
    import jax
    import jax.numpy as jnp

    x, y = make_data(n, d)
    svi = _svi(batch, n)
    xd, yd = jnp.asarray(x), jnp.asarray(y)
    per_epoch = n // batch
    start = time.perf_counter()
    state = svi.init(jax.random.PRNGKey(0), x=x[:batch], y=y[:batch])

    def run(state, key, num):
        def body(carry, i):
            state, order = carry
            order = jax.lax.cond(
                i % per_epoch == 0,
                lambda _: jax.random.permutation(jax.random.fold_in(key, i), n),
                lambda o: o,
                order,
            )
            idx = jax.lax.dynamic_slice(order, ((i % per_epoch) * batch,), (batch,))
            state, loss = svi.update(state, x=xd[idx], y=yd[idx])
            return (state, order), loss

        (state, _), losses = jax.lax.scan(body, (state, jnp.arange(n)), jnp.arange(num))
        return state, losses

    compiled = jax.jit(run, static_argnums=2)
    _, losses = compiled(state, jax.random.PRNGKey(1), 1)
    jax.block_until_ready(losses)
    first_step = time.perf_counter() - start
    compiled(state, jax.random.PRNGKey(1), steps)  # compile the long program
    start = time.perf_counter()
    _, losses = compiled(state, jax.random.PRNGKey(2), steps)
    jax.block_until_ready(losses)
    per_step = (time.perf_counter() - start) / steps
    return {
        "us_per_step": per_step * 1e6,
        "steps_per_s": 1 / per_step,
        "time_to_first_step_s": first_step,
        "peak_rss_mb": peak_rss_mb(),
    }


def read_bandwidth_gbs() -> float:
    import numpy as np

    a = np.ones(64 * 2**20 // 4, dtype=np.float32)  # 64 MiB
    a.sum()
    start = time.perf_counter()
    for _ in range(10):
        a.sum()
    return 10 * a.nbytes / (time.perf_counter() - start) / 1e9


VARIANTS = {
    "layer_overhead": variant_layer_overhead,
    "fit": variant_fit,
    "python_loop": variant_python_loop,
    "single_scan": variant_single_scan,
}


def _rounded(values):
    return {
        k: [round(x, 1) for x in v] if isinstance(v, list) else round(v, 3)
        for k, v in values.items()
    }


def in_subprocess(name, *args):
    code = (
        f"import json, sys; sys.path.insert(0, {sys.path[0]!r}); import engine; "
        f"print(json.dumps(engine.VARIANTS[{name!r}](*{list(args)!r})))"
    )
    # Every process compiles from scratch (benchmarks/first_step.py measures the warm cache).
    env = {**os.environ, "BLAYERS_COMPILATION_CACHE": "off"}
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sizes = [(20_000, 20)] if args.quick else [(200_000, 50), (1_000_000, 100)]
    steps = 500 if args.quick else 3000
    batch = 1024
    bandwidth = read_bandwidth_gbs()
    report = {"benchmark": "engine", "batch_size": batch, "read_bandwidth_gbs": round(bandwidth, 2)}
    n0, d0 = sizes[-1]
    overhead = in_subprocess("layer_overhead", n0, d0, batch, steps)
    report["layer_overhead"] = {"n": n0, "d": d0, **_rounded(overhead)}
    for n, d in sizes:
        floor_us = batch * (d + 1) * 4 / (bandwidth * 1e9) * 1e6
        row = {"floor_us": round(floor_us, 1)}
        for name in VARIANTS:
            if name == "layer_overhead":
                continue
            result = in_subprocess(name, n, d, batch, steps)
            result = {k: round(v, 3) for k, v in result.items()}
            result["x_floor"] = round(result["us_per_step"] / floor_us, 2)
            row[name] = result
        row["fit_vs_python_loop"] = round(
            row["fit"]["steps_per_s"] / row["python_loop"]["steps_per_s"], 2
        )
        row["fit_vs_single_scan"] = round(
            row["fit"]["steps_per_s"] / row["single_scan"]["steps_per_s"], 2
        )
        report[f"n{n}_d{d}"] = row
    scaling = {}
    for b in [256, 1024] if args.quick else [256, 1024, 4096]:
        for d in [10, 20] if args.quick else [10, 50, 100]:
            scaling[f"B{b}_d{d}"] = round(
                in_subprocess("fit", 50_000, d, b, 1000 if args.quick else 2000, "layered")[
                    "us_per_step"
                ],
                1,
            )
    report["scaling_us_per_step"] = scaling
    print(json.dumps(report))


if __name__ == "__main__":
    main()
