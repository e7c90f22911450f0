"""One writer per folder: a second writer is refused with the holder named; a killed holder frees the lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tl_traits.core.locks import LOCK_NAME, FolderLockedError, folder_lock, holds_folder_lock

HOLDER = """
import sys, time
from tl_traits.core.locks import folder_lock
with folder_lock(sys.argv[1], "test holder"):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def held(tmp_path):
    """Another process holding tmp_path's lock; yields (folder, process)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    yield tmp_path, proc
    proc.kill()
    proc.wait()


def test_a_second_writer_is_refused_naming_the_holder_and_the_lock(held):
    folder, proc = held
    with pytest.raises(
        FolderLockedError,
        match=rf"test holder \(pid {proc.pid}, since .*\) holds its lock "
        rf"\(.*{LOCK_NAME}\)",
    ):
        with folder_lock(folder, "second"):
            pytest.fail("two writers held one folder")


def test_a_killed_holder_leaves_no_stale_lock(held):
    folder, proc = held
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with folder_lock(folder, "after the crash") as path:
        assert "after the crash" in path.read_text()
    assert path.read_text() == ""  # released and cleared on exit


def test_the_decorator_locks_the_named_folder_default_included(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    @holds_folder_lock("runs_dir", "sweep")
    def sweep(x, *, runs_dir="runs"):
        """A sweep."""
        return (Path(runs_dir) / LOCK_NAME).read_text()

    assert "sweep (pid" in sweep(1) and sweep.__doc__ == "A sweep."
    assert "sweep (pid" in sweep(1, runs_dir=tmp_path / "elsewhere")
    with folder_lock(tmp_path / "runs", "holder"):  # the same process: flock is per open file, so it still refuses
        with pytest.raises(FolderLockedError):
            sweep(1)


def test_cli_run_refuses_a_locked_folder_and_a_trial_over_a_finished_run(held, capsys):
    from tl_traits.app.cli import main

    folder, proc = held
    with pytest.raises(SystemExit) as done:
        main(["run", "--out", str(folder), "--limit", "2", "--quiet"])
    assert done.value.code == 2 and f"pid {proc.pid}" in capsys.readouterr().err
    finished = folder.parent / "finished"
    (finished / "results").mkdir(parents=True)
    (finished / "results" / "summary.json").write_text(json.dumps({"config": {"limit": None}}))
    before = time.time()
    with pytest.raises(SystemExit) as done:
        main(["run", "--out", str(finished), "--limit", "3", "--quiet"])
    err = capsys.readouterr().err
    assert done.value.code == 2 and "holds a finished full run" in err and "--out" in err
    assert time.time() - before < 30  # refused before any model work
