"""Streaming Parquet against arrays in memory: training throughput and peak memory.

    python benchmarks/streaming.py            # 1M rows for rows/s; 1M, 4M, 16M rows for memory
    python benchmarks/streaming.py --quick    # 200k rows; 250k, 1M rows for memory

The data: ``n`` rows of seven ``float32`` features and a Gaussian target (``y = x beta + noise``),
written to an uncompressed Parquet file in row groups of 65,536 rows. The models:
``linear``, ``link("gaussian")(layer("adaptive")("beta", x), y)`` (a few flops a row: the reading
is the bottleneck), and ``fm``, the same plus ``layer("fm", low_rank_dim=16)("fm", x)`` (a
factorization machine on the seven features); ``batch_size`` 4096, chunks of 50 steps, 10
posterior draws (``num_samples=10``). The memory runs use ``linear``.

* ``throughput``: rows/s of ``fit`` on the same data in memory (``fit(model, x=x, y=y, ...)``) and
  streamed (``fit(model, data=path, columns=..., ...)``), each in its own process: one warm-up fit
  of one chunk compiles the program (cached for the next fit of the same layout), then a timed fit
  of ``--epochs`` epochs, end to end (the dry run, the device copy or the reading, the training
  and the draws): ``rows/s = epochs * n / seconds``. ``ratio`` = in memory / streamed (goal:
  at most 1.5). ``read_floor_rows_per_s``: the floor of the host side, the smallest program doing
  the stream's work without training (pyarrow reads the row groups in a random order, each
  group's rows are permuted and cut into batches of ``B``, chunks of 50 batches are copied to the
  device); ``floor_over_streamed`` = floor / streamed.
* ``memory``: peak resident memory (``ru_maxrss``) of a process that streams files of each size
  (after the imports, ``imported``; the peak, ``peak``), with the file's size: one epoch, and as
  many epochs as read the largest file's rows (the same number of steps for every size, so that
  what grows with the steps, e.g. the allocator's heaps, is the same).

Prints one JSON line; the Parquet files go to a temporary folder that is removed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap

ROW_GROUP = 65536
BATCH = 4096
COLUMNS = [f"x{i}" for i in range(7)]

WORKER = """
import json, resource, sys, time
import numpy as np
import blayers_core
from blayers_core import fit

def rss_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

adaptive, gaussian = blayers_core.layer("adaptive"), blayers_core.link("gaussian")
fm = blayers_core.layer("fm", low_rank_dim=16)

def linear(x, y=None):
    return gaussian(adaptive("beta", x), y)

def with_fm(x, y=None):
    return gaussian(adaptive("beta", x) + fm("fm", x), y)

mode, path, epochs, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
model = {"linear": linear, "fm": with_fm}[sys.argv[6]]
columns = {"x": COLUMNS, "y": "y"}
imported = rss_kib()
if mode == "read":  # the floor of the host side: read, shuffle, batch, copy; no training
    import jax
    import pyarrow.parquet as pq
    handle = pq.ParquetFile(path)
    groups, n = handle.num_row_groups, handle.metadata.num_rows
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for epoch in range(epochs):
        pending = []
        for group in rng.permutation(groups):
            table = handle.read_row_group(int(group))
            x = np.stack([table.column(c).to_numpy() for c in COLUMNS], axis=1)
            y = table.column("y").to_numpy()
            order = rng.permutation(len(y))
            for first in range(0, len(y) - batch + 1, batch):
                rows = order[first : first + batch]
                pending.append((x[rows], y[rows]))
                if len(pending) == 50:  # a chunk of 50 batches to the device
                    jax.block_until_ready(jax.device_put(
                        (np.stack([b[0] for b in pending]), np.stack([b[1] for b in pending]))))
                    pending = []
    seconds = time.perf_counter() - start
    json.dump({"mode": mode, "seconds": seconds, "rows_per_s": epochs * n / seconds,
               "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024},
              open(sys.argv[5], "w"))
    sys.exit(0)
if mode == "memory":
    import pyarrow.parquet as pq
    table = pq.read_table(path)
    arrays = {"x": np.stack([table.column(c).to_numpy() for c in COLUMNS], axis=1),
              "y": table.column("y").to_numpy()}
    del table
    data = arrays
else:
    data = {"data": path, "columns": columns}
options = dict(batch_size=batch, chunk_size=50, progress_bar=False, num_samples=10, seed=0)
start = time.perf_counter()
fit(model, num_steps=50, **options, **data)  # compiles; cached for the timed fit
warm = time.perf_counter() - start
start = time.perf_counter()
result = fit(model, num_epochs=epochs, **options, **data)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rows = result.steps_done * batch
json.dump({"mode": mode, "seconds": seconds, "warmup_seconds": warm, "steps": result.steps_done,
           "rows_per_s": epochs * result.num_rows / seconds, "imported_mib": imported / 1024,
           "peak_mib": peak / 1024,
           "beta": np.asarray(result.posterior_samples["beta/beta"]).reshape(10, -1).mean(0).round(3).tolist()},
          open(sys.argv[5], "w"))
""".replace("COLUMNS", repr(COLUMNS))


def write(path: str, rows: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([(c, pa.float32()) for c in [*COLUMNS, "y"]])
    beta = np.linspace(-1.0, 1.0, len(COLUMNS)).astype(np.float32)
    rng = np.random.default_rng(0)
    with pq.ParquetWriter(path, schema, compression="none", use_dictionary=False) as writer:
        for start in range(0, rows, ROW_GROUP):
            n = min(ROW_GROUP, rows - start)
            x = rng.normal(size=(n, len(COLUMNS))).astype(np.float32)
            y = (x @ beta + 0.5 * rng.normal(size=n)).astype(np.float32)
            columns = {c: x[:, i] for i, c in enumerate(COLUMNS)} | {"y": y}
            writer.write_table(pa.table(columns, schema=schema))


def run(mode: str, path: str, epochs: int, folder: str, model: str = "linear") -> dict:
    out = os.path.join(folder, f"{mode}-{os.path.basename(path)}.json")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(WORKER),
            mode,
            path,
            str(epochs),
            str(BATCH),
            out,
            model,
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    with open(out) as handle:
        return json.load(handle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows for rows/s")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of the timed fits")
    parser.add_argument(
        "--memory-rows", default="1000000,4000000,16000000", help="file sizes for peak memory"
    )
    parser.add_argument("--models", default="linear,fm", help="models for rows/s")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.memory_rows, args.epochs = 200_000, "250000,1000000", 2
    report: dict = {"batch_size": BATCH, "row_group_rows": ROW_GROUP}
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, f"rows-{args.rows}.parquet")
        write(path, args.rows)
        report["throughput"] = {}
        for model in args.models.split(","):
            in_memory = run("memory", path, args.epochs, folder, model)
            streamed = run("stream", path, args.epochs, folder, model)
            report["throughput"][model] = {
                "rows": args.rows,
                "epochs": args.epochs,
                "in_memory": in_memory,
                "streamed": streamed,
                "ratio": in_memory["rows_per_s"] / streamed["rows_per_s"],
            }
        floor = run("read", path, args.epochs, folder)
        report["read_floor_rows_per_s"] = floor["rows_per_s"]
        for entry in report["throughput"].values():
            entry["floor_over_streamed"] = floor["rows_per_s"] / entry["streamed"]["rows_per_s"]
        os.remove(path)
        memory = []
        sizes = [int(r) for r in args.memory_rows.split(",")]
        for rows in sizes:
            path = os.path.join(folder, f"rows-{rows}.parquet")
            write(path, rows)
            size = os.path.getsize(path) / 2**20
            one = run("stream", path, 1, folder)
            # as many epochs as read the largest file's rows: the same work for every size
            epochs = max(sizes) // rows
            same = one if epochs == 1 else run("stream", path, epochs, folder)
            memory.append(
                {
                    "rows": rows,
                    "file_mib": round(size, 1),
                    "imported_mib": round(one["imported_mib"], 1),
                    "peak_mib_one_epoch": round(one["peak_mib"], 1),
                    "epochs_same_rows": epochs,
                    "peak_mib_same_rows": round(same["peak_mib"], 1),
                    "seconds_one_epoch": round(one["seconds"], 2),
                    "rows_per_s": round(same["rows_per_s"]),
                }
            )
            os.remove(path)
        report["memory"] = memory
    print(json.dumps(report))


if __name__ == "__main__":
    main()
