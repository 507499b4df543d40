"""``fit(..., devices=...)``: the rows (SVI) or the chains (NUTS) split over several devices.

* the option is checked before anything runs: ``"all"``, a positive int up to the number of local
  devices, or a sequence of distinct local ``jax.Device``; errors name ``devices`` and say how
  many devices there are;
* a batch that does not split evenly across the devices, or chains that do not, raise naming
  ``batch_size`` (``num_chains``) and the devices; SVGD, which runs on one device, raises;
* on one device the sharded program gives the one-device losses;
* in a subprocess with four host devices: SVI on four devices has the same first-step loss (the
  same batches) and, within Monte-Carlo tolerance, the same posterior as on one; it resumes from a
  checkpoint to the uninterrupted run's parameters bit for bit; NUTS runs four chains on four
  devices.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

import blayers_core
from blayers_core import fit
from blayers_core.api.options import FitOptions
from blayers_core.engine.devices import (
    check_batch_split,
    device_slot_order,
    require_one_device,
    resolve_devices,
)
from blayers_core.engine.mcmc_program import check_chain_split
from blayers_core.engine.minibatch import BatchSchedule

adaptive, gaussian = blayers_core.layer("adaptive"), blayers_core.link("gaussian")


def model(x, y=None):
    return gaussian(adaptive("beta", x), y)


def simulate(n: int = 1000, k: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, k)).astype(np.float32)
    y = (x @ np.arange(1.0, k + 1.0) + rng.normal(size=n)).astype(np.float32)
    return {"x": x, "y": y}


# ------------------------------------------------------------------------------- the option
def test_all_and_counts_resolve_to_local_devices() -> None:
    local = tuple(jax.local_devices())
    assert FitOptions().devices is None
    assert FitOptions(devices="all").devices == local
    assert FitOptions(devices=1).devices == local[:1]
    assert FitOptions(devices=[local[0]]).devices == local[:1]


@pytest.mark.parametrize(
    ("spec", "error", "words"),
    [
        (jax.local_device_count() + 1, ValueError, "local device"),
        (0, ValueError, "devices=0"),
        ("some", ValueError, "devices must be"),
        ([], ValueError, "empty"),
        ([0, 1], TypeError, "jax.Device"),
        (True, TypeError, "devices must be"),
        (2.0, TypeError, "devices must be"),
    ],
)
def test_bad_devices_raise_naming_the_option(spec, error, words) -> None:
    with pytest.raises(error, match="devices") as raised:
        FitOptions(devices=spec)
    assert words in str(raised.value)
    if isinstance(spec, int) and not isinstance(spec, bool) and spec > 0:
        assert f"{jax.local_device_count()} local device" in str(raised.value)


def test_a_device_given_twice_raises() -> None:
    device = jax.local_devices()[0]
    with pytest.raises(ValueError, match="more than once"):
        resolve_devices([device, device])


def test_fit_checks_devices_before_reading_the_data() -> None:
    with pytest.raises(ValueError, match="devices=99"):
        fit(model, devices=99, x="not data")


def test_a_batch_that_does_not_split_evenly_raises() -> None:
    check_batch_split(1000, 64, 4)
    check_batch_split(1000, None, 4)
    with pytest.raises(ValueError, match=r"batch_size=66 .*devices=4"):
        check_batch_split(1000, 66, 4)
    with pytest.raises(ValueError, match=r"batch_size=None \(1001 rows\).*devices=4"):
        check_batch_split(1001, None, 4)
    with pytest.raises(ValueError, match=r"num_chains=3 .* 2 devices"):
        check_chain_split(3, ("a", "b"))


def test_svgd_refuses_several_devices() -> None:
    device = jax.local_devices()[0]
    require_one_device(None, "svgd")
    require_one_device((jax.devices()[0],), "svgd")
    with pytest.raises(ValueError, match="method 'svgd' runs on one device"):
        require_one_device((device, device), "svgd")


# ------------------------------------------------------------------------------- the layout
@pytest.mark.parametrize(("num_rows", "batch_size"), [(1000, 64), (1000, 128), (999, 96)])
def test_every_device_holds_an_equal_share_of_every_batch(num_rows, batch_size) -> None:
    d = 4
    schedule = BatchSchedule(num_rows=num_rows, batch_size=batch_size, num_devices=d)
    assert (schedule.batch_size // schedule.block_size) % d == 0
    slots = device_slot_order(schedule, d)
    assert sorted(slots) == list(range(schedule.num_slots))
    shard = schedule.num_slots // d
    key = jax.random.PRNGKey(3)
    for step in range(2 * schedule.steps_per_epoch):
        blocks, _ = schedule.block_order(step, key)
        owners = np.bincount(np.asarray(blocks) % d, minlength=d)
        assert (owners == len(blocks) // d).all()
        # device m % d holds block m at local block m // d of its shard
        for m in np.asarray(blocks):
            first = (m % d) * shard + (m // d) * schedule.block_size
            assert slots[first] == m * schedule.block_size


def test_one_device_block_size_is_unchanged() -> None:
    for batch in (1, 3, 12, 64, 96, 1000, 4096):
        one = BatchSchedule(num_rows=10_000, batch_size=batch)
        assert one == BatchSchedule(num_rows=10_000, batch_size=batch, num_devices=1)
    assert (
        BatchSchedule(10_000, 64, num_devices=4).block_size == BatchSchedule(10_000, 64).block_size
    )


def test_the_sharded_program_on_one_device_gives_the_same_losses() -> None:
    data = simulate(n=300)
    options = dict(batch_size=64, num_steps=40, progress_bar=False, seed=2, **data)
    one = fit(model, **options)
    sharded = fit(model, devices=1, **options)
    np.testing.assert_allclose(sharded.losses, one.losses, rtol=1e-6)


# ------------------------------------------------------------------------- four host devices
FOUR_DEVICES = """
import json, sys, time
import numpy as np, jax
import blayers_core
from blayers_core import fit

assert jax.local_device_count() == 4
adaptive, gaussian = blayers_core.layer("adaptive"), blayers_core.link("gaussian")

def model(x, y=None):
    return gaussian(adaptive("beta", x), y)

rng = np.random.default_rng(0)
x = rng.normal(size=(1000, 3)).astype(np.float32)
y = (x @ np.arange(1.0, 4.0) + rng.normal(size=1000)).astype(np.float32)
out = {}
for name, devices in (("one", None), ("four", 4)):
    result = fit(model, x=x, y=y, batch_size=128, num_epochs=150, lr=0.02, seed=1,
                 progress_bar=False, devices=devices)
    out[name] = {
        "losses": result.losses[:5].tolist(),
        "beta": np.asarray(result.posterior_samples["beta/beta"]).reshape(1000, -1).mean(0).tolist(),
        "beta_sd": np.asarray(result.posterior_samples["beta/beta"]).reshape(1000, -1).std(0).tolist(),
        "sigma": float(np.mean(result.posterior_samples["obs/sigma"])),
    }
try:
    fit(model, x=x, y=y, batch_size=66, num_steps=5, progress_bar=False, devices=4)
except ValueError as error:
    out["odd_batch"] = str(error)
# resume on four devices: from the checkpoint of step 100, the uninterrupted run's parameters
import pathlib, tempfile
folder = pathlib.Path(tempfile.mkdtemp())
run = dict(batch_size=128, num_steps=300, chunk_size=100, checkpoint_dir=folder,
           checkpoint_every=100, seed=3, progress_bar=False, devices=4)
full = fit(model, x=x, y=y, **run)
for path in sorted(folder.glob("ckpt-*.blc"))[1:]:
    path.unlink()
resumed = fit(model, x=x, y=y, resume=True, **run)
out["resumed_same"] = all(
    np.array_equal(np.asarray(full.params[k]), np.asarray(resumed.params[k])) for k in full.params
) and bool(np.array_equal(full.losses, resumed.losses))
nuts = fit(model, x=x, y=y, method="nuts", num_warmup=100, num_samples=100, num_chains=4,
           devices=4, progress_bar=False, seed=0)
draws = np.asarray(nuts.posterior_samples["beta/beta"])
out["nuts"] = {"shape": list(draws.shape), "chains": nuts.num_chains,
               "finite": bool(np.isfinite(draws).all()), "beta": draws.reshape(400, -1).mean(0).tolist()}
json.dump(out, open(sys.argv[1], "w"))
"""


@pytest.mark.slow
def test_four_devices_fit_the_posterior_of_one(tmp_path) -> None:
    path = tmp_path / "out.json"
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FOUR_DEVICES), str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(path.read_text())
    one, four = out["one"], out["four"]
    # same seed, same batches: the same first losses up to float rounding
    np.testing.assert_allclose(four["losses"], one["losses"], rtol=1e-5)
    # the posterior means agree within Monte-Carlo error of 1000 draws
    tolerance = 4 * np.asarray(one["beta_sd"]) / np.sqrt(1000) + 1e-3
    assert (np.abs(np.subtract(four["beta"], one["beta"])) < tolerance).all()
    assert abs(four["sigma"] - one["sigma"]) < 0.02
    np.testing.assert_allclose(one["beta"], [1.0, 2.0, 3.0], atol=0.15)
    assert "batch_size=66" in out["odd_batch"] and "devices=4" in out["odd_batch"]
    assert out["resumed_same"]  # resumed from step 100 on four devices: bit for bit
    nuts = out["nuts"]
    assert nuts["chains"] == 4 and nuts["shape"] == [400, 3, 1] and nuts["finite"]
    np.testing.assert_allclose(nuts["beta"], [1.0, 2.0, 3.0], atol=0.15)
