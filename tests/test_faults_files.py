"""Files that could silently give wrong answers: a checkpoint resumed by another model or with
other components, a saved result loaded with another model, and temporary files left by writers
killed mid-write."""

from __future__ import annotations

import json
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from blayers_core import CheckpointError, ModelMismatchError, fit, layer, link, load
from blayers_core.engine.atomic import STALE_AFTER_S, host_name, temporary_path
from blayers_core.engine.checkpoint import Checkpointer
from blayers_core.io.persistence import META_KEY

A, B, gaussian = layer("adaptive"), layer("adaptive"), link("gaussian")


def model(x, z, y=None):
    return gaussian(A("a", x) + B("b", z), y)


def swapped(x, z, y=None):  # the same sites, of the same shapes, met in the other order
    return gaussian(B("b", z) + A("a", x), y)


def renamed(x, z, y=None):
    return gaussian(A("a", x) + B("c", z), y)


def narrower(x, z, y=None):
    return gaussian(A("a", x[:, :1]) + B("b", z), y)


def fewer(x, z, y=None):
    return gaussian(A("a", x), y)


def more(x, z, y=None):
    return gaussian(A("a", x) + B("b", z) + B("c", z), y)


def other_arguments(x, y=None):
    return gaussian(A("a", x), y)


def data(n=40):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 2)).astype(np.float32)
    z = rng.normal(size=(n, 2)).astype(np.float32)
    return {"x": x, "z": z, "y": (x[:, 0] - z[:, 1]).astype(np.float32)}


RUN = {"num_steps": 20, "chunk_size": 10, "batch_size": 20, "progress_bar": False}


@pytest.fixture(scope="module")
def checkpointed(tmp_path_factory):
    """A finished run with checkpoints (default guide ``auto_diagonal_normal``: one packed
    vector, restored by position) and its result."""
    folder = tmp_path_factory.mktemp("ckpt")
    result = fit(model, **data(), **RUN, checkpoint_dir=folder, checkpoint_every=10)
    return folder, result


# ---------------------------------------------------------------------------------- resuming
@pytest.mark.parametrize(
    ("other", "options", "message"),
    [
        (
            swapped,
            {},
            r"site names or order differ: the checkpoint has 'a/scale' where this model has "
            r"'b/scale'",
        ),
        (renamed, {}, r"the checkpoint has site 'b/scale' \(shape \(1,\), float32\), which this"),
        (narrower, {}, r"site 'a/beta' has shape \(2, 1\) in the checkpoint; in this model it"),
        (
            model,
            {"guide": "auto_normal"},
            r"components\.guide\.name: the checkpoint has 'auto_diagonal_normal', this run has "
            r"'auto_normal'",
        ),
        (
            model,
            {"lr": 0.5},
            r"components\.optimizer\.config\.learning_rate: the checkpoint has 0\.01, this run "
            r"has 0\.5",
        ),
        (
            model,
            {"optimizer": "adamw"},
            r"components\.optimizer\.name: the checkpoint has 'adam', this run has 'adamw'",
        ),
        (
            model,
            {"loss": "trace_elbo", "batch_size": None},
            r"components\.loss\.name: the checkpoint has 'batched_elbo', this run has "
            r"'trace_elbo'",
        ),
    ],
    ids=["swapped sites", "renamed site", "site shape", "guide", "lr", "optimizer", "loss"],
)
def test_resuming_with_another_model_or_component_names_the_difference(
    checkpointed, other, options, message
):
    folder, _ = checkpointed
    with pytest.raises(CheckpointError, match=message) as info:
        fit(other, **data(), **{**RUN, **options}, checkpoint_dir=folder, resume=True)
    assert "resume=False" in str(info.value)


def test_resuming_the_same_run_still_works(checkpointed):
    folder, result = checkpointed
    again = fit(model, **data(), **RUN, checkpoint_dir=folder, resume=True)
    assert again.steps_done == result.steps_done == 20
    np.testing.assert_array_equal(again.losses, result.losses)


def test_a_checkpoint_without_the_record_resumes_with_a_warning(tmp_path):
    old = Checkpointer(tmp_path, meta={"seed": 0})
    old.save({"a": np.arange(3.0)}, 10, np.zeros(10))
    now = Checkpointer(tmp_path, meta={"seed": 0, "sites": [("a", (3,), "float32")]})
    with pytest.warns(UserWarning, match=r"does not record its sites: the model .* cannot be"):
        assert now.load_latest().step == 10


# ----------------------------------------------------------------------------------- loading
@pytest.fixture(scope="module")
def saved(checkpointed, tmp_path_factory):
    return checkpointed[1].save(tmp_path_factory.mktemp("saved") / "fit.npz")


@pytest.mark.parametrize(
    ("other", "message"),
    [
        (fewer, r"fit\.npz has site 'b/beta' \(shape \(2, 1\)\), which this model lacks"),
        (
            more,
            r"this model has sites \['c/scale', 'c/beta'\] that fit\.npz has no draws of: "
            r"predictions would draw them from the prior.*allow_missing_sites=True",
        ),
        (narrower, r"site 'a/beta' has shape \(2, 1\) in fit\.npz; in this model it has shape"),
        (other_arguments, r"does not run on the data it was fitted on \(x \(40, 2\) float"),
    ],
    ids=["site missing from the model", "site missing from the file", "shape", "arguments"],
)
def test_loading_with_another_model_names_the_difference(saved, other, message):
    with pytest.raises(ModelMismatchError, match=message):
        load(saved, model=other)


def test_the_fitted_model_loads_by_reference_or_by_argument(saved, checkpointed):
    x = data(n=7)
    for loaded in (load(saved), load(saved, model=model)):
        assert loaded.model is model
        np.testing.assert_array_equal(
            loaded.predict(**x, kind="mean").mean, checkpointed[1].predict(**x, kind="mean").mean
        )


def test_allow_missing_sites_draws_them_from_the_prior_and_says_so(saved):
    with pytest.warns(UserWarning, match=r"no draws of the model's sites \['c/scale', 'c/beta'\]"):
        loaded = load(saved, model=more, allow_missing_sites=True)
    assert np.isfinite(loaded.predict(**data(n=5)).mean).all()
    with pytest.raises(ModelMismatchError, match="which this model lacks"):
        load(saved, model=fewer, allow_missing_sites=True)  # a fitted site is never dropped


def test_an_older_file_without_the_record_loads_with_a_warning(saved, tmp_path):
    with np.load(saved) as archive:
        arrays = {k: archive[k] for k in archive.files}
    meta = json.loads(arrays[META_KEY].tobytes())
    del meta["latent_sites"], meta["data_signature"]
    arrays[META_KEY] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(tmp_path / "old.npz", **arrays)
    with pytest.warns(UserWarning, match="older blayers .* the model cannot be checked"):
        loaded = load(tmp_path / "old.npz", model=more)
    assert loaded.posterior_samples.keys() == load(saved).posterior_samples.keys()


# ---------------------------------------------------------------------------- temporary files
def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _temporary(folder: Path, host: str, pid: int | None, target="ckpt-0000000010.blc") -> Path:
    middle = "" if pid is None else f".{host}.{pid}"
    path = folder / f".{target}{middle}.{secrets.token_hex(6)}.tmp"
    path.write_bytes(b"half a checkpoint")
    return path


def _age(path: Path, seconds: float) -> Path:
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def test_temporary_names_carry_the_host_and_the_process():
    name = temporary_path(Path("ckpt-0000000001.blc")).name
    assert name.startswith(f".ckpt-0000000001.blc.{host_name()}.{os.getpid()}.")
    assert name.endswith(".tmp")


def test_opening_a_folder_removes_temporary_files_of_dead_writers_only(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        here = host_name()
        stale = [
            _temporary(tmp_path, here, _dead_pid()),
            _age(_temporary(tmp_path, "", None), STALE_AFTER_S + 60),  # older naming, no pid
            _age(_temporary(tmp_path, "other-host", 1), STALE_AFTER_S + 60),
        ]
        kept = [
            _temporary(tmp_path, here, os.getpid()),  # this process may be writing it
            _temporary(tmp_path, here, sleeper.pid),  # a live writer
            _temporary(tmp_path, "", None),  # older naming, recent: maybe a live writer
            _temporary(tmp_path, "other-host", 1),  # recent, on a host we cannot ask
            _temporary(tmp_path, here, _dead_pid(), target="fit.npz"),  # not a checkpoint's
            tmp_path / "notes.tmp",
        ]
        kept[-1].write_text("not ours")
        Checkpointer(tmp_path, meta={})
        assert [p.exists() for p in stale] == [False] * len(stale)
        assert [p.exists() for p in kept] == [True] * len(kept)
    finally:
        sleeper.kill()
        sleeper.wait()
    Checkpointer(tmp_path, meta={})
    assert not kept[1].exists()  # its writer is gone now


def test_saving_a_result_removes_a_dead_writers_temporary_file_of_that_file(saved, tmp_path):
    dead = _temporary(tmp_path, host_name(), _dead_pid(), target="fit.npz")
    other = _temporary(tmp_path, host_name(), _dead_pid(), target="other.npz")
    load(saved).save(tmp_path / "fit.npz")
    assert not dead.exists() and other.exists()


# --------------------------------------------------------------------------- kill and resume
WORKER = """
import io, sys, time
from pathlib import Path
import numpy as np
from blayers_core import fit, layer, link
from blayers_core.engine import svi as vi
from blayers_core.engine import checkpoint

folder, marker, mode = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
atomic_write, resume = checkpoint.write_atomically, vi.resume_state


def slow_write(path, write):  # pauses half-way, so that a kill often lands inside a write
    def halves(handle):
        buffer = io.BytesIO()
        write(buffer)
        data = buffer.getvalue()
        handle.write(data[: len(data) // 2])
        handle.flush()
        marker.with_suffix(".writing").touch()
        time.sleep(0.1)
        handle.write(data[len(data) // 2 :])

    return atomic_write(path, halves)


def reporting_resume(checkpointer, state):  # tells the test the step it resumed from
    restored = resume(checkpointer, state)
    marker.write_text(str(restored[1]))
    return restored


if mode == "slow":
    checkpoint.write_atomically = slow_write
vi.resume_state = reporting_resume
rng = np.random.default_rng(0)
x = rng.normal(size=(256, 3)).astype(np.float32)
y = (x @ np.array([1.0, -2.0, 0.5]) + 0.3 * rng.normal(size=256)).astype(np.float32)
adaptive, gaussian = layer("adaptive"), link("gaussian")


def model(x, y=None):
    return gaussian(adaptive("mu", x), y)


result = fit(
    model, x=x, y=y, batch_size=32, num_steps=STEPS, chunk_size=10, checkpoint_dir=folder,
    checkpoint_every=10, resume=True, progress_bar=False, num_samples=5,
)
print(result.steps_done, flush=True)
"""
STEPS, KILLS = 800, 8


def _wait_for(path: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if path.exists():
            return
        if process.poll() is not None:
            pytest.fail(f"worker ended early: {process.communicate()}")
        time.sleep(0.01)
    pytest.fail(f"the worker did not write {path.name}")


def _start(script: Path, folder: Path, marker: Path, mode: str) -> subprocess.Popen[str]:
    command = [sys.executable, str(script), str(folder), str(marker), mode]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_killed_at_random_points_the_newest_checkpoint_always_resumes(tmp_path):
    """Kill a checkpointing run (``SIGKILL``) at random points: every other time while it trains
    (mostly inside a checkpoint write), else anywhere from its start. Each time, opening the
    folder leaves no temporary file and the next run resumes from the newest checkpoint; a last
    run finishes."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER.replace("STEPS", str(STEPS)))
    folder, rng = tmp_path / "ckpt", random.Random(0)
    newest, killed_mid_write = 0, 0
    for i in range(KILLS):
        marker = tmp_path / f"run-{i}.step"
        worker = _start(script, folder, marker, "slow")
        if i % 2 == 0:
            _wait_for(marker.with_suffix(".writing"), worker)  # training and checkpointing
            time.sleep(rng.uniform(0.0, 0.5))
        else:  # importing, compiling, resuming or training
            time.sleep(rng.uniform(0.0, 4.0))
        if marker.exists() and marker.read_text():
            assert int(marker.read_text()) == newest  # it resumed from the newest checkpoint
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        killed_mid_write += bool(_temporaries(folder))
        latest = Checkpointer(folder, meta={}).load_latest()  # opening cleans up
        assert _temporaries(folder) == []
        assert latest is not None and latest.step >= newest
        newest = latest.step
    marker = tmp_path / "last.step"
    worker = _start(script, folder, marker, "fast")
    out, err = worker.communicate(timeout=300)
    assert worker.returncode == 0, err
    assert int(marker.read_text()) == newest and int(out.split()[-1]) == STEPS
    assert killed_mid_write > 0  # the loop did kill writers inside a write
    assert _temporaries(folder) == []
