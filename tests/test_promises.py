"""Promises app.sh broke once (issue 10), each told as the user met it.

End to end like the rest: real JupyterLab, real kernels, real bash, and the
machine's own tools (a missing `ps` is a PATH without it; no /proc is an empty
tmpfs over it in a mount namespace). Slow tests share the session's bootstrapped
project; the fast ones use a rendered project and no server.

Not repeated here: the counter-check of the kernel tests below (a kernel of an
app.sh server that was SIGKILLed while the kernel was stuck in C code is still
stopped by `stop`) is test_lifecycle's
test_a_killed_server_leaves_kernels_that_status_reports_and_stop_removes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import Project, Result, bootstrap, pid_alive, process_table, render
from test_lifecycle import hang_kernel, read_line, wait_for

slow = pytest.mark.slow


# --- helpers ----------------------------------------------------------------------


def timed(command: list[str], cwd: Path, env: dict | None = None, timeout: float = 60) -> tuple[Result, float]:
    """Runs a command in a process group of its own; (result, seconds). A command still
    running after `timeout` is killed with its group and fails the test."""
    started = time.monotonic()
    proc = subprocess.Popen(
        command,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"{' '.join(command)} still ran after {timeout}s:\n{out}{err}") from None
    return Result(proc.returncode, out, err), time.monotonic() - started


def app(project: Project, *args: str, **kwargs) -> tuple[Result, float]:
    return timed([str(project.app), *args], project.root, **kwargs)


def path_without(where: Path, names: set[str], replacements: dict[str, str] | None = None) -> str:
    """A PATH of one directory: every program of this PATH but `names`, as symlinks
    (app.sh needs the rest), plus the given scripts."""
    where.mkdir(parents=True)
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            target = where / entry.name
            if entry.name in names or target.exists() or target.is_symlink():
                continue
            if entry.is_file() and os.access(entry.path, os.X_OK):
                target.symlink_to(entry.path)
    for name, text in (replacements or {}).items():
        (where / name).write_text(text)
        (where / name).chmod(0o755)
    return str(where)


def project_env(project: Project) -> dict[str, str]:
    """The variables app.sh exports for every jupyter command (set_paths)."""
    root = project.root
    return {
        "JUPYTER_CONFIG_DIR": str(root / ".jupyter_config"),
        "JUPYTER_DATA_DIR": str(root / ".jupyter_data"),
        "JUPYTER_RUNTIME_DIR": str(root / ".jupyter_runtime"),
        "IPYTHONDIR": str(root / ".ipython"),
        "MPLCONFIGDIR": str(root / ".cache/matplotlib"),
        "JUPYTER_PATH": str(root / ".venv/share/jupyter"),
    }


def kernel_name(project: Project) -> str:
    return next((project.root / ".venv/share/jupyter/kernels").iterdir()).name


def app_servers(project: Project) -> list[int]:
    """This project's Jupyter servers, however launched (jupyter-lab, python -m jupyterlab)."""
    marker = f"--notebook-dir={project.root}/notebooks"
    return [pid for pid, _, args in process_table() if marker in args and "jupyter" in args]


def log_followers(project: Project) -> list[int]:
    log = f"{project.root}/.logs/jupyter.log"
    return [pid for pid, _, args in process_table() if args.startswith("tail") and log in args]


@contextmanager
def local_settings(project: Project, text: str):
    """Lines added to scripts/app.local.sh for the block; the file is restored after."""
    local = project.root / "scripts/app.local.sh"
    original = local.read_text() if local.exists() else None
    local.write_text((original or "") + "\n" + text + "\n")
    try:
        yield
    finally:
        if original is None:
            local.unlink()
        else:
            local.write_text(original)


def unshare_works(*flags: str) -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", *flags, "true"], capture_output=True).returncode == 0


# --- 1: restart with a bad option -------------------------------------------------------


@slow
def test_a_mistyped_restart_is_refused_and_the_server_keeps_running(project: Project):
    project.start()
    pid = project.server_pid()
    for args in (["--prot", "9805"], ["--port", "99999"], ["--port"]):
        result = project.run("restart", *args)
        assert result.returncode == 2, (args, result.output)
        assert pid_alive(pid), f"restart {' '.join(args)} stopped the server"
        assert project.pid_file.exists() and project.server_pid() == pid
    assert project.api("GET", "/api/status")[0] == 200
    assert project.run("status").returncode == 0


# --- 2: kernels of other Jupyter tools ----------------------------------------------------

LONG_RUNNING_NOTEBOOK = {
    "cells": [
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "sleeps",
            "metadata": {},
            "outputs": [],
            "source": "import time; time.sleep(600)",
        }
    ],
    "metadata": {},
    "nbformat": 4,
    "nbformat_minor": 5,
}


@slow
def test_kernels_of_other_jupyter_tools_in_the_project_are_left_alone(project: Project):
    """`jupyter kernel` (its connection file in .jupyter_runtime) and `jupyter execute`
    (nbclient) run the project's kernel with the project's variables, as a user's
    terminal does after `source`-ing them: neither kernel belongs to app.sh's server."""
    env = {**os.environ, **project_env(project)}
    name = kernel_name(project)
    notebook = project.root / "notebooks/long-running.ipynb"
    notebook.write_text(json.dumps(LONG_RUNNING_NOTEBOOK))
    jupyter = str(project.root / ".jupyter_venv/bin/jupyter")
    tools = [
        subprocess.Popen(
            command, cwd=project.root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        for command in ([jupyter, "kernel", f"--kernel={name}"], [jupyter, "execute", f"--kernel_name={name}", str(notebook)])
    ]
    launchers = {tool.pid for tool in tools}

    def kernels() -> list[int]:
        return [pid for pid, ppid, args in process_table() if ppid in launchers and "ipykernel_launcher" in args]

    try:
        kernel_pids = wait_for(lambda: len(kernels()) == 2 and kernels(), timeout=90)
        # jupyter kernel writes its connection file into .jupyter_runtime; `jupyter console
        # --existing` needs it for as long as the kernel runs.
        connection_files = [
            Path(re.search(r" -f (\S+\.json)", args).group(1))
            for pid, _, args in process_table()
            if pid in kernel_pids and f"-f {project.runtime_dir}/kernel-" in args
        ]
        assert len(connection_files) == 1, connection_files
        everyone = [*launchers, *kernel_pids]

        def all_alive() -> bool:
            live = {pid for pid, _, _ in process_table()}
            return all(pid in live for pid in everyone)

        status = project.run("status")
        assert status.returncode == 3, status.output
        assert "without their server" not in status.stdout
        assert project.run("start", "--no-open").returncode == 0
        assert all_alive(), "start stopped another tool's kernel"
        status = project.run("status")
        assert status.returncode == 0, status.output
        assert project.run("restart", "--no-open").returncode == 0
        assert all_alive(), "restart stopped another tool's kernel"
        assert project.run("stop").returncode == 0
        assert all_alive(), "stop stopped another tool's kernel"
        assert project.run("status").returncode == 3
        assert connection_files[0].exists(), "the live kernel's connection file was deleted"
    finally:
        for pid in [*kernels(), *launchers]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for tool in tools:
            tool.wait(timeout=30)
        notebook.unlink()
        leftovers = kernels()
        wait_for(lambda: not any(pid_alive(p) for p in leftovers), timeout=30)


# --- 3: no working ps ---------------------------------------------------------------------

# ps as BusyBox has it: only -o, -T and -w; -A, -ww, -e, -p... are errors. What it
# accepts, it answers with every process, as BusyBox does.
BUSYBOX_PS = """#!/bin/sh
set -- "$@" --end
while [ "$1" != --end ]; do
    case $1 in
    -o) set -- "$@" -o "$2"; shift 2 ;;
    -o*|-T|-w) set -- "$@" "$1"; shift ;;
    *) echo "ps: unrecognized option: ${1#-}" >&2
       echo "BusyBox v1.36.1 (2024-06-10) multi-call binary." >&2
       exit 1 ;;
    esac
done
shift
exec REAL_PS -A -ww "$@"
"""


@slow
def test_without_a_working_ps_the_running_server_is_still_seen_and_stopped(project: Project, tmp_path):
    real_ps = shutil.which("ps")
    paths = {
        "no ps": path_without(tmp_path / "no-ps", {"ps"}),
        "BusyBox ps": path_without(tmp_path / "busybox", {"ps"}, {"ps": BUSYBOX_PS.replace("REAL_PS", real_ps)}),
    }
    for kind, path in paths.items():
        project.start()
        pid = project.server_pid()
        env = {"PATH": path}
        status = project.run("status", env=env)
        assert status.returncode == 0, (kind, status.output)
        again = project.run("start", "--no-open", env=env)
        assert again.returncode == 0, (kind, again.output)
        assert project.pid_file.exists() and project.server_pid() == pid, kind
        assert app_servers(project) == [pid], f"{kind}: start started a second server"
        stop = project.run("stop", env=env)
        assert stop.returncode == 0, (kind, stop.output)
        wait_for(lambda: not pid_alive(pid), timeout=30)
        assert not project.pid_file.exists(), kind


@slow
def test_without_ps_and_without_proc_app_sh_refuses_and_changes_nothing(project: Project):
    if not unshare_works("-m"):
        pytest.skip("cannot make a mount namespace here (unshare -m)")
    project.start()
    pid = project.server_pid()
    before = sorted(p.name for p in project.runtime_dir.iterdir()), project.pid_file.read_text()
    # /proc emptied by a tmpfs in a mount namespace of its own: ps fails, /proc says nothing.
    blind = ["unshare", "-m", "sh", "-c", 'mount -t tmpfs tmpfs /proc && exec "$0" "$@"', str(project.app)]
    for args in (["status"], ["start", "--no-open"], ["stop"], ["restart", "--no-open"]):
        result, _ = timed([*blind, *args], project.root, timeout=60)
        assert result.returncode == 1, (args, result.output)
        assert "/proc" in result.stderr and re.search(r"\bps\b", result.stderr), (args, result.stderr)
        assert pid_alive(pid), f"{args} stopped the server it could not see"
        assert (sorted(p.name for p in project.runtime_dir.iterdir()), project.pid_file.read_text()) == before, args
    assert project.run("status").returncode == 0


# --- 4: a moved project -------------------------------------------------------------------

RUN_CODE = """
import sys
from jupyter_client import BlockingKernelClient
client = BlockingKernelClient()
client.load_connection_file(sys.argv[1])
client.start_channels()
client.wait_for_ready(timeout=60)
reply = client.execute_interactive(sys.argv[2], timeout=60)
client.stop_channels()
sys.exit(reply["content"]["status"] != "ok")
"""


@slow
def test_a_project_moved_while_its_server_runs_still_stops_it(make_project, tmp_path):
    """The server works in the project's directory, which moved with it: the moved
    app.sh proves it is its own (its working directory), whatever its command line says."""
    project = make_project("moving", where=tmp_path / "before/proj")
    project.start()
    server = project.server_pid()
    new_root = tmp_path / "after/proj"
    new_root.parent.mkdir()
    os.rename(project.root, new_root)
    project.root = new_root
    status = project.run("status")
    assert status.returncode == 0 and f"server:    running (PID {server})" in status.stdout, status.output
    stop = project.run("stop")
    assert stop.returncode == 0 and f"stopped JupyterLab (PID {server})" in stop.stderr, stop.output
    assert not pid_alive(server)


@slow
def test_a_moved_project_starts_and_runs_kernels_from_its_new_place(make_project, tmp_path):
    project = make_project("moved", where=tmp_path / "before/proj")
    project.start()
    assert project.run("stop").returncode == 0
    new_root = tmp_path / "after/proj"
    new_root.parent.mkdir()
    os.rename(project.root, new_root)  # mv
    project.root = new_root  # make_project's clean-up follows it

    doctor = project.run("doctor")
    assert doctor.returncode == 1, doctor.output
    for line in doctor.stdout.splitlines():
        if "venv bootstrapped" in line or "kernel in the venv" in line:
            assert not line.startswith("PASS"), line

    started = project.run("start", "--no-open")
    if started.returncode != 0:  # start may repair the venv itself, or say how
        assert "scripts/app.sh bootstrap" in started.stderr, started.output
        bootstrap(project)
        project.start()
    assert project.api("GET", "/api/status")[0] == 200
    spec = json.loads((new_root / ".venv/share/jupyter/kernels/moved/kernel.json").read_text())
    assert spec["env"] == {"IPYTHONDIR": str(new_root / ".ipython"), "MPLCONFIGDIR": str(new_root / ".cache/matplotlib")}
    kernel_id, _ = project.start_kernel()
    ran = subprocess.run(
        [
            str(new_root / ".jupyter_venv/bin/python"),
            "-c",
            RUN_CODE,
            str(project.runtime_dir / f"kernel-{kernel_id}.json"),
            "import os, sys; print(os.environ['IPYTHONDIR']); print(sys.executable)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert str(new_root / ".ipython") in ran.stdout and str(new_root / ".venv") in ran.stdout

    doctor = project.run("doctor")
    verdicts = {line[6:].split("  ")[0].strip(): line[:4] for line in doctor.stdout.splitlines() if line[:4] in ("PASS", "FAIL")}
    assert verdicts.get("venv bootstrapped") == "PASS", doctor.stdout
    assert verdicts.get("kernel in the venv (spec 2)") == "PASS", doctor.stdout


# --- 5 and 7: timeouts are seconds, wherever they are set --------------------------------

# A server that never acts on SIGTERM (busy, or a handler that swallows it): stop
# must give up on it after APP_STOP_TIMEOUT seconds and kill it.
DEAF_TO_SIGTERM = """
from jupyter_server.serverapp import ServerApp
ServerApp._signal_stop = lambda self, sig, frame: self.log.warning("ignoring signal %s", sig)
"""


@slow
def test_the_stop_timeout_is_seconds_from_the_environment_or_app_local_sh(project: Project):
    (project.root / ".jupyter_config/jupyter_server_config.py").write_text(DEAF_TO_SIGTERM)
    for where in ("environment", "app.local.sh"):
        project.start()
        pid = project.server_pid()
        # Late in a wall-clock second: a timeout counted in whole clock seconds ($SECONDS)
        # would end up to a second early.
        time.sleep((0.85 - time.time() % 1) % 1)
        if where == "environment":
            stop, seconds = app(project, "stop", env={"APP_STOP_TIMEOUT": "2"})
        else:
            with local_settings(project, "APP_STOP_TIMEOUT=2"):
                stop, seconds = app(project, "stop")
        assert stop.returncode == 0, (where, stop.output)
        assert not pid_alive(pid), where
        assert 1.9 <= seconds < 5, f"APP_STOP_TIMEOUT=2 from the {where}: stop took {seconds:.1f}s"


# Loading this config takes 30 s: the server is slow to answer.
SLOW_TO_ANSWER = "import time\ntime.sleep(30)\n"


@slow
def test_app_local_sh_sets_the_start_timeout(project: Project):
    (project.root / ".jupyter_config/jupyter_server_config.py").write_text(SLOW_TO_ANSWER)
    for line in ("export APP_START_TIMEOUT=1", "APP_START_TIMEOUT=1"):
        with local_settings(project, line):
            result, seconds = app(project, "start", "--no-open", timeout=120)
        assert result.returncode == 1, (line, result.output)
        assert seconds < 10, f"{line}: start gave up after {seconds:.1f}s"
        assert not project.pid_file.exists()
        assert not app_servers(project), f"{line}: the slow server was left running"


# --- 8: numeric settings --------------------------------------------------------------------


@slow
def test_numeric_settings_are_checked_before_anything_runs(project: Project, tmp_path):
    pwned = tmp_path / "pwned"
    injection = f"PPID[$(touch {pwned})0]"
    # start refuses a wrong value (exit 2); status and stop warn and go on with the default.
    cases = [
        ("APP_START_TIMEOUT", "1.5", ["start", "--no-open"], 2),
        ("APP_STOP_TIMEOUT", "10s", ["stop"], 0),
        ("APP_LOCK_TIMEOUT", injection, ["status"], 3),
        ("APP_LOCK_TIMEOUT", injection, ["stop"], 0),
        ("APP_START_TIMEOUT", injection, ["start", "--no-open"], 2),
        ("APP_IDLE_TIMEOUT", "2h", ["start", "--no-open"], 2),
        ("APP_IDLE_TIMEOUT", injection, ["status"], 3),
    ]
    for name, value, args, code in cases:
        for where in ("environment", "app.local.sh"):
            if where == "environment":
                result, _ = app(project, *args, env={name: value})
            else:
                with local_settings(project, f"{name}='{value}'"):
                    result, _ = app(project, *args)
            case = f"{name}={value!r} from the {where}, {' '.join(args)}"
            assert result.returncode == code, (case, result.output)
            assert name in result.stderr, case
            if code != 2:
                assert "warning" in result.stderr and "start refuses it" in result.stderr, case
            assert not pwned.exists(), f"{case}: ran the command in the value"
            assert not project.pid_file.exists() and not app_servers(project), f"{case}: a server was started"


@slow
def test_a_typo_in_the_settings_never_keeps_a_running_server_from_stopping(project: Project):
    project.start()
    server = project.server_pid()
    with local_settings(project, "APP_STOP_TIMEOUT=10s\nJUPYTER_EXTRA_ARGS+=(--port=9999)"):
        status, _ = app(project, "status")
        assert status.returncode == 0 and "server:    running" in status.stdout, status.output
        assert "APP_STOP_TIMEOUT" in status.stderr and "JUPYTER_EXTRA_ARGS may not set --port" in status.stderr
        doctor, _ = app(project, "doctor", "--offline")
        assert doctor.returncode == 1
        settings = [line for line in doctor.stdout.splitlines() if "settings" in line]
        assert len(settings) == 2 and all(line.startswith("FAIL") for line in settings), doctor.stdout
        refused, _ = app(project, "restart", "--no-open")  # every problem named at once
        assert refused.returncode == 1, refused.output
        assert "APP_STOP_TIMEOUT" in refused.stderr and "may not set --port" in refused.stderr
        assert project.server_pid() == server, "restart refused before stopping anything"
        stop, _ = app(project, "stop")
        assert stop.returncode == 0, stop.output
        assert not pid_alive(server) and not project.pid_file.exists()
        start, _ = app(project, "start", "--no-open")
        assert start.returncode == 1 and not project.pid_file.exists(), start.output
    doctor, _ = app(project, "doctor", "--offline")
    assert "PASS  settings" in doctor.stdout


# --- 9: a stale lock whose PID was reused ----------------------------------------------------


def lock_as_app_sh_writes_it(project: Project) -> str:
    """The content of the lock a real `start` holds (caught while it waits for a server
    slow to answer), left behind as by an app.sh killed with SIGKILL."""
    lock = project.root / ".logs/app.lock"
    config = project.root / ".jupyter_config/jupyter_server_config.py"
    config.write_text(SLOW_TO_ANSWER)
    holder = subprocess.Popen(
        [str(project.app), "start", "--no-open"],
        cwd=project.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        # The server is launched after the lock is taken and written: the lock is whole.
        server = int(wait_for(lambda: project.pid_file.exists() and project.pid_file.read_text().strip(), timeout=60))
        written = (lock / "pid").read_text()
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()
        config.unlink()
    os.kill(server, signal.SIGKILL)
    wait_for(lambda: not pid_alive(server))
    project.pid_file.unlink()
    assert lock.is_dir(), "a killed app.sh leaves its lock"
    return written


@slow
def test_a_lock_left_with_a_reused_pid_does_not_block_the_project(project: Project):
    """After a reboot or a container restart, the PID in a stale lock names another
    program: a `sleep` of the user's, or PID 1. The lock of an older app.sh held only
    its PID; this one's is caught from a real start."""
    lock = project.root / ".logs/app.lock"
    current = lock_as_app_sh_writes_it(project)
    stranger = subprocess.Popen(["sleep", "300"])
    try:
        for owner, commands in ((stranger.pid, (["status"], ["start", "--no-open"], ["stop"])), (1, (["status"], ["stop"]))):
            for kind, content in (("this app.sh's", current), ("an older app.sh's", "PID\n")):
                for args in commands:
                    lock.mkdir(parents=True, exist_ok=True)
                    (lock / "pid").write_text(re.sub(r"^\S*", str(owner), content, count=1))
                    case = f"{' '.join(args)}, {kind} lock naming live PID {owner}"
                    try:
                        result, seconds = app(project, *args, timeout=30)
                    except AssertionError as error:
                        raise AssertionError(f"{case}: {error}") from None
                    assert result.returncode in (0, 3), (case, result.output)
                    assert seconds < 10, f"{case}: {seconds:.1f}s"
                    if args[0] != "status":
                        assert not lock.exists(), f"{case}: the lock was left behind"
        assert stranger.poll() is None, "the stranger was signalled"
    finally:
        stranger.kill()
        stranger.wait()
        shutil.rmtree(lock, ignore_errors=True)


# --- 10: the terminal closes while start waits ---------------------------------------------


def start_in_a_terminal(project: Project) -> tuple[subprocess.Popen, int]:
    """`start` as the leader of a terminal's process group; returns it and the server's
    PID once the PID file names it (the server is starting, start is waiting)."""
    starter = subprocess.Popen(
        [str(project.app), "start", "--no-open"],
        cwd=project.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    pid = wait_for(lambda: project.pid_file.exists() and project.pid_file.read_text().strip(), timeout=60, interval=0.01)
    return starter, int(pid)


@slow
def test_closing_the_terminal_while_start_waits_keeps_the_server_ctrl_c_stops_it(project: Project):
    starter, pid = start_in_a_terminal(project)
    time.sleep(0.3)  # the scenario: 0.3 s into the wait
    os.killpg(starter.pid, signal.SIGHUP)
    starter.communicate(timeout=180)
    status = project.run("status")
    assert status.returncode == 0, status.output
    assert project.server_pid() == pid and pid_alive(pid)
    assert project.run("stop").returncode == 0

    starter, pid = start_in_a_terminal(project)
    time.sleep(0.3)
    os.killpg(starter.pid, signal.SIGINT)
    starter.communicate(timeout=180)
    wait_for(lambda: not pid_alive(pid), timeout=30)
    assert not project.pid_file.exists()
    assert not app_servers(project)


# --- 11: start --foreground under a parent that ignores SIGINT ---------------------------


def foreground_ignoring_sigint(project: Project) -> tuple[subprocess.Popen, int]:
    """`start --foreground` from a script that ignores SIGINT (as a background job of a
    non-interactive shell does); returns it and its server's PID once it is up."""
    proc = subprocess.Popen(
        ["bash", "-c", "trap '' INT; exec \"$0\" start --foreground --no-open", str(project.app)],
        cwd=project.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    assert read_line(proc.stdout, timeout=120).startswith("http://127.0.0.1:")
    return proc, project.server_pid()


def assert_everything_stopped(project: Project, proc: subprocess.Popen, server: int, kernel: int) -> None:
    proc.wait(timeout=60)
    wait_for(lambda: not log_followers(project), timeout=10)
    assert not pid_alive(server) and not pid_alive(kernel)
    assert not project.pid_file.exists()
    assert not project.processes()


@slow
def test_foreground_under_a_parent_ignoring_sigint_cleans_up_on_every_exit(project: Project):
    # The issue: a stray SIGINT made it exit 130, leaving the server and `tail -f` behind.
    # Ignored like its parent ignores it, or acted on: never half of each.
    proc, server = foreground_ignoring_sigint(project)
    try:
        _, kernel = project.start_kernel()
        os.kill(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            pass
        if proc.poll() is None:  # ignored: it still serves, and SIGTERM ends it
            assert project.api("GET", "/api/status")[0] == 200
            proc.terminate()
        assert_everything_stopped(project, proc, server, kernel)

        for ending in ("SIGHUP", "POST /api/shutdown"):
            proc, server = foreground_ignoring_sigint(project)
            _, kernel = project.start_kernel()
            if ending == "SIGHUP":
                proc.send_signal(signal.SIGHUP)
            else:
                project.api("POST", "/api/shutdown")
            assert_everything_stopped(project, proc, server, kernel)
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in log_followers(project):
            os.kill(pid, signal.SIGKILL)


# --- 12: the token never in a command line --------------------------------------------------


def command_lines() -> set[str]:
    if os.path.isdir("/proc/self"):
        lines = set()
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                        lines.add(handle.read().replace(b"\0", b" ").decode(errors="replace"))
                except OSError:
                    pass
        return lines
    return {args for _, _, args in process_table()}


@contextmanager
def watching_command_lines():
    """Every command line seen on the machine while the block runs, polled in a thread."""
    seen: set[str] = set()
    done = threading.Event()

    def watch():
        while not done.is_set():
            seen.update(command_lines())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield seen
    finally:
        done.set()
        watcher.join(timeout=10)


@slow
def test_the_token_never_appears_in_a_command_line(project: Project):
    with watching_command_lines() as seen:
        project.start()
        token = project.server_info()["token"]
        for command in ("status", "url", "stop"):
            assert project.run(command).returncode == 0, command
    assert token
    assert not [line for line in seen if token in line]


# bash built without network redirections (some distributions build it so): its
# /dev/tcp cannot connect, so app.sh needs another HTTP client. Only bash is refused.
NO_DEV_TCP = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

extern char *program_invocation_short_name;

int connect(int fd, const struct sockaddr *address, socklen_t length) {
    static int (*real_connect)(int, const struct sockaddr *, socklen_t);
    if (!real_connect)
        real_connect = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "connect");
    if (strncmp(program_invocation_short_name, "bash", 4) == 0 && address &&
        (address->sa_family == AF_INET || address->sa_family == AF_INET6)) {
        errno = ENETUNREACH;
        return -1;
    }
    return real_connect(fd, address, length);
}
"""


@slow
def test_the_token_stays_out_of_curls_command_line_when_bash_has_no_dev_tcp(project: Project, tmp_path):
    compiler, curl = shutil.which("cc") or shutil.which("gcc"), shutil.which("curl")
    if compiler is None or curl is None:
        pytest.skip("needs a C compiler (to build bash's missing /dev/tcp) and curl")
    (tmp_path / "no_dev_tcp.c").write_text(NO_DEV_TCP)
    shim = tmp_path / "no_dev_tcp.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-o", str(shim), str(tmp_path / "no_dev_tcp.c"), "-ldl"], check=True)
    calls = tmp_path / "curl-calls"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # curl itself, its command lines written down on the way (too short-lived to poll).
    (bin_dir / "curl").write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >>"{calls}"\nexec "{curl}" "$@"\n')
    (bin_dir / "curl").chmod(0o755)
    env = {"LD_PRELOAD": str(shim), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    with watching_command_lines() as seen:
        result, _ = app(project, "start", "--no-open", env=env, timeout=180)
        assert result.returncode == 0, result.output
        token = project.server_info()["token"]
        assert project.run("status", env=env).returncode == 0
    assert token
    assert not [line for line in seen if token in line]
    if calls.exists():
        assert token not in calls.read_text(), "the token was on curl's command line"


# --- 6, 13, 14: a project in a path full of characters that need quoting -------------------

ODD_PATH = "my #1 'proj' \"q\" \\ $HOME"


@pytest.fixture(scope="module")
def odd_project(copie_session, tmp_path_factory):
    """A bootstrapped project whose path has a space, '#', quotes, a backslash and '$'."""
    root = tmp_path_factory.mktemp("odd") / ODD_PATH
    shutil.move(str(render(copie_session, project_name="odd")), str(root))
    project = Project(root)
    bootstrap(project)
    yield project
    project.run("stop", timeout=60)
    left = project.kill_everything()
    assert not left, f"processes left behind after stop: {left}"


@slow
def test_doctor_passes_the_kernel_of_a_project_whose_path_has_a_quote(odd_project: Project):
    doctor = odd_project.run("doctor")
    kernel_line = next(line for line in doctor.stdout.splitlines() if "kernel in the venv" in line)
    assert kernel_line.startswith("PASS"), kernel_line


@slow
def test_the_browser_gets_a_percent_encoded_url_of_the_redirect_file(odd_project: Project, tmp_path):
    opened = tmp_path / "opened"
    browser = tmp_path / "browser"
    browser.write_text(f'#!/bin/sh\nprintf "%s" "$1" > "{opened}"\n')
    browser.chmod(0o755)
    try:
        result = odd_project.run("start", env={"BROWSER": str(browser)})
        assert result.returncode == 0, result.output
        url = wait_for(lambda: opened.exists() and opened.read_text(), timeout=10)
        assert url.startswith("file:///"), url
        for raw in ("#", " ", "'", '"', "\\"):
            assert raw not in url, f"{raw!r} not percent-encoded in {url}"
        target = Path(urllib.parse.unquote(url[len("file://") :]))
        assert target.is_file(), target
        assert target.parent == odd_project.runtime_dir and target.name.endswith("-open.html")
        assert odd_project.server_info()["token"] not in url

        # status --json names this path as JSON, while it runs.
        status = odd_project.run("status", "--json")
        assert status.returncode == 0
        data = json.loads(status.stdout)
        assert data["root"] == str(odd_project.root) and data["pid"] == odd_project.server_pid()
    finally:
        odd_project.run("stop")


# --- 6: status --json is JSON whatever is on disk -------------------------------------------

PID_FILE_CONTENTS = {
    "empty": b"",
    "a quote": b'oops"\n',
    "two lines": b"123\nextra\n",
    "a huge number": b"99999999999999999999999999\n",
    "a leading zero": b"0123\n",
    "a JSON object": b'{"a": 1}\n',
    "binary junk": b"\x00\xff\xfe\x1b[31m\"\\\x07\n\x01",
}


def assert_status_json_matches(project: Project, case: str) -> dict:
    """status --json parses (as UTF-8, as JSON must be) and agrees with status."""

    def status(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(project.app), "status", *args], cwd=project.root, capture_output=True, timeout=60)

    text, as_json = status(), status("--json")
    try:
        data = json.loads(as_json.stdout)
    except ValueError as error:
        raise AssertionError(f"{case}: status --json printed no JSON ({error}): {as_json.stdout!r}") from None
    assert as_json.returncode == text.returncode, (case, as_json, text)
    assert data.get("exit_code", as_json.returncode) == as_json.returncode, case
    assert data["pid"] is None or type(data["pid"]) is int, f"{case}: pid {data['pid']!r}"
    assert data["root"] == str(project.root), case
    return data


def test_status_json_is_json_in_a_path_that_needs_escaping(make_project, tmp_path):
    # Control characters in a path are legal too; JSON must escape them.
    root = tmp_path / "odd \x1b[1m\t\"dir\" \\ $x"
    project = make_project("odd-json", where=root, bootstrapped=False, display_name='Say "hi" \\ now')
    data = assert_status_json_matches(project, "an odd path")
    assert data["display_name"] == 'Say "hi" \\ now'


def test_status_json_is_json_whatever_the_pid_file_holds(rendered: Project):
    rendered.pid_file.parent.mkdir(exist_ok=True)
    failures = []
    for case, content in PID_FILE_CONTENTS.items():
        rendered.pid_file.write_bytes(content)
        try:
            assert_status_json_matches(rendered, f"a PID file holding {case}")
        except AssertionError as error:
            failures.append(str(error))
    assert not failures, "\n".join(failures)


@slow
def test_status_json_is_json_in_every_state_and_agrees_with_status(project: Project):
    project.start()
    pid = project.server_pid()
    assert assert_status_json_matches(project, "running")["pid"] == pid

    project.pid_file.unlink()  # lost: an orphan server
    assert assert_status_json_matches(project, "orphan server")["exit_code"] == 4
    project.pid_file.write_text(f"{pid}\n")

    _, kernel_pid = project.start_kernel()
    hang_kernel(project, kernel_pid)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid))
    data = assert_status_json_matches(project, "dead server, orphan kernel")
    assert data["exit_code"] == 4 and kernel_pid in data["stray_kernels"]

    assert project.run("stop").returncode == 0
    project.pid_file.write_text("999999\n")
    assert assert_status_json_matches(project, "dead PID file")["exit_code"] == 4
    project.pid_file.unlink()
    assert assert_status_json_matches(project, "not running")["exit_code"] == 3


# --- 15: app.sh through a relative symlink ---------------------------------------------------


def test_app_sh_through_a_relative_symlink_called_without_a_slash(rendered: Project):
    (rendered.root / "appl").symlink_to("scripts/app.sh")
    direct = subprocess.run([str(rendered.app), "status"], cwd=rendered.root, capture_output=True, text=True)
    for how in (["bash", "appl", "status"], ["./appl", "status"]):
        linked = subprocess.run(how, cwd=rendered.root, capture_output=True, text=True)
        assert (linked.returncode, linked.stdout) == (direct.returncode, direct.stdout), (how, linked.stderr)


# --- 16: doctor never waits on the network ---------------------------------------------------


def template_line(result: Result) -> str:
    return next(line for line in result.stdout.splitlines() if "template up to date" in line)


def test_doctor_without_copier_skips_the_template_check(rendered: Project, tmp_path):
    env = {"PATH": path_without(tmp_path / "bin", {"copier", "uvx", "uv"})}
    result, seconds = timed([str(rendered.app), "doctor"], rendered.root, env=env, timeout=30)
    assert result.returncode in (0, 1) and seconds < 15, (seconds, result.output)
    line = template_line(result)
    assert line.startswith("SKIP") and line.split("template up to date", 1)[1].strip(), line


@contextmanager
def unanswering_server():
    """A port that takes connections and never answers, as behind a firewall that drops
    or a dead proxy: whoever asks it waits until their own timeout, if any."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield sock.getsockname()[1]


def test_doctor_does_not_hang_when_the_network_never_answers(rendered: Project, tmp_path):
    doctor = [str(rendered.app), "doctor"]
    with unanswering_server() as port:
        answers = rendered.root / ".copier-answers.yml"
        remote = f"https://127.0.0.1:{port}/jupyter-template.git"
        answers.write_text(re.sub(r"(?m)^_src_path:.*$", f"_src_path: {remote}", answers.read_text()))
        index = f"http://127.0.0.1:{port}/simple"
        silent = {"UV_DEFAULT_INDEX": index, "UV_INDEX_URL": index, "PIP_INDEX_URL": index}
        cases = {}
        if shutil.which("copier"):
            cases["copier on PATH"] = silent
        if shutil.which("uvx"):
            cases["uvx, no copier"] = {**silent, "PATH": path_without(tmp_path / "uvx", {"copier"})}
        for case, env in cases.items():
            result, seconds = timed(doctor, rendered.root, env=env, timeout=30)
            assert result.returncode in (0, 1) and seconds < 15, (case, seconds, result.output)
            template_line(result)
    if unshare_works("-n"):  # and no network at all
        result, seconds = timed(["unshare", "-n", *doctor], rendered.root, timeout=30)
        assert result.returncode in (0, 1) and seconds < 15, (seconds, result.output)
        template_line(result)


def test_status_reads_only_known_words_from_the_bootstrap_stamp(rendered: Project):
    """Junk in .jupyter_venv/.app-bootstrap-stamp (a crash mid-write, a hand edit) is reported as
    unknown, never passed on as a state."""
    (rendered.root / ".jupyter_venv").mkdir()
    for junk in ('garbage\nroot=/x\ndependencies=failed"x\n', "a\nb\ndependencies=\x01\n", "\n\n\n"):
        (rendered.root / ".jupyter_venv/.app-bootstrap-stamp").write_text(junk)
        result = rendered.run("status", "--json")
        assert json.loads(result.stdout)["dependencies"] == "unknown", (junk, result.stdout)
        assert "deps:" not in rendered.run("status").stdout
