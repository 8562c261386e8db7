"""Faults of the machine: a full or read-only state folder is one clear error and leaves nothing
half-written; a stopped or killed engine never leaves its record "running" or its steps behind."""

import errno
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from skyops.errors import StateError
from skyops.pipeline.engine import StateDir
from skyops.pipeline.faults import FAULT_ENV, check_writable
from skyops.pipeline.lineage import StepStatus, list_records, load_record, new_record, process_started, save_record

from .conftest import PIPELINES, TRAINER_YAML, records, start_run, statuses, training_folders, wait_for

RECOVER = "then run again: finished steps are reused from the cache"
FULL_HINT = f"free space on that disk (or set SKYOPS_STATE_DIR to a folder on another), {RECOVER}"
READ_ONLY_HINT = f"set SKYOPS_STATE_DIR to a writable folder, {RECOVER}"


@pytest.fixture
def tmpfs(tmp_path: Path):
    """mount(name, *options): a real 1 MiB tmpfs (root only; skipped where mounting is not allowed)."""
    mounted: list[Path] = []

    def mount(name: str, *options: str) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root; the fault-injection tests cover the same paths")
        path = tmp_path / name
        path.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", ",".join(("size=1m", *options)), "tmpfs", str(path)], capture_output=True, text=True
        )
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", str(path)], check=True)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def cache_entries(state: Path) -> list[str]:
    return sorted(p.name for p in (state / "cache").iterdir()) if (state / "cache").is_dir() else []


# ---- a full disk -----------------------------------------------------------------------------------


def test_disk_full_while_publishing_is_one_clear_error_and_the_next_run_succeeds(
    make_engine, numbers, state: StateDir, monkeypatch
) -> None:
    monkeypatch.setenv(FAULT_ENV, "ENOSPC:entry.json")
    with pytest.raises(
        StateError, match=rf"^cannot write the cache entry at {state.root}/cache/[0-9a-f]{{32}}: no space left on the device \(ENOSPC\)$"
    ) as info:
        make_engine().run(numbers)
    assert info.value.hint == FULL_HINT and info.value.exit_code == 1
    assert cache_entries(state.root) == [] and list((state.root / "staging").iterdir()) == []
    saved = load_record(state.runs, "latest")
    assert saved.status == "failed" and statuses(saved) == {"emit": "failed", "double": "skipped", "total": "skipped"}
    assert saved.steps["emit"].error == info.value.message
    monkeypatch.delenv(FAULT_ENV)
    record = make_engine().run(numbers)
    assert record.status == "succeeded" and statuses(record) == dict.fromkeys(["emit", "double", "total"], "done")


def test_disk_full_while_saving_the_record_is_one_clear_error(make_engine, numbers, monkeypatch) -> None:
    monkeypatch.setenv(FAULT_ENV, "ENOSPC:run.json")
    with pytest.raises(StateError, match=r"^cannot write the run record at \S+/runs/[0-9a-z-]+: no space left on the device \(ENOSPC\)$"):
        make_engine().run(numbers)


def test_a_really_full_disk_fails_the_run_cleanly(tmpfs, tmp_path: Path) -> None:
    state = tmpfs("full")
    pipeline = tmp_path / "fill.yaml"
    pipeline.write_text("name: fill\ncatalog: tests.pipeline.toysteps\nsteps:\n  - step: filldisk\n")
    env = {**os.environ, "SKYOPS_STATE_DIR": str(state)}
    done = subprocess.run([sys.executable, "-m", "skyops", "run", str(pipeline)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    error, hint = done.stderr.splitlines()
    key = json.loads(next((state / "runs").glob("*/run.json")).read_text())["steps"]["filldisk"]["cache_key"]
    assert error == f"error: cannot write the cache entry at {state}/cache/{key}: no space left on the device (ENOSPC)"
    assert hint == f"hint: {FULL_HINT}"
    assert cache_entries(state) == [] and list((state / "staging").iterdir()) == []
    assert load_record(state / "runs", "latest").status == "failed"
    fine = subprocess.run(
        [sys.executable, "-m", "skyops", "run", str(PIPELINES / "numbers.yaml")], env=env, capture_output=True, text=True, timeout=120
    )
    assert fine.returncode == 0, fine.stderr  # the space the failed step took was given back


# ---- a read-only state folder ----------------------------------------------------------------------


def test_read_only_state_folder_is_one_clear_line(tmpfs) -> None:
    state = tmpfs("readonly", "ro")
    env = {**os.environ, "SKYOPS_STATE_DIR": str(state)}
    done = subprocess.run(
        [sys.executable, "-m", "skyops", "run", str(PIPELINES / "numbers.yaml")], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert done.stderr == f"error: cannot write the state folder at {state}: read-only file system (EROFS)\nhint: {READ_ONLY_HINT}\n"


def test_state_folder_without_write_permission_is_one_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        (folder / "probe").touch()
    except PermissionError:
        pass
    else:
        pytest.skip("running as root: chmod 0555 does not stop writes (the read-only mount and EACCES-injection tests cover this)")
    finally:
        folder.chmod(0o755)
    folder.chmod(0o555)
    with pytest.raises(StateError, match=rf"^cannot write the state folder at {folder}: permission denied \(EACCES\)$"):
        check_writable(folder)
    folder.chmod(0o755)


def test_permission_denied_is_one_clear_error_even_as_root(make_engine, numbers, state: StateDir, monkeypatch) -> None:
    monkeypatch.setenv(FAULT_ENV, "EACCES:*")
    with pytest.raises(StateError, match=rf"^cannot write the state folder at {state.root}: permission denied \(EACCES\)$") as info:
        make_engine().run(numbers)
    assert info.value.hint == f"make it writable for this user, or set SKYOPS_STATE_DIR to a writable folder, {RECOVER}"
    assert not state.runs.exists(), "nothing was started"


def test_other_os_errors_are_not_disguised(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(FAULT_ENV, "EIO:*")
    with pytest.raises(OSError) as info:
        check_writable(tmp_path / "state")
    assert info.value.errno == errno.EIO and not isinstance(info.value, StateError)


# ---- stopped and killed engines --------------------------------------------------------------------


@pytest.mark.parametrize("launcher", ["fork", "subprocess"])
def test_sigterm_ends_the_record_killed_and_leaves_no_step_process(tmp_path: Path, monkeypatch, launcher: str) -> None:
    monkeypatch.setenv("SKYOPS_LAUNCHER", launcher)
    pipeline = tmp_path / "held.yaml"
    pipeline.write_text(TRAINER_YAML)
    state = tmp_path / "state"
    proc = start_run(pipeline, state)
    folder = wait_for(lambda: training_folders(state).get("a"), "training")
    assert isinstance(folder, Path)
    step_pid = int((folder / "pid").read_text())
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    (record,) = records(state)
    assert proc.returncode == 128 + signal.SIGTERM
    assert err == f"error: run {record.run_id} of 'training' was stopped by SIGTERM\nhint: resume with: {record.resume_command}\n"
    assert record.status == "killed" and record.ended is not None
    assert record.steps["trainer"].status is StepStatus.FAILED and record.steps["trainer"].error == "stopped with its run"
    assert not alive(step_pid), "no orphan step process"
    assert (folder / "log.txt").is_file(), "checkpoints are kept for the resume"


def test_sigkilled_engine_shows_killed_and_its_step_and_lock_die_with_it(tmp_path: Path) -> None:
    pipeline = tmp_path / "held.yaml"
    pipeline.write_text(TRAINER_YAML)
    state = tmp_path / "state"
    env = {**os.environ, "SKYOPS_STATE_DIR": str(state)}
    proc = start_run(pipeline, state)
    folder = wait_for(lambda: training_folders(state).get("a"), "training")
    assert isinstance(folder, Path)
    step_pid = int((folder / "pid").read_text())
    proc.kill()  # the engine alone: no chance to clean up
    proc.communicate(timeout=30)
    (run_json,) = (state / "runs").glob("*/run.json")
    assert json.loads(run_json.read_text())["status"] == "running"
    listed = subprocess.run([sys.executable, "-m", "skyops", "runs", "list"], env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and "killed" in listed.stdout and "running" not in listed.stdout
    shown = subprocess.run([sys.executable, "-m", "skyops", "runs", "show", "latest"], env=env, capture_output=True, text=True, timeout=60)
    assert "  killed  by " in shown.stdout.splitlines()[0]
    assert "error: the engine (pid " in shown.stdout
    assert json.loads(run_json.read_text())["status"] == "killed", "written back for every later reader"
    wait_for(lambda: not alive(step_pid), "the step stopped by its host once the engine was gone")
    (folder / "release").touch()
    again = start_run(pipeline, state)  # the dead engine's lock on this key went with it
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, out + err


def test_stale_records_of_other_hosts_and_live_engines_stay_running(tmp_path: Path) -> None:
    runs = tmp_path / "runs"

    def running(run_id: str, **fields: object) -> None:
        record = new_record(run_id, "p", {}, {"a": "emit"}, "")
        record.steps["a"].status = StepStatus.RUNNING
        for name, value in fields.items():
            setattr(record, name, value)
        save_record(runs, record)

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    gone = int(dead.stdout)
    running("1-elsewhere", host="another-host", pid=gone)
    running("2-alive")  # this process
    running("3-reused", pid=os.getpid(), pid_started=process_started(os.getpid()) + "0")  # same pid, other process
    running("4-gone", pid=gone)
    found = {r.run_id: r for r in list_records(runs)}
    assert {k: r.status for k, r in found.items()} == {
        "1-elsewhere": "running",
        "2-alive": "running",
        "3-reused": "killed",
        "4-gone": "killed",
    }
    assert found["4-gone"].steps["a"].status is StepStatus.FAILED
    assert found["4-gone"].steps["a"].error == f"the engine (pid {gone} on {socket.gethostname()}) stopped without ending the run"
