"""Hostile conditions: races, broken environments, full or read-only disks, hostile
global config, look-alike projects. app.sh must say clearly what happened and never
harm anything that is not its own. Real JupyterLab, real processes, real mounts."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import OPEN_TO_EVERYONE, TEST_PORT_END, TEST_PORT_START, Project, port, Result, assert_reported_and_left_alone, pid_alive
from test_lifecycle import listening_socket, wait_for

pytestmark = pytest.mark.slow


def may_mount() -> bool:
    """Root with CAP_SYS_ADMIN on Linux: where `mount -t tmpfs` must work."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        return False
    status = Path("/proc/self/status").read_text()
    effective = next(line.split()[1] for line in status.splitlines() if line.startswith("CapEff:"))
    return bool(int(effective, 16) >> 21 & 1)  # CAP_SYS_ADMIN


def fill_up(directory: Path) -> None:
    with open(directory / "filler", "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError:
            pass  # full


# The same, in a mount namespace of our own (unshare -rm): the tmpfs exists only there,
# so app.sh runs there, and what it left in the directory is listed before leaving.
IN_A_NAMESPACE = """
where=$1 options=$2 fill=$3
shift 3
mount -t tmpfs -o "$options" tmpfs "$where" || exit 97
if [[ $fill == 1 ]]; then cat /dev/zero 2>/dev/null >"$where/filler"; fi
"$@"
status=$?
echo "left in the directory:$(cd "$where" && ls -A | grep -vx filler | sed 's/^/ /' | tr -d '\\n')"
exit $status
"""


@contextmanager
def own_filesystem(project: Project, directory: str, options: str, fill: bool = False):
    """The project's `directory` on a real filesystem of its own, read-only or tiny
    (`options`), filled to the last byte when `fill`. Yields start(), which runs
    `app.sh start` there and returns its Result and the names left in the directory.

    mount where we may (root); else, in a user namespace of our own, where app.sh
    runs next to its own mount; else, for a non-root user and a read-only directory,
    its permissions (the same check refuses it). Never a silent skip where mount must
    work: root with CAP_SYS_ADMIN on Linux fails the test instead."""
    where = project.root / directory
    where.mkdir(parents=True, exist_ok=True)
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True)
    if mount.returncode == 0:
        try:
            if fill:
                fill_up(where)

            def start():
                result = project.run("start", "--no-open", timeout=60)
                return result, sorted(set(os.listdir(where)) - {"filler"})

            yield start
        finally:
            subprocess.run(["umount", "-l", str(where)], check=True)
        return
    if may_mount():
        pytest.fail(f"root with CAP_SYS_ADMIN cannot mount a tmpfs: {mount.stderr.strip()}")

    namespace = ["unshare", "--user", "--map-root-user", "--mount"]
    if subprocess.run([*namespace, "true"], capture_output=True).returncode == 0:

        def start():
            proc = subprocess.run(
                [*namespace, "bash", "-c", IN_A_NAMESPACE, "bash", str(where), options, str(int(fill)), str(project.app), "start", "--no-open"],
                capture_output=True,
                text=True,
                timeout=60,
                cwd=project.root,
                stdin=subprocess.DEVNULL,
            )
            assert proc.returncode != 97, f"cannot mount a tmpfs in a user namespace: {proc.stderr}"
            stdout, _, listing = proc.stdout.rpartition("left in the directory:")
            return Result(proc.returncode, stdout, proc.stderr), listing.split()

        yield start
        return

    if "ro" in options.split(",") and os.geteuid() != 0:
        mode = stat.S_IMODE(where.stat().st_mode)
        where.chmod(0o555)
        try:

            def start():
                return project.run("start", "--no-open", timeout=60), sorted(os.listdir(where))

            yield start
        finally:
            where.chmod(mode)
        return
    pytest.skip(f"cannot mount a tmpfs here ({mount.stderr.strip()}), nor in a user namespace of our own")


def test_stop_racing_start_leaves_no_orphan(project: Project):
    for delay in (0.2, 1.0, 3.0):
        starter = subprocess.Popen([str(project.app), "start", "--no-open"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(delay)  # the scenario: stop arrives this long after start began
        assert project.run("stop").returncode == 0
        starter.communicate(timeout=180)
        assert starter.returncode == 0
        status = project.run("status")
        # Whichever came first, the project is either cleanly running or cleanly stopped.
        assert status.returncode in (0, 3), status.output
        assert "orphans:   none" in status.stdout
        project.run("stop")
        assert not project.processes()


def test_many_commands_at_once_in_one_project_each_wait_their_turn(rendered: Project):
    # Contention on the project lock: a command whose mkdir lost to a holder that
    # released the lock a moment later must try again, not report a full disk.
    for _ in range(15):
        stops = [
            subprocess.Popen([str(rendered.app), "stop"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(8)
        ]
        for stop in stops:
            _, err = stop.communicate(timeout=60)
            assert stop.returncode == 0, err
            assert "not running" in err
    assert not (rendered.root / ".logs" / "app.lock").exists()


# Each round: a lock left by an app.sh that died, then 8 commands at once. Each takes the
# lock (sourcing app.sh, as main would) and proves it is alone while holding it.
LOCK_LEFT_BY_A_DEAD_COMMAND = """
holder() {
    source scripts/app.sh
    resolve_project_root
    load_parts
    set_paths
    load_settings
    acquire_lock 2>/dev/null
    echo took-the-lock
    mkdir .logs/alone 2>/dev/null || echo two-holders-at-once
    sleep 0.05
    rmdir .logs/alone 2>/dev/null
    release_lock
}
mkdir -p .logs
for ((round = 0; round < 30; round++)); do
    sleep 0 & dead=$!
    wait $dead
    mkdir -p .logs/app.lock && echo $dead >.logs/app.lock/pid
    for ((i = 0; i < 8; i++)); do (holder) & done
    wait
done
"""


def test_a_lock_left_by_a_dead_command_is_broken_once(rendered: Project):
    # Commands that all saw the same stale lock must not each remove it: the later
    # ones would remove the lock the first had just taken. Failed ~3 rounds in 100.
    result = subprocess.run(
        ["bash", "-c", LOCK_LEFT_BY_A_DEAD_COMMAND], cwd=rendered.root, capture_output=True, text=True, timeout=300
    )
    assert result.stdout.count("took-the-lock") == 30 * 8, result.stdout + result.stderr
    assert "two-holders-at-once" not in result.stdout
    assert sorted(p.name for p in (rendered.root / ".logs").iterdir()) == []


def test_every_port_taken_names_who_holds_them(make_project):
    first, second = port(32), port(33)
    holder = make_project("holder", port_range_start=port(72), port_range_end=port(81))
    holder.start("--port", str(first))
    project = make_project("crowded", port_range_start=first, port_range_end=second)
    with listening_socket(second):
        result = project.run("start", "--no-open")
    assert result.returncode == 1
    assert f"no free port in {first}-{second}" in result.stderr
    assert f"port {first}: Jupyter server, PID {holder.server_pid()}, notebooks in {holder.root}/notebooks" in result.stderr
    if subprocess.run(["sh", "-c", "command -v lsof"], capture_output=True).returncode == 0:
        assert f"port {second}: PID {os.getpid()}" in result.stderr
    assert "copier update --trust -d port_range_end=" in result.stderr
    assert not project.pid_file.exists()


def test_a_venv_whose_python_was_deleted_is_repaired_by_bootstrap(make_project):
    project = make_project("broken-python")
    (project.root / ".jupyter_venv/bin/python").unlink()
    result = project.run("start", "--no-open")
    assert result.returncode == 1
    assert "is broken" in result.stderr and "scripts/app.sh bootstrap" in result.stderr
    assert not project.pid_file.exists()
    repair = project.run("bootstrap")
    assert repair.returncode == 0, repair.output
    assert "recreating" in repair.stderr
    project.start()
    project.run("stop")
    # The project's own .venv (app.sh's, no lock): start recreates it itself.
    (project.root / ".venv/bin/python").unlink()
    started = project.run("start", "--no-open")
    assert started.returncode == 0, started.output
    assert ".venv is broken" in started.stderr and "recreating" in started.stderr
    project.start_kernel()


def test_a_venv_without_jupyterlab_is_repaired_by_bootstrap(make_project, server: str):
    project = make_project("broken-lab")
    (project.root / ".jupyter_venv/bin" / ("jupyverse" if server == "jupyverse" else "jupyter-lab")).unlink()
    status = project.run("status")
    assert "broken" in status.stdout and "scripts/app.sh bootstrap" in status.stdout
    result = project.run("start", "--no-open")
    assert result.returncode == 1 and "scripts/app.sh bootstrap" in result.stderr
    repair = project.run("bootstrap")
    assert repair.returncode == 0, repair.output
    assert "reinstalling" in repair.stderr
    project.start()


@pytest.mark.parametrize("directory", [".logs", ".jupyter_runtime"])
def test_a_read_only_directory_is_a_clear_error(project: Project, directory):
    with own_filesystem(project, directory, "ro,size=1m") as start:
        result, left = start()
    assert result.returncode == 1, result.output
    assert f"{directory} is not writable" in result.stderr
    assert not project.pid_file.exists() and "jupyter.pid" not in left
    assert not project.servers()


@pytest.mark.parametrize("directory", [".logs", ".jupyter_runtime"])
def test_a_full_disk_is_a_clear_error(project: Project, directory):
    with own_filesystem(project, directory, "size=64k,mode=700", fill=True) as start:
        result, left = start()
    assert result.returncode == 1, result.output
    assert "disk" in result.stderr and "full" in result.stderr
    # README: "no PID file", not an empty one.
    assert not project.pid_file.exists() and "jupyter.pid" not in left, left
    assert not project.servers()


def test_a_hostile_global_config_cannot_open_the_server_to_the_network(project: Project, server: str, tmp_path):
    hostile = """
c.ServerApp.ip = '0.0.0.0'
c.ServerApp.port = 18999
c.ServerApp.port_retries = 50
c.ServerApp.open_browser = True
c.ServerApp.allow_remote_access = True
"""
    home = tmp_path / "home"
    (home / ".jupyter").mkdir(parents=True)
    (home / ".jupyter/jupyter_server_config.py").write_text(hostile)
    global_path = tmp_path / "global-config"
    global_path.mkdir()
    (global_path / "jupyter_server_config.py").write_text(hostile)
    env = {"HOME": str(home), "JUPYTER_CONFIG_PATH": str(global_path), "JUPYTER_PORT": "18998", "JUPYTER_TOKEN": ""}

    project.start(env=env)
    info = project.server_info()
    assert info["hostname"] == "127.0.0.1" and TEST_PORT_START <= info["port"] <= TEST_PORT_END
    assert info["token"], "token auth stays on"
    with socket.socket() as probe:
        probe.settimeout(2)
        assert probe.connect_ex(("127.0.0.2", info["port"])) != 0, "reachable beyond 127.0.0.1"
    assert project.api("GET", "/api/status", token=None)[0] == 403
    project.run("stop")

    if server == "jupyverse":
        return  # it reads no Jupyter config: none can turn its authentication off
    # A global config's empty token is overridden: app.sh gives the server its own.
    (global_path / "jupyter_server_config.py").write_text(hostile + "c.IdentityProvider.token = ''\n")
    project.start(env=env)
    assert project.server_info()["token"] and project.api("GET", "/api/status", token=None)[0] == 403
    project.run("stop")
    # One that lets everyone in is refused, not obeyed.
    (global_path / "jupyter_server_config.py").write_text(hostile + OPEN_TO_EVERYONE)
    result = project.run("start", "--no-open", env=env)
    assert result.returncode == 1 and "without a token" in result.stderr, result.output
    assert not project.pid_file.exists()


def test_the_pid_file_log_and_runtime_files_are_private(project: Project):
    project.start()
    private = [project.pid_file, project.root / ".logs/jupyter.log", *project.runtime_dir.glob("jpserver-*.json")]
    for path in private:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, f"{path} is readable by others"
    for directory in (project.root / ".logs", project.runtime_dir):
        # Jupyter adds the sticky bit to its runtime directory; privacy is the rest.
        assert stat.S_IMODE(directory.stat().st_mode) & 0o777 == 0o700


def answers(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_a_jupyter_lab_started_by_hand_in_the_project_is_an_orphan(project: Project, server: str, tmp_path):
    """The user runs the project's jupyter lab (or jupyverse) directly, without app.sh or its env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER_", "IPYTHONDIR"))}
    elsewhere = project.root.parent / "elsewhere-runtime"
    env["JUPYTER_RUNTIME_DIR"] = str(elsewhere)
    if server == "jupyverse":
        # Its state where the test cleans up: by default it goes to ~ and the notebooks.
        state = [f"--set=auth.directory={tmp_path}", f"--set=file_id.db_path={tmp_path}/f.db", f"--set=ystore_sqlite.db_path={tmp_path}/y.db"]
        command = [str(project.root / ".jupyter_venv/bin/jupyverse"), f"--port={port(53)}", "--timeout=60", *state]
        cwd = project.root / "notebooks"
    else:
        command = [str(project.root / ".jupyter_venv/bin/jupyter"), "lab", "--no-browser", f"--port={port(53)}", "--allow-root"]
        cwd = project.root
    by_hand = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        # Up, as the user sees it: not while `jupyter` is still exec'ing `jupyter-lab`,
        # when ps briefly shows neither command line. jupyverse writes no runtime file.
        if server == "jupyverse":
            wait_for(lambda: answers(port(53)), timeout=60)
        else:
            wait_for(lambda: (elsewhere / f"jpserver-{by_hand.pid}.json").exists(), timeout=60)
        assert_reported_and_left_alone(project, by_hand)
    finally:
        by_hand.terminate()
        by_hand.wait(timeout=30)


def test_look_alike_projects_are_never_taken_for_this_one(make_project, tmp_path):
    """A nested project and a sibling whose path starts with this one's and a space, each
    serving its whole folder (notebook_dir '.'): command lines are space-joined, so
    --notebook-dir=.../proj is a prefix of --notebook-dir=.../proj 2 --..."""
    base = tmp_path / "work"
    mine = make_project("mine", where=base / "proj", notebook_dir=".")
    nested = make_project("nested", where=base / "proj" / "sub", notebook_dir=".")
    sibling = make_project("sibling", where=base / "proj 2", notebook_dir=".")
    dashed = make_project("dashed", where=base / "proj --x", notebook_dir=".")  # " --" ends an option's value
    for other in (nested, sibling, dashed):
        other.start()
        other.start_kernel()
    status = mine.run("status")
    assert status.returncode == 3, status.output
    assert "orphans:   none" in status.stdout
    mine.start()
    assert mine.run("stop").returncode == 0
    for other in (nested, sibling, dashed):
        assert pid_alive(other.server_pid())
        assert other.api("GET", "/api/status")[0] == 200
        assert other.run("status").returncode == 0
