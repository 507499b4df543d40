"""The one atomic file writer behind checkpoints and ``FitResult.save``: all or nothing, and no
temporary file left behind."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import hand_result

from blayers_core import load
from blayers_core.engine.atomic import write_atomically
from blayers_core.engine.checkpoint import Checkpointer


class DiskFull(OSError):
    pass


def test_a_write_replaces_the_file_and_leaves_nothing_else(tmp_path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    assert write_atomically(target, lambda handle: handle.write(b"new")) == target
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


@pytest.mark.parametrize("existing", [True, False])
def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary_one(
    tmp_path, existing
) -> None:
    target = tmp_path / "out.bin"
    if existing:
        target.write_bytes(b"old")

    def half_then_fail(handle) -> None:
        handle.write(b"half of the ne")
        raise DiskFull("no space left on device")

    with pytest.raises(DiskFull):
        write_atomically(target, half_then_fail)
    if existing:
        assert target.read_bytes() == b"old"
        assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
    else:
        assert list(tmp_path.iterdir()) == []


def test_a_failed_save_keeps_the_previous_result_file(tmp_path, monkeypatch) -> None:
    result = hand_result("gaussian")
    path = result.save(tmp_path / "fit.npz")
    before = path.read_bytes()

    def failing_savez(handle, **arrays) -> None:
        handle.write(b"PK\x03\x04 partial zip")
        raise DiskFull("no space left on device")

    monkeypatch.setattr(np, "savez_compressed", failing_savez)
    with pytest.raises(DiskFull):
        result.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["fit.npz"]
    np.testing.assert_array_equal(
        load(path, model=result.model).posterior_samples["mu/beta"],
        result.posterior_samples["mu/beta"],
    )


def test_checkpoints_leave_no_temporary_files(tmp_path) -> None:
    checkpointer = Checkpointer(tmp_path, meta={"run": 1}, keep=2)
    state = {"a": np.arange(3.0)}
    for step in (1, 2, 3):
        checkpointer.save(state, step, np.zeros(step))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ckpt-0000000002.blc",
        "ckpt-0000000003.blc",
    ]
