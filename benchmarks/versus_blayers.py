"""Side by side with BLayers 0.3.8: cold, warm and second fits, loop throughput, and the floor.

    .venv/bin/python benchmarks/versus_blayers.py            # n=200k x d=50, 2,000 steps, 3 repeats
    .venv/bin/python benchmarks/versus_blayers.py --quick    # smoke run: n=20k x d=20, 200 steps
    .venv/bin/python benchmarks/versus_blayers.py --upstream-python /path/to/bin/python --repeats 5

The case (issue 13): linear regression with an adaptive prior (``scale ~ HalfNormal(1)``,
``beta ~ Normal(0, scale)``, ``sigma ~ Exponential(1)``), float32 data simulated once with a
fixed seed and saved to an ``.npz`` that every process loads (data generation is not timed),
batches of 1,024 shuffled rows, Adam at 0.01, each library's default guide (a diagonal normal in
both). Three kinds of process, each fresh, each started with the right interpreter (this file is
its own child: ``python versus_blayers.py --child '<json>'``):

* ``ours``: ``blayers_core.fit(model, x=x, y=y, batch_size=1024, num_steps=2000, lr=0.01,
  progress_bar=False)`` with ``gaussian(adaptive("beta", x), y)`` (``.venv/bin/python``). It draws
  1,000 posterior draws by default; ``ours_1draw`` is the same with ``num_samples=1`` (the fewest
  it allows), the closest to BLayers, which draws none.
* ``blayers``: BLayers 0.3.8's ``fit(model, y=y, x=x, batch_size=1024, num_steps=2000, lr=0.01)``
  with ``gaussian_link(AdaptiveLayer()("beta", x), y)`` (``/work/upstream-venv/bin/python``); its
  defaults: cosine schedule, ``AutoDiagonalNormal``, automatic reparameterisation, no progress
  bar for batched VI, no posterior draws. Its ``draws_s`` times 1,000 draws from its guide
  afterwards (``guide.sample_posterior``), reported apart.
* ``floor``: the smallest program doing the same work, hand-written NumPyro in our interpreter
  without ``blayers_core``: ``SVI(model, AutoDiagonalNormal, optax.adam(0.01), Trace_ELBO())``
  (the likelihood scaled by n / batch) run as ONE jitted program: ``svi.init`` on the first
  batch, a ``lax.scan`` over the steps (data on the device, batches by ``dynamic_slice`` of one
  NumPy permutation per epoch, drawn in the timed fit) and 1,000 draws from the guide.
  ``svi.init`` runs inside the program because run eagerly it compiles every primitive it meets
  (about 6 s here, more than the rest of the fit).

Processes of one repeat (the JSON's ``results`` keys): ``ours_cold``, ``blayers_cold``,
``ours_1draw`` and ``floor`` (no cache); ``ours_warm`` and ``blayers_warm`` (two processes each,
sharing a new cache folder). Measurements (seconds unless named otherwise; every fit is timed from
just before the call until its result's arrays are ready):

* ``import_s``: ``import jax`` and the library (and ``numpy.load`` of the data), per process.
* ``first_fit_s`` of ``*_cold``: the first fit of a fresh process with no persistent cache
  (ours: ``BLAYERS_COMPILATION_CACHE=off``; BLayers and the floor: JAX's default, which has no
  cache folder, and ``jax_enable_compilation_cache`` set to False to be sure).
* ``first_fit_s`` of ``*_warm``: the first fit of a fresh process whose cache folder a previous
  process filled (ours: ``BLAYERS_COMPILATION_CACHE=<tmp>``; BLayers: ``jax_compilation_cache_dir``
  set to a tmp folder with the minimum compile time and entry size lowered to cache every
  program, as ours does). BLayers' default has no cache, so its default warm first fit is its cold
  one. ``empty_cache_first_fit_s`` is the filling process's own first fit.
* ``second_fit_s``: a second fit in the same process, same shapes, new seed.
* ``chunk_steps_per_s`` (ours) and ``epoch_steps_per_s`` (BLayers): the training loop's
  throughput from its own compiled units in a ``long``-step fit: ours' median compiled chunk (as
  ``benchmarks/engine.py``, while the engine still has ``TrainingProgram.run_chunk``), BLayers'
  median epoch (the time between its per-epoch permutation draws; each epoch is one jitted
  ``lax.scan``). The loop ratio of the table uses these two.
* ``loop_steps_per_s``: fits of ``short`` and ``long`` steps in one process after a warm-up fit
  of each, ``(long - short) / (t_long - t_short)``; ``long - short`` is a whole number of BLayers
  epochs (about 10,000 steps) so that both fits compile the same programs. BLayers recompiles
  its programs in every fit, so its figure carries that compile time's noise (None when the long
  fit happened to be quicker). The floor reports a hand-written Python loop (``jax.jit(
  svi.update)`` with NumPy-shuffled host slices) and a hand-written unshuffled ``lax.scan``.

Each measurement is repeated ``--repeats`` times, the variants alternating (the order reversed
on every other repeat); the parent prints ONE JSON line (medians and mins) and then a table of
medians with the ratios the issue asks for: ours / BLayers for the cold first fit (target <= 1),
the warm first fit (target <= 1/3), the second fit, the loop (target >= 5, steps/s), and ours /
floor for the cold first fit.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OURS_PYTHON = str(ROOT / ".venv" / "bin" / "python")
UPSTREAM_PYTHON = "/work/upstream-venv/bin/python"
BATCH_SIZE = 1024
LEARNING_RATE = 0.01
NUM_DRAWS = 1000
WARMUP_STEPS = 50
CACHE_ENV_VARS = ("BLAYERS_COMPILATION_CACHE", "JAX_COMPILATION_CACHE_DIR")


# --------------------------------------------------------------------------------------------- #
# Shared helpers (run in every interpreter: standard library, NumPy and JAX only)
# --------------------------------------------------------------------------------------------- #


def make_data(path: str, n: int, d: int, seed: int = 0) -> None:
    """Simulate ``y = x @ beta + noise`` (float32) with a fixed seed and save it to ``path``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    beta = (rng.normal(size=d) / np.sqrt(d)).astype(np.float32)
    y = (x @ beta + 0.5 * rng.normal(size=n)).astype(np.float32)
    np.savez(path, x=x, y=y)


def load_data(path: str):
    """The ``(x, y)`` NumPy arrays saved by :func:`make_data`."""
    import numpy as np

    with np.load(path) as data:
        return data["x"], data["y"]


def timed(call) -> tuple[float, object]:
    """Seconds from calling ``call()`` until every array in its result is ready, and the result."""
    import jax

    start = time.perf_counter()
    out = call()
    jax.block_until_ready(out)
    return time.perf_counter() - start, out


def use_jax_cache(folder: str | None) -> None:
    """JAX's persistent compilation cache in ``folder`` (every program cached), or no cache."""
    import jax

    if folder is None:
        jax.config.update("jax_enable_compilation_cache", False)
        return
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)


def loop_rate(fit_steps, short: int, long: int) -> float | None:
    """Steps/s from ``fit_steps(num_steps, seed)`` (seconds): warm both lengths, then time each;
    None when the long fit was not slower (the difference drowned in compile-time noise)."""
    fit_steps(long, 101)
    fit_steps(short, 102)
    t_short = fit_steps(short, 103)
    t_long = fit_steps(long, 104)
    return (long - short) / (t_long - t_short) if t_long > t_short else None


# --------------------------------------------------------------------------------------------- #
# Children: one fresh process each
# --------------------------------------------------------------------------------------------- #


def child_ours(spec: dict) -> dict:
    """``blayers_core.fit`` in this process: first fit, second fit and (optionally) the loop."""
    start = time.perf_counter()
    import jax

    from blayers_core import fit, layer, link

    x, y = load_data(spec["data"])
    out = {"import_s": time.perf_counter() - start}
    adaptive, gaussian = layer("adaptive"), link("gaussian")

    def model(x, y=None):
        return gaussian(adaptive("beta", x), y)

    options = dict(batch_size=BATCH_SIZE, lr=LEARNING_RATE, progress_bar=False)
    if spec.get("num_samples") is not None:
        options["num_samples"] = spec["num_samples"]

    def run(steps: int, seed: int):
        result = fit(model, x=x, y=y, num_steps=steps, seed=seed, **options)
        return result.params, result.posterior_samples, result.losses

    out["first_fit_s"], first = timed(lambda: run(spec["steps"], 0))
    out["num_draws"] = int(jax.tree.leaves(first[1])[0].shape[0])
    out["second_fit_s"], _ = timed(lambda: run(spec["steps"], 1))
    if spec.get("loop"):
        out["loop_steps_per_s"] = loop_rate(
            lambda steps, seed: timed(lambda: run(steps, seed))[0], spec["steps"], spec["long"]
        )
        out["chunk_steps_per_s"] = chunk_rate(run, spec["long"])
    return out


def chunk_rate(run, steps: int) -> float | None:
    """Ours: steps/s of the median compiled chunk of a ``steps``-step fit, as
    ``benchmarks/engine.py`` measures it; None when the engine no longer has that hook."""
    import jax
    import numpy as np

    try:
        from blayers_core.engine.program import TrainingProgram
        from blayers_core.engine.runner import DEFAULT_CHUNK_SIZE

        original = TrainingProgram.run_chunk
    except (ImportError, AttributeError):
        return None
    times: list[float] = []

    def timed_chunk(self, *args, **kwargs):
        begin = time.perf_counter()
        result = jax.block_until_ready(original(self, *args, **kwargs))
        times.append(time.perf_counter() - begin)
        return result

    TrainingProgram.run_chunk = timed_chunk
    try:
        run(steps, 105)
    finally:
        TrainingProgram.run_chunk = original
    full = times[1:-1] or times  # the first waits for data, the last may be short
    chunk = min(DEFAULT_CHUNK_SIZE, steps)
    return chunk / float(np.median(full))


def child_blayers(spec: dict) -> dict:
    """BLayers 0.3.8's ``fit`` in this process: first fit, 1,000 guide draws, second fit, loop."""
    start = time.perf_counter()
    import jax

    use_jax_cache(spec.get("jax_cache"))
    from blayers import AdaptiveLayer, fit, gaussian_link

    x, y = load_data(spec["data"])
    out = {"import_s": time.perf_counter() - start}

    def model(x, y=None):
        return gaussian_link(AdaptiveLayer()("beta", x), y)

    fitted = []

    def run(steps: int, seed: int):
        result = fit(
            model, y=y, x=x, batch_size=BATCH_SIZE, num_steps=steps, lr=LEARNING_RATE, seed=seed
        )
        fitted[:] = [result]
        return result.params, result.losses

    out["first_fit_s"], _ = timed(lambda: run(spec["steps"], 0))
    guide, params, key = fitted[0].guide, fitted[0].params, jax.random.PRNGKey(0)
    out["draws_s"], _ = timed(
        lambda: guide.sample_posterior(key, params, sample_shape=(NUM_DRAWS,))
    )
    out["num_draws"] = 0
    out["second_fit_s"], _ = timed(lambda: run(spec["steps"], 1))
    if spec.get("loop"):
        out["loop_steps_per_s"] = loop_rate(
            lambda steps, seed: timed(lambda: run(steps, seed))[0], spec["steps"], spec["long"]
        )
        out["epoch_steps_per_s"] = epoch_rate(run, spec["long"], -(-spec["n"] // BATCH_SIZE))
    return out


def epoch_rate(run, steps: int, per_epoch: int) -> float | None:
    """BLayers: steps/s of its median epoch in a ``steps``-step fit. Its loop draws each epoch's
    permutation just before waiting for the previous epoch and dispatching the next, so in the
    steady state the time between two draws is one epoch of ``per_epoch`` steps on the device."""
    import numpy as np

    try:
        import blayers.vi_infer as vi_infer

        original = vi_infer._epoch_permutations
    except (ImportError, AttributeError):
        return None
    marks: list[float] = []

    def stamped(*args, **kwargs):
        for permutation in original(*args, **kwargs):
            marks.append(time.perf_counter())
            yield permutation

    vi_infer._epoch_permutations = stamped
    try:
        run(steps, 106)
    finally:
        vi_infer._epoch_permutations = original
    gaps = np.diff(marks)[1:]  # the first gap holds the compilation
    return per_epoch / float(np.median(gaps)) if len(gaps) else None


def floor_svi(n: int, batch: int):
    """Hand-written NumPyro: the adaptive-prior regression (likelihood scaled by n / batch),
    ``AutoDiagonalNormal``, ``optax.adam``, ``Trace_ELBO``; returns ``(svi, guide)``."""
    import numpyro
    import numpyro.distributions as dist
    import optax
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoDiagonalNormal

    def model(x, y=None):
        scale = numpyro.sample("scale", dist.HalfNormal(1.0).expand([1]).to_event(1))
        beta = numpyro.sample("beta", dist.Normal(0.0, scale).expand([x.shape[1], 1]).to_event(2))
        sigma = numpyro.sample("sigma", dist.Exponential(1.0))
        with numpyro.handlers.scale(scale=n / batch):
            return numpyro.sample("obs", dist.Normal((x @ beta)[:, 0], sigma), obs=y)

    guide = AutoDiagonalNormal(model)
    return SVI(model, guide, optax.adam(LEARNING_RATE), Trace_ELBO()), guide


@functools.cache
def floor_program(n: int, batch: int, steps: int):
    """One jitted program, built once per shape: ``svi.init`` on the first batch, a ``lax.scan``
    over ``steps`` shuffled minibatches (batches by ``dynamic_slice`` of row ``i // per_epoch`` of
    ``perms``, one permutation per epoch), then the guide's draws; called as
    ``program(x, y, perms, key)``."""
    import jax
    import jax.numpy as jnp

    svi, guide = floor_svi(n, batch)
    per_epoch = n // batch

    @jax.jit
    def program(x, y, perms, key):
        init_key, draw_key = jax.random.split(key)
        state = svi.init(init_key, x=x[:batch], y=y[:batch])

        def step(state, i):
            row = (i % per_epoch) * batch
            idx = jax.lax.dynamic_slice(perms[i // per_epoch], (row,), (batch,))
            return svi.update(state, x=x[idx], y=y[idx])

        state, losses = jax.lax.scan(step, state, jnp.arange(steps))
        params = svi.get_params(state)
        draws = guide.sample_posterior(draw_key, params, sample_shape=(NUM_DRAWS,))
        return params, draws, losses

    return program


def floor_fit(x, y, steps: int, seed: int):
    """The whole floor fit: one NumPy permutation of the rows per epoch (JAX's sort-based
    ``jax.random.permutation`` of 200k rows takes about 0.1 s an epoch on this CPU), the data to
    the device and one call of :func:`floor_program` (which compiles on its first call in a
    process)."""
    import jax
    import numpy as np

    n = x.shape[0]
    epochs = -(-steps // (n // BATCH_SIZE))
    rng = np.random.default_rng(seed)
    perms = np.stack([rng.permutation(n).astype(np.int32) for _ in range(epochs)])
    xd, yd, perms = jax.device_put((x, y, perms))
    program = floor_program(n, BATCH_SIZE, steps)
    return program(xd, yd, perms, jax.random.PRNGKey(seed))


def floor_python_loop(x, y, steps: int) -> float:
    """Steps/s of ``jax.jit(svi.update)`` called from Python on NumPy-shuffled host slices."""
    import jax
    import numpy as np

    n = x.shape[0]
    svi, _ = floor_svi(n, BATCH_SIZE)
    state = jax.jit(svi.init)(jax.random.PRNGKey(0), x=x[:BATCH_SIZE], y=y[:BATCH_SIZE])
    update = jax.jit(svi.update)
    rng = np.random.default_rng(0)
    per_epoch = n // BATCH_SIZE
    order = rng.permutation(n)
    start = 0.0
    for i in range(steps + WARMUP_STEPS):
        if i == WARMUP_STEPS:
            jax.block_until_ready(state)
            start = time.perf_counter()
        if i % per_epoch == 0:
            order = rng.permutation(n)
        idx = order[(i % per_epoch) * BATCH_SIZE : (i % per_epoch + 1) * BATCH_SIZE]
        state, _ = update(state, x=x[idx], y=y[idx])
    jax.block_until_ready(state)
    return steps / (time.perf_counter() - start)


def floor_unshuffled_scan(x, y, steps: int) -> float:
    """Steps/s of one jitted ``lax.scan`` over contiguous batches of on-device data (the second
    call of the compiled program)."""
    import jax
    import jax.numpy as jnp

    n = x.shape[0]
    svi, _ = floor_svi(n, BATCH_SIZE)
    xd, yd = jax.device_put(x), jax.device_put(y)
    state = jax.jit(svi.init)(jax.random.PRNGKey(0), x=xd[:BATCH_SIZE], y=yd[:BATCH_SIZE])
    per_epoch = n // BATCH_SIZE

    @jax.jit
    def run(state, x, y):
        def step(state, i):
            row = (i % per_epoch) * BATCH_SIZE
            batch_x = jax.lax.dynamic_slice_in_dim(x, row, BATCH_SIZE)
            batch_y = jax.lax.dynamic_slice_in_dim(y, row, BATCH_SIZE)
            return svi.update(state, x=batch_x, y=batch_y)

        return jax.lax.scan(step, state, jnp.arange(steps))

    jax.block_until_ready(run(state, xd, yd))
    seconds, _ = timed(lambda: run(state, xd, yd))
    return steps / seconds


def child_floor(spec: dict) -> dict:
    """The floor: cold fit, second fit in the process, Python-loop and unshuffled-scan rates."""
    start = time.perf_counter()
    import jax
    import numpyro  # noqa: F401
    import optax  # noqa: F401

    use_jax_cache(None)
    x, y = load_data(spec["data"])
    out = {"import_s": time.perf_counter() - start}
    out["first_fit_s"], first = timed(lambda: floor_fit(x, y, spec["steps"], 0))
    out["num_draws"] = int(jax.tree.leaves(first[1])[0].shape[0])
    out["second_fit_s"], _ = timed(lambda: floor_fit(x, y, spec["steps"], 1))
    if spec.get("loop"):
        out["python_loop_steps_per_s"] = floor_python_loop(x, y, spec["steps"])
        out["unshuffled_scan_steps_per_s"] = floor_unshuffled_scan(x, y, spec["long"])
    return out


CHILDREN = {"ours": child_ours, "blayers": child_blayers, "floor": child_floor}


# --------------------------------------------------------------------------------------------- #
# Parent
# --------------------------------------------------------------------------------------------- #


def run_child(python: str, spec: dict, env_cache: str | None = None) -> dict:
    """Run ``spec`` in a fresh ``python`` process; its JSON result, or ``{"error": ...}``.

    ``env_cache`` is the value of ``BLAYERS_COMPILATION_CACHE`` (default ``off``); JAX's own cache
    variable is removed so that only the child's settings decide."""
    env = {k: v for k, v in os.environ.items() if k not in CACHE_ENV_VARS}
    env["BLAYERS_COMPILATION_CACHE"] = env_cache or "off"
    command = [python, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-3:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def one_repeat(spec: dict, upstream: str, reverse: bool) -> dict[str, dict]:
    """Every process of one repeat, in order (or reversed): name -> its measurements."""

    def ours_cold():
        return run_child(OURS_PYTHON, {**spec, "kind": "ours", "loop": True})

    def ours_1draw():
        return run_child(OURS_PYTHON, {**spec, "kind": "ours", "num_samples": 1})

    def ours_warm():
        with tempfile.TemporaryDirectory() as folder:
            filling = run_child(OURS_PYTHON, {**spec, "kind": "ours"}, env_cache=folder)
            warm = run_child(OURS_PYTHON, {**spec, "kind": "ours"}, env_cache=folder)
        return {**warm, "empty_cache_first_fit_s": filling.get("first_fit_s")}

    def blayers_cold():
        return run_child(upstream, {**spec, "kind": "blayers", "loop": True})

    def blayers_warm():
        with tempfile.TemporaryDirectory() as folder:
            cached = {**spec, "kind": "blayers", "jax_cache": folder}
            filling = run_child(upstream, cached)
            warm = run_child(upstream, cached)
        return {**warm, "empty_cache_first_fit_s": filling.get("first_fit_s")}

    def floor():
        return run_child(OURS_PYTHON, {**spec, "kind": "floor", "loop": True})

    steps = [ours_cold, blayers_cold, ours_warm, blayers_warm, ours_1draw, floor]
    return {f.__name__: f() for f in (reversed(steps) if reverse else steps)}


def summarise(runs: list[dict[str, dict]]) -> dict[str, dict]:
    """``{variant: {measure: {"median": m, "min": m}}}`` over the repeats (errors kept apart)."""
    out: dict[str, dict] = {}
    for variant in runs[0]:
        rows = [run[variant] for run in runs]
        summary: dict = {}
        errors = [row["error"] for row in rows if "error" in row]
        if errors:
            summary["errors"] = errors
        keys = {k for row in rows for k, v in row.items() if isinstance(v, (int, float))}
        for key in sorted(keys):
            values = [row[key] for row in rows if isinstance(row.get(key), (int, float))]
            summary[key] = {
                "median": round(statistics.median(values), 4),
                "min": round(min(values), 4),
            }
        out[variant] = summary
    return out


def median_of(summary: dict, variant: str, key: str) -> float | None:
    """The median of ``key`` in ``variant``, or None when it was not measured."""
    return summary.get(variant, {}).get(key, {}).get("median")


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b`` rounded, or None when either is missing."""
    return None if a is None or not b else round(a / b, 3)


def ratios(s: dict) -> dict[str, float | None]:
    """The ratios the issue asks for, from the medians."""
    return {
        "cold_first_fit_ours_over_blayers": ratio(
            median_of(s, "ours_cold", "first_fit_s"), median_of(s, "blayers_cold", "first_fit_s")
        ),
        "cold_first_fit_ours_1draw_over_blayers": ratio(
            median_of(s, "ours_1draw", "first_fit_s"), median_of(s, "blayers_cold", "first_fit_s")
        ),
        "warm_first_fit_ours_over_blayers_default": ratio(
            median_of(s, "ours_warm", "first_fit_s"), median_of(s, "blayers_cold", "first_fit_s")
        ),
        "warm_first_fit_ours_over_blayers_cached": ratio(
            median_of(s, "ours_warm", "first_fit_s"), median_of(s, "blayers_warm", "first_fit_s")
        ),
        "second_fit_ours_over_blayers": ratio(
            median_of(s, "ours_cold", "second_fit_s"), median_of(s, "blayers_cold", "second_fit_s")
        ),
        "second_fit_ours_1draw_over_blayers": ratio(
            median_of(s, "ours_1draw", "second_fit_s"),
            median_of(s, "blayers_cold", "second_fit_s"),
        ),
        "loop_steps_per_s_ours_over_blayers": ratio(
            median_of(s, "ours_cold", "chunk_steps_per_s"),
            median_of(s, "blayers_cold", "epoch_steps_per_s"),
        ),
        "loop_steps_per_s_ours_over_blayers_long_minus_short": ratio(
            median_of(s, "ours_cold", "loop_steps_per_s"),
            median_of(s, "blayers_cold", "loop_steps_per_s"),
        ),
        "loop_steps_per_s_ours_over_python_loop": ratio(
            median_of(s, "ours_cold", "chunk_steps_per_s"),
            median_of(s, "floor", "python_loop_steps_per_s"),
        ),
        "loop_steps_per_s_ours_over_unshuffled_scan": ratio(
            median_of(s, "ours_cold", "chunk_steps_per_s"),
            median_of(s, "floor", "unshuffled_scan_steps_per_s"),
        ),
        "cold_first_fit_ours_over_floor": ratio(
            median_of(s, "ours_cold", "first_fit_s"), median_of(s, "floor", "first_fit_s")
        ),
    }


def table(s: dict, r: dict) -> str:
    """A Markdown table of the medians (min in brackets) and the ratios."""

    def cell(variant: str, key: str, digits: int = 2) -> str:
        entry = s.get(variant, {}).get(key)
        if not entry:
            return "–"
        return f"{entry['median']:,.{digits}f} ({entry['min']:,.{digits}f})"

    def target(name: str, goal: str) -> str:
        value = r[name]
        return f"| {name} | {'–' if value is None else value} | {goal} |"

    lines = [
        "| seconds, median (min) | ours | ours, 1 draw | BLayers 0.3.8 | floor |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| import (library + jax) | {cell('ours_cold', 'import_s')} | "
        f"{cell('ours_1draw', 'import_s')} | {cell('blayers_cold', 'import_s')} | "
        f"{cell('floor', 'import_s')} |",
        f"| cold first fit, no cache | {cell('ours_cold', 'first_fit_s')} | "
        f"{cell('ours_1draw', 'first_fit_s')} | {cell('blayers_cold', 'first_fit_s')} | "
        f"{cell('floor', 'first_fit_s')} |",
        f"| first fit, empty cache folder | {cell('ours_warm', 'empty_cache_first_fit_s')} | – | "
        f"{cell('blayers_warm', 'empty_cache_first_fit_s')} | – |",
        f"| warm first fit, filled cache | {cell('ours_warm', 'first_fit_s')} | – | "
        f"{cell('blayers_warm', 'first_fit_s')} | – |",
        f"| second fit, same process | {cell('ours_cold', 'second_fit_s')} | "
        f"{cell('ours_1draw', 'second_fit_s')} | {cell('blayers_cold', 'second_fit_s')} | "
        f"{cell('floor', 'second_fit_s')} |",
        f"| 1,000 draws after the fit | (in the fit) | – | {cell('blayers_cold', 'draws_s')} | "
        "(in the fit) |",
        f"| loop steps/s (fit long − fit short) | {cell('ours_cold', 'loop_steps_per_s', 0)} | – | "
        f"{cell('blayers_cold', 'loop_steps_per_s', 0)} | – |",
        f"| loop steps/s (median chunk / epoch) | {cell('ours_cold', 'chunk_steps_per_s', 0)} | – | "
        f"{cell('blayers_cold', 'epoch_steps_per_s', 0)} | – |",
        f"| loop steps/s, hand-written Python loop | – | – | – | "
        f"{cell('floor', 'python_loop_steps_per_s', 0)} |",
        f"| loop steps/s, hand-written unshuffled scan | – | – | – | "
        f"{cell('floor', 'unshuffled_scan_steps_per_s', 0)} |",
        "",
        "| ratio (medians) | value | target |",
        "| --- | ---: | --- |",
        target("cold_first_fit_ours_over_blayers", "<= 1.0"),
        target("cold_first_fit_ours_1draw_over_blayers", "<= 1.0"),
        target("warm_first_fit_ours_over_blayers_default", "<= 0.333"),
        target("warm_first_fit_ours_over_blayers_cached", "<= 0.333"),
        target("second_fit_ours_over_blayers", ""),
        target("second_fit_ours_1draw_over_blayers", ""),
        target("loop_steps_per_s_ours_over_blayers", ">= 5 (chunk / epoch medians)"),
        target("loop_steps_per_s_ours_over_blayers_long_minus_short", ">= 5 (noisy for BLayers)"),
        target("loop_steps_per_s_ours_over_python_loop", ""),
        target("loop_steps_per_s_ours_over_unshuffled_scan", ""),
        target("cold_first_fit_ours_over_floor", "as close to 1 as possible"),
    ]
    return "\n".join(lines)


def settings(quick: bool) -> dict:
    """Rows, features and steps; ``long`` is ``steps`` plus whole BLayers epochs (~5x steps)."""
    n, d, steps = (20_000, 20, 200) if quick else (200_000, 50, 2000)
    per_epoch = -(-n // BATCH_SIZE)  # BLayers: ceil(n / batch), the last batch short
    long = steps + per_epoch * max(1, round(5 * steps / per_epoch))
    return {"n": n, "d": d, "steps": steps, "long": long}


def main() -> None:
    """Parse the options, simulate the data, run the repeats, print the JSON line and table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n=20k, d=20, 200 steps")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--upstream-python", default=UPSTREAM_PYTHON)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(CHILDREN[spec["kind"]](spec)))
        return
    spec = settings(args.quick)
    with tempfile.TemporaryDirectory() as folder:
        spec["data"] = str(Path(folder) / "data.npz")
        make_data(spec["data"], spec["n"], spec["d"])
        runs = [one_repeat(spec, args.upstream_python, bool(i % 2)) for i in range(args.repeats)]
    summary = summarise(runs)
    found = ratios(summary)
    report = {
        "benchmark": "versus_blayers",
        **{k: v for k, v in spec.items() if k != "data"},
        "batch_size": BATCH_SIZE,
        "lr": LEARNING_RATE,
        "repeats": args.repeats,
        "results": summary,
        "ratios": found,
    }
    print(json.dumps(report))
    print(table(summary, found))


if __name__ == "__main__":
    main()
