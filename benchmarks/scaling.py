"""Step time and scaling efficiency of one fit split over 1, 2 and 4 devices.

    python benchmarks/scaling.py                 # n=200k x d=50, batch 1024; 4 forced CPU devices
    python benchmarks/scaling.py --quick         # n=20k x d=20, for a smoke run

On a machine without accelerators, the child process gets four CPU devices with
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` (they share the machine's cores: this
measures what splitting costs, not what it gains); with accelerators it uses the real ones.

For each number of devices ``D`` the same data and global batch ``B`` (strong scaling) run:

* ``fit``: ``blayers_core.fit(..., devices=D)`` (``D = 1`` also without ``devices=``), its
  microseconds per step from the compiled chunks themselves (median chunk after the first /
  its steps);
* ``floor``: the smallest hand-written NumPyro program doing the same work on ``D`` devices:
  the rows sharded over a one-axis mesh, one ``lax.scan`` over the steps, each device slicing
  its ``B / D`` consecutive rows of the step from its own shard (``shard_map``), then
  ``svi.update`` under ``jit`` (XLA all-reduces the gradients). No shuffling, no padding: a
  lower bound (a per-epoch ``jax.random.permutation`` of 200k rows alone costs more than a
  step). The fastest of three runs.

Printed: a table with ``fit/floor`` and the scaling efficiency ``t_1 / (D t_D)`` of each, and
one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from engine import _svi, layered_model, make_data, timed_chunks


def fit_step_us(x, y, batch: int, steps: int, devices) -> float:
    """blayers' microseconds per step on ``devices`` (after a first fit that compiles)."""
    import numpy as np

    from blayers_core import fit

    model = layered_model()
    options = dict(batch_size=batch, guide="auto_normal", progress_bar=False, num_samples=10)
    chunk = min(steps, 500)
    fit(model, x=x, y=y, num_steps=steps, chunk_size=chunk, devices=devices, **options)
    with timed_chunks() as chunk_times:
        fit(model, x=x, y=y, num_steps=steps, chunk_size=chunk, devices=devices, seed=1, **options)
    return float(np.median(chunk_times[1:] or chunk_times)) / chunk * 1e6


def floor_step_us(x, y, batch: int, steps: int, num_devices: int) -> float:
    """The hand-written sharded scan's microseconds per step."""
    import jax
    import numpy as np
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    n = (x.shape[0] // batch) * batch
    mesh = Mesh(np.array(jax.devices()[:num_devices]), ("rows",))
    rows = NamedSharding(mesh, P("rows"))
    xd, yd = jax.device_put(x[:n], rows), jax.device_put(y[:n], rows)
    svi = _svi(batch, n)
    state = svi.init(jax.random.PRNGKey(0), x=x[:batch], y=y[:batch])
    state = jax.device_put(state, NamedSharding(mesh, P()))
    share, per_epoch = batch // num_devices, n // batch

    def local_slice(xs, ys, i):  # each device: its B / D consecutive rows of step i
        start = (i % per_epoch) * share
        return (
            jax.lax.dynamic_slice_in_dim(xs, start, share),
            jax.lax.dynamic_slice_in_dim(ys, start, share),
        )

    take = jax.shard_map(
        local_slice, mesh=mesh, in_specs=(P("rows"), P("rows"), P()), out_specs=P("rows")
    )

    def run(state, num):
        def body(state, i):
            xb, yb = take(xd, yd, i)
            return svi.update(state, x=xb, y=yb)

        return jax.lax.scan(body, state, jax.numpy.arange(num))

    compiled = jax.jit(run, static_argnums=1)
    jax.block_until_ready(compiled(state, steps))
    times = []
    for _ in range(3):  # the fastest of three runs
        start = time.perf_counter()
        jax.block_until_ready(compiled(state, steps))
        times.append(time.perf_counter() - start)
    return min(times) / steps * 1e6


def child(n: int, d: int, batch: int, steps: int) -> None:
    import jax

    x, y = make_data(n, d)
    counts = [c for c in (1, 2, 4) if c <= jax.device_count()]
    out = {
        "platform": jax.devices()[0].platform,
        "devices": jax.device_count(),
        "n": n,
        "d": d,
        "batch": batch,
        "steps": steps,
        "one_device_fit_us": fit_step_us(x, y, batch, steps, None),
    }
    out["by_devices"] = {
        str(c): {
            "fit_us": fit_step_us(x, y, batch, steps, c),
            "floor_us": floor_step_us(x, y, batch, steps, c),
        }
        for c in counts
    }
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="n=20k x d=20, 500 steps")
    parser.add_argument("--child", nargs=4, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    n, d, batch, steps = (20_000, 20, 1024, 500) if args.quick else (200_000, 50, 1024, 2000)
    env = dict(os.environ)
    if "--xla_force_host_platform_device_count" not in env.get("XLA_FLAGS", ""):
        env["XLA_FLAGS"] = (
            env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
        ).strip()
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(n), str(d), str(batch), str(steps)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    table = result["by_devices"]
    one_fit, one_floor = table["1"]["fit_us"], table["1"]["floor_us"]
    print(
        f"{result['platform']} x {result['devices']}, n={n} d={d} batch={batch}, {steps} steps; "
        f"one device without devices=: {result['one_device_fit_us']:.0f} us/step"
    )
    print("devices  fit us/step  floor us/step  fit/floor  fit efficiency  floor efficiency")
    for count, row in table.items():
        c = int(count)
        print(
            f"{c:>7}  {row['fit_us']:>11.0f}  {row['floor_us']:>13.0f}  "
            f"{row['fit_us'] / row['floor_us']:>9.2f}  {one_fit / (c * row['fit_us']):>14.2f}  "
            f"{one_floor / (c * row['floor_us']):>16.2f}"
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
