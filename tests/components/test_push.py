"""The push's copy: a version folder appears whole or not at all, and a full
disk is one line naming the folder and the space needed. Real copies; the
disk-full cases on a real, small tmpfs (they need the right to mount one)."""

from __future__ import annotations

import os
import subprocess

import pytest

from flowers.components import push
from flowers.outputs import PUSH_TEMP_PREFIX


def model_folder(root, files: int = 3, size: int = 1000) -> str:
    """A folder laid out as a SavedModel (saved_model.pb, variables/)."""
    folder = root / "model"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"m" * size)
    for i in range(files):
        (folder / "variables" / f"part-{i}").write_bytes(b"v" * size)
    return str(folder)


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs, unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_version_appears_whole_and_nothing_else_is_left(tmp_path):
    model = model_folder(tmp_path)
    serving = tmp_path / "serving"
    final = push.publish(model, str(serving), "100")
    assert final == str(serving / "100") and os.listdir(serving) == ["100"]
    assert sorted(os.listdir(final)) == ["saved_model.pb", "variables"]
    assert push.folder_bytes(final) == push.folder_bytes(model)


def test_a_copy_that_fails_half_way_leaves_no_version_and_no_temp_folder(tmp_path):
    model = model_folder(tmp_path)
    os.symlink(tmp_path / "gone", os.path.join(model, "variables", "zz-dangling"))
    serving = tmp_path / "serving"
    with pytest.raises(OSError):
        push.publish(model, str(serving), "100")
    assert os.listdir(serving) == []


def test_a_full_disk_is_refused_before_copying(tmp_path, small_disk):
    model = model_folder(tmp_path, files=2, size=700_000)  # 2.1 MB on 1 MiB
    serving = small_disk / "serving"
    with pytest.raises(push.DiskFullError) as refused:
        push.publish(model, str(serving), "100")
    message = str(refused.value)
    assert "\n" not in message and f"disk full: {serving} has " in message and "the push needs 2.1 MB" in message
    assert os.listdir(serving) == []


def test_a_disk_that_fills_during_the_copy_leaves_no_version(tmp_path, small_disk):
    """The bytes fit, the blocks do not: 200 files of 5,000 bytes take two
    4 KiB pages each, so the copy runs out of space half-way."""
    model = model_folder(tmp_path, files=200, size=5_000)
    serving = small_disk / "serving"
    with pytest.raises(push.DiskFullError, match=f"disk full: {serving} has .* MB free and the push needs 1.0 MB"):
        push.publish(model, str(serving), "100")
    assert [n for n in os.listdir(serving) if n == "100" or n.startswith(PUSH_TEMP_PREFIX)] == []
