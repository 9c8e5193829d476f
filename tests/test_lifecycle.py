"""End to end: app.sh drives a real JupyterLab and real kernels, as a user would.

Slow (each start is a real JupyterLab start, a few seconds on 2 cores). The session
bootstraps one project and reuses its venv; tests that need a project of their own
render and bootstrap one (uv's cache makes that ~2 s).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import OPEN_TO_EVERYONE, TEST_PORT_END, TEST_PORT_START, Project, port, assert_reported_and_left_alone, pid_alive, process_table

pytestmark = pytest.mark.slow


def wait_for(predicate, timeout: float = 30, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")


def proc_environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def listening_socket(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


# --- bootstrap -----------------------------------------------------------------------


def test_bootstrap_registers_the_kernel_in_the_venv_exactly_as_the_spec_says(bootstrapped_project: Project):
    root = bootstrapped_project.root
    spec = json.loads((root / ".venv/share/jupyter/kernels/e2e-proj/kernel.json").read_text())
    assert spec["display_name"] == "E2E Proj"
    # The project's own Python runs the kernel; ipykernel comes from app.sh's directory.
    assert spec["argv"] == [str(root / ".venv/bin/python"), "-Xfrozen_modules=off", str(root / "scripts/ipykernel_launcher.py"), "-f", "{connection_file}"]
    assert spec["env"] == {"IPYTHONDIR": str(root / ".ipython"), "MPLCONFIGDIR": str(root / ".cache/matplotlib")}
    assert not (Path.home() / ".local/share/jupyter/kernels/e2e-proj").exists(), "never --user"
    for directory in (".jupyter_config", ".jupyter_data", ".jupyter_runtime", ".ipython", ".cache/matplotlib", ".logs"):
        assert (root / directory).is_dir(), directory
    for private in (".logs", ".jupyter_runtime"):
        assert (root / private).stat().st_mode & 0o077 == 0, f"{private} must be private: it holds the token"


def test_the_kernel_spec_is_the_one_ipykernel_itself_writes(bootstrapped_project: Project, tmp_path: Path):
    # bootstrap writes the spec without importing ipykernel (~1 s on a new venv): what
    # ipykernel's own install writes for the same kernel must be the same, file by file.
    # The command differs on purpose: the project's Python runs scripts/ipykernel_launcher.py.
    root = bootstrapped_project.root
    (support,) = (root / ".jupyter_venv/kernel").glob("python3.*")
    subprocess.run(
        [str(root / ".venv/bin/python"), "-m", "ipykernel", "install", "--prefix", str(tmp_path), "--name", "e2e-proj"]
        + ["--display-name", "E2E Proj", "--env", "IPYTHONDIR", str(root / ".ipython")]
        + ["--env", "MPLCONFIGDIR", str(root / ".cache/matplotlib")],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(support)},
    )
    ours, theirs = root / ".venv/share/jupyter/kernels/e2e-proj", tmp_path / "share/jupyter/kernels/e2e-proj"
    assert sorted(path.name for path in ours.iterdir()) == sorted(path.name for path in theirs.iterdir())
    for path in theirs.iterdir():
        if path.name == "kernel.json":
            mine, its = json.loads((ours / path.name).read_text()), json.loads(path.read_text())
            assert mine.pop("argv")[2] == str(root / "scripts/ipykernel_launcher.py")
            assert its.pop("argv")[2:4] == ["-m", "ipykernel_launcher"]
            assert mine == its
            assert (ours / path.name).read_text().startswith('{\n "argv": [\n'), "indent 1, as ipykernel writes it"
        else:
            assert (ours / path.name).read_bytes() == path.read_bytes(), path.name


def test_the_venv_has_pip_so_percent_pip_install_works_in_notebooks(bootstrapped_project: Project):
    # What `uv venv --seed` puts in a venv, installed with JupyterLab: pip, and below
    # Python 3.12 setuptools and wheel.
    python = str(bootstrapped_project.root / ".venv/bin/python")
    assert subprocess.run([python, "-m", "pip", "--version"], capture_output=True).returncode == 0
    seeded = "import sys\nif sys.version_info < (3, 12):\n    import setuptools, wheel"
    assert subprocess.run([python, "-c", seeded], capture_output=True).returncode == 0


def test_a_second_bootstrap_with_nothing_changed_does_nothing(bootstrapped_project: Project):
    result = bootstrapped_project.run("bootstrap")
    assert result.returncode == 0
    assert "already bootstrapped" in result.stderr
    assert "installing" not in result.stderr


@pytest.mark.jupyter_server_only("it checks jupyterlab's and jupyter_server's bytecode, which a jupyverse venv does not have")
def test_bootstrap_compiles_bytecode_when_python_is_told_not_to_cache_it(bootstrapped_project: Project):
    # The session bootstraps with PYTHONDONTWRITEBYTECODE=1, as container images do:
    # without compiled bytecode, every start would compile JupyterLab's imports anew.
    site_packages = next((bootstrapped_project.root / ".jupyter_venv/lib").glob("python3.*/site-packages"))
    # A module no server start imports: it was compiled by bootstrap, not by a start.
    assert list((site_packages / "jupyterlab/__pycache__").glob("browser_check.*.pyc"))
    assert list((site_packages / "jupyter_server/__pycache__").glob("serverapp.*.pyc"))


@pytest.mark.jupyter_server_only("it checks that bootstrap installs jupyterlab; tests/test_jupyverse.py proves jupyverse's bootstrap")
def test_bootstrap_installs_the_projects_own_dependencies(make_project):
    project = make_project("deps", bootstrapped=False)
    (project.root / "requirements.txt").write_text("iniconfig==2.1.0\n")
    result = project.run("bootstrap")
    assert result.returncode == 0, result.output
    for step in ("creating .jupyter_venv", "installing jupyterlab==", "creating .venv", "requirements.txt", "registering kernel 'deps'", "bootstrapped in"):
        assert step in result.stderr, step
    assert "compiling bytecode" not in result.stderr, "Python caches it on first import: no need"
    # Two environments: the project's packages in .venv, JupyterLab apart in .jupyter_venv.
    assert subprocess.run([str(project.root / ".venv/bin/python"), "-c", "import iniconfig"]).returncode == 0
    assert subprocess.run([str(project.root / ".venv/bin/python"), "-c", "import jupyterlab"], capture_output=True).returncode != 0
    assert subprocess.run([str(project.root / ".jupyter_venv/bin/python"), "-c", "import jupyterlab"]).returncode == 0

    # A changed dependency file: start warns, the next bootstrap installs it.
    (project.root / "requirements.txt").write_text("iniconfig==2.1.0\npluggy==1.6.0\n")
    status_result = project.run("start", "--no-open")
    assert status_result.returncode == 0
    assert "run: scripts/app.sh bootstrap" in status_result.stderr
    project.run("stop")
    result = project.run("bootstrap")
    assert result.returncode == 0 and "already bootstrapped" not in result.stderr
    assert subprocess.run([str(project.root / ".venv/bin/python"), "-c", "import pluggy"]).returncode == 0
    assert "already bootstrapped" in project.run("bootstrap").stderr


def test_bootstrap_without_uv_on_path_installs_uv_into_the_venv(make_project):
    project = make_project("no-uv", bootstrapped=False)
    path = os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep) if not (Path(d) / "uv").exists())
    result = project.run("bootstrap", env={"PATH": path})
    assert result.returncode == 0, result.output
    assert "-m venv" in result.stderr and "installing uv into .jupyter_venv" in result.stderr
    assert (project.root / ".jupyter_venv/bin/uv").exists()
    assert (project.root / ".venv/share/jupyter/kernels/no-uv/kernel.json").exists()


# --- start, status, stop ------------------------------------------------------------------


def test_start_serves_jupyterlab_on_a_free_port_with_the_pid_file_and_token(project: Project):
    result = project.start()
    url = result.stdout.strip()
    pid = project.server_pid()
    info = project.server_info(pid)

    assert info["pid"] == pid, "the PID file names the server itself"
    assert TEST_PORT_START <= info["port"] <= TEST_PORT_END
    assert url == f"http://127.0.0.1:{info['port']}/lab?token={info['token']}"
    assert result.stderr.startswith("app.sh: ")
    assert project.api("GET", "/api/status")[0] == 200
    assert project.api("GET", "/api/status", token=None)[0] == 403, "token auth is always on"

    # Bound to 127.0.0.1 only: another loopback address does not reach it.
    with socket.socket() as probe:
        probe.settimeout(2)
        assert probe.connect_ex(("127.0.0.2", info["port"])) != 0

    # The spec's isolation variables reach the server.
    if Path("/proc").is_dir():
        environ = proc_environ(pid)
        for name, sub in [
            ("JUPYTER_CONFIG_DIR", ".jupyter_config"),
            ("JUPYTER_DATA_DIR", ".jupyter_data"),
            ("JUPYTER_RUNTIME_DIR", ".jupyter_runtime"),
            ("IPYTHONDIR", ".ipython"),
            ("MPLCONFIGDIR", ".cache/matplotlib"),
        ]:
            assert environ[name] == str(project.root / sub)

    status = project.run("status")
    assert status.returncode == 0
    assert f"server:    running (PID {pid})" in status.stdout
    assert f"port:      {info['port']}" in status.stdout
    assert f"url:       {url}" in status.stdout
    assert "orphans:   none" in status.stdout
    assert project.run("url").stdout.strip() == url

    stop = project.run("stop")
    assert stop.returncode == 0
    assert f"stopped JupyterLab (PID {pid})" in stop.stderr
    assert not project.pid_file.exists()
    assert not pid_alive(pid)
    assert not list(project.runtime_dir.glob("jpserver-*")), "a clean stop leaves no runtime file"
    assert project.run("status").returncode == 3


def test_starting_twice_prints_the_same_url_and_never_starts_a_second_server(project: Project):
    first = project.start().stdout
    pid = project.server_pid()
    again = project.start()
    assert again.stdout == first
    assert "already running" in again.stderr
    assert project.server_pid() == pid
    assert project.servers() == [pid]


def test_the_default_kernel_is_the_projects_and_stop_takes_kernels_with_it(project: Project):
    project.start()
    status, specs = project.api("GET", "/api/kernelspecs")
    assert status == 200 and specs["default"] == "e2e-proj"
    kernels = [project.start_kernel()[1] for _ in range(2)]
    if Path("/proc").is_dir():
        assert proc_environ(kernels[0])["IPYTHONDIR"] == str(project.root / ".ipython")
    assert project.run("stop").returncode == 0
    assert not [k for k in kernels if pid_alive(k)]
    assert not project.processes()


@pytest.mark.jupyter_server_only("it checks jupyter-server's --ServerApp.port_retries=0 and --allow-root; jupyverse has neither (it never moves to another port)")
def test_running_as_root_is_handled_by_the_script(project: Project):
    project.start()
    args = dict((p, a) for p, _, a in process_table())[project.server_pid()]
    assert "--ServerApp.port_retries=0" in args, "Jupyter must never move to another port by itself"
    if os.geteuid() == 0:
        assert "--allow-root" in args
    else:
        assert "--allow-root" not in args


def test_restart_replaces_the_server(project: Project):
    project.start()
    old = project.server_pid()
    result = project.run("restart", "--no-open")
    assert result.returncode == 0, result.output
    assert project.server_pid() != old and not pid_alive(old)
    assert project.run("status").returncode == 0


def test_restart_comes_back_on_the_port_it_had_while_a_client_holds_connections(project: Project):
    import http.client

    port = TEST_PORT_START + 3  # not the first free port: coming back there is no accident
    project.start(f"--port={port}")
    token = project.server_info()["token"]
    # A browser keeps connections open; the server's side of them lingers in TIME_WAIT.
    browser = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    browser.request("GET", "/api/status", headers={"Authorization": f"token {token}"})
    assert browser.getresponse().read()
    restarted = project.run("restart", "--no-open")
    assert restarted.returncode == 0, restarted.output
    browser.close()
    assert project.server_info()["port"] == port, restarted.output
    # An explicit --port still wins.
    moved = project.run("restart", "--no-open", f"--port={port + 1}")
    assert moved.returncode == 0 and project.server_info()["port"] == port + 1, moved.output


def test_a_missing_notebook_folder_is_named_by_status_and_doctor_and_restart_makes_it(project: Project, server: str):
    """JupyterLab's root is gone while the server runs (a `copier update` or a commit
    dropped the empty notebooks/ with its .gitkeep): jupyter-server answers 404 for its
    root, so status warns and doctor fails a line, each saying what to run; restart makes
    the folder again. Stopped, the hint is the mkdir."""
    notebooks = project.root / "notebooks"
    project.start()
    assert project.api("GET", "/api/contents")[0] == 200
    shutil.rmtree(notebooks)
    try:
        if server == "jupyter-server":
            assert project.api("GET", "/api/contents")[0] == 404
        status = project.run("status")
        assert status.returncode == 0, status.output
        assert "notebooks/ (JupyterLab's root), MISSING" in status.stdout
        assert "warning: JupyterLab's root notebooks/ is missing, and the running server serves it" in status.stderr
        assert "run: scripts/app.sh restart" in status.stderr, status.stderr
        doctor = project.run("doctor", "--offline")
        assert doctor.returncode == 1
        assert "FAIL  JupyterLab's root exists" in doctor.stdout and "run: scripts/app.sh restart" in doctor.stdout, doctor.stdout

        restarted = project.run("restart", "--no-open")
        assert restarted.returncode == 0, restarted.output
        assert notebooks.is_dir() and project.api("GET", "/api/contents")[0] == 200
        assert "PASS  JupyterLab's root exists" in project.run("doctor", "--offline").stdout

        assert project.run("stop").returncode == 0
        notebooks.rmdir()
        status = project.run("status")
        assert "warning: JupyterLab's root notebooks/ is missing; run: mkdir -p notebooks" in status.stderr, status.stderr
        doctor = project.run("doctor", "--offline")
        assert "FAIL  JupyterLab's root exists" in doctor.stdout and "run: mkdir -p notebooks" in doctor.stdout, doctor.stdout
    finally:
        notebooks.mkdir(exist_ok=True)
        (notebooks / ".gitkeep").touch()


# What each server logs when it is up, and when it starts a kernel.
LOG_LINES = {"jupyter-server": ("Jupyter Server", "Kernel started"), "jupyverse": ("Server running", "Starting kernel")}


def test_logs_show_and_follow_the_server_log(project: Project, server: str):
    up, kernel_started = LOG_LINES[server]
    project.start()
    full = project.run("logs")
    assert full.returncode == 0 and up in full.stdout
    assert len(project.run("logs", "-n", "2").stdout.splitlines()) == 2
    follower = subprocess.Popen([str(project.app), "logs", "-f"], stdout=subprocess.PIPE, text=True)
    try:
        assert follower.stdout.readline(), "logs -f prints the log"
        project.start_kernel()  # the server logs the kernel start: -f shows it as it happens
        wait_for(lambda: kernel_started in follower.stdout.readline(), timeout=30)
    finally:
        follower.terminate()
        follower.wait(timeout=10)


def test_start_opens_a_browser_only_through_a_real_opener(project: Project, server: str, tmp_path):
    opened = tmp_path / "opened"
    browser = tmp_path / "browser"
    browser.write_text(f'#!/bin/sh\necho "$1" > "{opened}"\n')
    browser.chmod(0o755)
    result = project.run("start", env={"BROWSER": str(browser)})
    assert result.returncode == 0, result.output
    target = wait_for(lambda: opened.exists() and opened.read_text().strip(), timeout=10)
    # The redirect file keeps the token out of the opener's command line: jupyter-server's
    # own, or the one app.sh writes where the server writes none (jupyverse).
    redirect = "app-open.html" if server == "jupyverse" else f"jpserver-{project.server_pid()}-open.html"
    assert target == f"file://{project.runtime_dir}/{redirect}"
    project.run("stop")

    env = {"BROWSER": "", "DISPLAY": "", "WAYLAND_DISPLAY": ""}
    result = project.run("start", env=env)
    assert result.returncode == 0 and "no browser to open here" in result.stderr


# --- ports ---------------------------------------------------------------------------------


def test_a_busy_port_is_refused_by_name_and_skipped_by_auto_selection(project: Project):
    with listening_socket(TEST_PORT_START):
        result = project.run("start", "--no-open", "--port", str(TEST_PORT_START))
        assert result.returncode == 1
        assert f"port {TEST_PORT_START} is busy" in result.stderr
        assert not project.pid_file.exists()

        project.start()
        assert project.server_info()["port"] != TEST_PORT_START


def test_a_port_outside_the_range_is_allowed_with_a_warning(project: Project):
    outside = TEST_PORT_END + 51
    result = project.start(f"--port={outside}")
    assert f"outside this project's range {TEST_PORT_START}-{TEST_PORT_END}" in result.stderr
    assert project.server_info()["port"] == outside


def test_every_port_taken_names_the_range_and_the_way_out(make_project):
    first, second = port(32), port(33)
    project = make_project("narrow", port_range_start=first, port_range_end=second)
    with listening_socket(first), listening_socket(second):
        result = project.run("start", "--no-open")
    assert result.returncode == 1
    assert f"no free port in {first}-{second}" in result.stderr
    assert "--port" in result.stderr and "port_range_end" in result.stderr


def test_two_projects_started_at_the_same_moment_get_different_ports(make_project):
    a, b = make_project("alpha"), make_project("beta")
    procs = [
        subprocess.Popen([str(p.app), "start", "--no-open"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for p in (a, b)
    ]
    outputs = [proc.communicate(timeout=180) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    ports = {a.server_info()["port"], b.server_info()["port"]}
    assert len(ports) == 2


# Jupyter writes its runtime file before it binds its port: while a server that lost
# the race for a port is still starting, the port answers, but for another server.
# Here a short-lived process plays the loser, its runtime file naming the port of the
# project's real, running server.
LOSER_OF_A_PORT_RACE = """
source scripts/app.sh
resolve_project_root
load_parts
set_paths
load_settings
sleep 1 &
printf '{\\n  "port": %s,\\n  "url": "http://127.0.0.1:%s/",\\n  "token": "not-the-answering-servers"\\n}\\n' \\
    "$1" "$1" >"$JUPYTER_RUNTIME_DIR/jpserver-$!.json"
status=0
wait_until_ready $! || status=$?
rm -f "$JUPYTER_RUNTIME_DIR/jpserver-$!.json"
echo "wait_until_ready: $status"
"""


def test_a_port_answered_by_another_server_is_not_taken_for_ours(project: Project):
    project.start()
    port = project.server_info()["port"]
    result = subprocess.run(
        ["bash", "-c", LOSER_OF_A_PORT_RACE, "bash", str(port)], cwd=project.root, capture_output=True, text=True, timeout=60
    )
    assert "wait_until_ready: 1" in result.stdout, result.stdout + result.stderr


def test_concurrent_starts_in_one_project_share_one_server(project: Project):
    procs = [
        subprocess.Popen([str(project.app), "start", "--no-open"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=180) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    assert outputs[0][0] == outputs[1][0] and outputs[0][0].startswith("http://127.0.0.1:")
    assert len(project.servers()) == 1


# --- faults: never signal a stranger, clean up what is ours --------------------------------


def test_a_reused_pid_in_the_pid_file_is_never_signalled(project: Project):
    stranger = subprocess.Popen(["sleep", "300"])
    try:
        project.pid_file.parent.mkdir(exist_ok=True)
        project.pid_file.write_text(f"{stranger.pid}\n")
        status = project.run("status")
        assert status.returncode == 4
        assert f"names PID {stranger.pid}, which is not this project's server" in status.stdout

        stop = project.run("stop")
        assert stop.returncode == 0 and "removing stale PID file" in stop.stderr
        assert not project.pid_file.exists()

        project.pid_file.write_text(f"{stranger.pid}\n")
        project.start()
        assert project.server_pid() != stranger.pid
        assert stranger.poll() is None, "the stranger was signalled"
    finally:
        stranger.kill()
        stranger.wait()


def test_another_projects_server_in_the_pid_file_is_left_alone(project: Project, make_project):
    other = make_project("neighbour")
    other.start()
    neighbour_pid = other.server_pid()
    project.pid_file.parent.mkdir(exist_ok=True)
    project.pid_file.write_text(f"{neighbour_pid}\n")
    assert project.run("stop").returncode == 0
    assert pid_alive(neighbour_pid)
    assert other.api("GET", "/api/status")[0] == 200


def test_stale_runtime_files_are_cleaned_on_status(project: Project):
    project.runtime_dir.mkdir(exist_ok=True)
    stranger = subprocess.Popen(["sleep", "300"])
    try:
        stale = []
        for pid in (999_999, 999_998, stranger.pid):
            json_file = project.runtime_dir / f"jpserver-{pid}.json"
            json_file.write_text(json.dumps({"pid": pid, "port": 1}))
            (project.runtime_dir / f"jpserver-{pid}-open.html").write_text("")
            stale.append(json_file)
        # A kernel file no live process names goes once it is over a minute old (another
        # Jupyter tool may be about to start its kernel from a fresh one): kept while new.
        dead_kernel = project.runtime_dir / "kernel-dead.json"
        dead_kernel.write_text("{}")
        project.run("status")
        assert dead_kernel.exists(), "a fresh kernel file may be a tool's kernel about to start"
        old = time.time() - 120
        for kernel_file in project.runtime_dir.glob("kernel-*.json"):  # earlier tests' too
            os.utime(kernel_file, (old, old))
        project.run("status")
        assert not [f for f in project.runtime_dir.iterdir() if f.name.startswith(("jpserver-", "kernel-"))]
    finally:
        stranger.kill()
        stranger.wait()


# The cell holds the GIL in C code for ages, so the kernel's threads (its parent poller,
# its iopub sender) never run again. It waits for the go-ahead file in sleeps, which
# release the GIL, and removes it right before the regex: once the file is gone the
# kernel is stuck for good. (Sending "busy" is no such signal: entering the regex
# before the iopub thread has sent it starves the message forever.)
HUNG_KERNEL = """
import sys, time
from pathlib import Path
from jupyter_client import BlockingKernelClient
go = Path(sys.argv[2])
client = BlockingKernelClient()
client.load_connection_file(sys.argv[1])
client.start_channels()
client.wait_for_ready(timeout=30)
msg_id = client.execute(
    "import os, re, time\\n"
    f"while not os.path.exists({str(go)!r}): time.sleep(0.02)\\n"
    f"os.remove({str(go)!r}); re.match(r'(a+)+$', 'a' * 64 + 'b')"
)
# The kernel publishes "busy" from its IOPub thread, which cannot run once the cell holds
# the GIL: wait until the message is out (every subscriber, the server too, got it).
while True:
    msg = client.get_iopub_msg(timeout=30)
    if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "execute_input":
        break
go.touch()
deadline = time.monotonic() + 30
while go.exists():
    if time.monotonic() > deadline:
        sys.exit("the kernel never ran the cell")
    time.sleep(0.02)
client.stop_channels()
"""


def hang_kernel(project: Project, kernel_pid: int) -> None:
    """Makes the kernel busy in C code: it cannot notice its server die."""
    connection = project.connection_file(kernel_pid)
    go = project.root / f".logs/go-{kernel_pid}"
    helper = [str(project.root / ".jupyter_venv/bin/python"), "-c", HUNG_KERNEL, str(connection), str(go)]
    subprocess.run(helper, check=True, timeout=60)


def test_a_killed_server_leaves_kernels_that_status_reports_and_stop_removes(project: Project):
    project.start()
    _, kernel_pid = project.start_kernel()
    hang_kernel(project, kernel_pid)
    server = project.server_pid()
    os.kill(server, signal.SIGKILL)  # the OOM killer
    wait_for(lambda: not pid_alive(server))
    time.sleep(2.5)  # longer than ipykernel's parent poll: this kernel is stuck for good
    assert pid_alive(kernel_pid)

    status = project.run("status")
    assert status.returncode == 4, status.output
    assert "server:    dead" in status.stdout
    assert f"kernels without their server: PID {kernel_pid}" in status.stdout

    stop = project.run("stop")
    assert stop.returncode == 0
    assert f"stopped kernels (PID {kernel_pid})" in stop.stderr
    assert not pid_alive(kernel_pid)
    assert not project.pid_file.exists()
    assert project.run("status").returncode == 3


def test_a_killed_servers_kernels_are_cleaned_by_the_next_start(project: Project):
    project.start()
    _, kernel_pid = project.start_kernel()
    hang_kernel(project, kernel_pid)
    server = project.server_pid()
    os.kill(server, signal.SIGKILL)
    wait_for(lambda: not pid_alive(server))
    result = project.run("start", "--no-open")
    assert result.returncode == 0, result.output
    assert "stopping kernels left by a server that is gone" in result.stderr
    assert not pid_alive(kernel_pid)


def test_a_server_that_lost_its_pid_file_is_an_orphan_that_start_adopts(project: Project):
    url = project.start().stdout
    pid = project.server_pid()
    project.pid_file.unlink()
    status = project.run("status")
    assert status.returncode == 4
    assert f"servers not tracked by the PID file: PID {pid}" in status.stdout
    again = project.start()
    assert again.stdout == url and "tracking it again" in again.stderr
    assert project.server_pid() == pid


@pytest.mark.jupyter_server_only('a jupyverse venv has no jupyter-lab to start by hand')
def test_a_stock_jupyter_lab_in_the_project_is_reported_and_not_stopped(project: Project):
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(project.root / ".jupyter_config"),
        "JUPYTER_DATA_DIR": str(project.root / ".jupyter_data"),
        "JUPYTER_RUNTIME_DIR": str(project.runtime_dir),
    }
    stock = subprocess.Popen(
        [str(project.root / ".jupyter_venv/bin/jupyter-lab"), "--no-browser", f"--port={port(52)}", "--allow-root"],
        cwd=project.root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: (project.runtime_dir / f"jpserver-{stock.pid}.json").exists(), timeout=60)
        assert_reported_and_left_alone(project, stock)
    finally:
        stock.terminate()
        stock.wait(timeout=30)


def test_a_server_dying_during_startup_fails_fast_with_its_log(project: Project, server: str):
    local = project.root / "scripts/app.local.sh"
    if server == "jupyverse":  # it reads no Jupyter config: a setting it refuses
        local.write_text("JUPYTER_EXTRA_ARGS=(--set jupyterlab.dev_mode=cert.pem)\n")
    else:
        config = project.root / ".jupyter_config"
        config.mkdir(exist_ok=True)
        (config / "jupyter_server_config.py").write_text("c.ServerApp.certfile = '/nonexistent/cert.pem'\n")
    try:
        started = time.monotonic()
        result = project.run("start", "--no-open")
    finally:
        local.unlink(missing_ok=True)
    assert result.returncode == 1
    assert time.monotonic() - started < 30
    assert "exited during startup" in result.stderr
    assert "Last lines of .logs/jupyter.log" in result.stderr
    assert "cert.pem" in result.stderr, "the log's own explanation is shown"
    assert not project.pid_file.exists()
    assert not list(project.runtime_dir.glob("jpserver-*")), "no runtime file of a server that never ran"


@pytest.mark.jupyter_server_only('it disables authentication in jupyter_server_config.py, which jupyverse does not read')
def test_authentication_disabled_by_config_is_refused(project: Project):
    config = project.root / ".jupyter_config"
    config.mkdir(exist_ok=True)
    (config / "jupyter_server_config.py").write_text(OPEN_TO_EVERYONE)
    result = project.run("start", "--no-open")
    assert result.returncode == 1
    assert "without a token" in result.stderr
    assert not project.pid_file.exists()
    assert not project.servers()

    # The terminal closes while start waits (before its check): the server stays, and
    # every later command sees that it answers strangers.
    starter = subprocess.Popen([str(project.app), "start", "--no-open"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(project.pid_file.exists, timeout=30, interval=0.01)
    starter.send_signal(signal.SIGHUP)
    starter.wait(timeout=30)
    server = project.server_pid()

    def answers_a_stranger() -> bool:
        try:
            return project.api("GET", "/api/status", token=None)[0] == 200
        except (OSError, ValueError, KeyError):  # no runtime file yet, or no answer
            return False

    wait_for(answers_a_stranger, timeout=60, interval=0.2)
    status = project.run("status")
    assert status.returncode == 4, status.output
    assert f"running (PID {server}), WITHOUT authentication" in status.stdout
    assert "answers without a token" in status.stderr
    for command in (["url"], ["start", "--no-open"]):
        refused = project.run(*command)
        assert refused.returncode == 1 and "answers without a token" in refused.stderr, (command, refused.output)
        assert "token=" not in refused.stdout
    doctor = project.run("doctor", "--offline")
    assert "FAIL  token auth on" in doctor.stdout
    assert project.run("stop").returncode == 0 and not pid_alive(server)


def test_a_background_server_survives_its_terminal_closing(project: Project):
    # The terminal's session: start runs as its leader, as under an interactive shell.
    starter = subprocess.Popen(
        [str(project.app), "start", "--no-open"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    starter.communicate(timeout=180)
    assert starter.returncode == 0
    server = project.server_pid()
    assert os.getsid(server) != starter.pid, "the server is in the terminal's session"
    # Closing the terminal hangs up its session; a stray Ctrl-C reaches the group too.
    for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
        try:
            os.killpg(starter.pid, sig)
        except ProcessLookupError:
            pass  # nothing is left in that group: the server runs in a session of its own
    # The scenario, not a wait for a condition: a server these signals reached would be
    # gone within this second; the server must still be there after it.
    time.sleep(1)
    assert pid_alive(server)
    assert project.api("GET", "/api/status")[0] == 200
    assert project.run("status").returncode == 0
    assert project.run("stop").returncode == 0


def test_the_lifecycle_works_without_setsid_flock_lsof_ss_or_curl(project: Project, tmp_path):
    """As on macOS or a minimal image: the script falls back where a tool is missing."""
    missing = {"setsid", "flock", "lsof", "ss", "curl", "xdg-open", "uv"}
    bare = tmp_path / "bin"
    bare.mkdir()
    for directory in ("/usr/local/bin", "/usr/bin", "/bin"):
        for tool in Path(directory).iterdir():
            if tool.name not in missing and not (bare / tool.name).exists():
                (bare / tool.name).symlink_to(tool)
    env = {"PATH": str(bare)}
    assert project.run("start", "--no-open", env=env).returncode == 0
    pid = project.server_pid()
    session = subprocess.run(["ps", "-o", "sid=", "-p", str(pid)], capture_output=True, text=True).stdout
    assert int(session) == pid, "the server runs in a session of its own (os.setsid fallback)"
    _, kernel = project.start_kernel()
    assert project.run("status", env=env).returncode == 0
    assert project.run("stop", env=env).returncode == 0
    assert not pid_alive(pid) and not pid_alive(kernel)


# --- foreground --------------------------------------------------------------------------


def read_line(stream, timeout: float) -> str:
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert box, f"no output within {timeout}s"
    return box[0]


def test_foreground_ctrl_c_stops_the_server_and_its_kernels(project: Project):
    # A terminal delivers Ctrl-C to the foreground process group: start one, send SIGINT to it.
    proc = subprocess.Popen(
        [str(project.app), "start", "--foreground", "--no-open"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        url = read_line(proc.stdout, timeout=120)
        assert url.startswith("http://127.0.0.1:")
        assert project.run("status").returncode == 0
        _, kernel_pid = project.start_kernel()
        server = project.server_pid()
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not project.pid_file.exists()
    assert not pid_alive(server) and not pid_alive(kernel_pid)
    assert not project.processes()


# --- paths -------------------------------------------------------------------------------


def test_a_path_with_spaces_brackets_and_symbols_reached_through_a_symlink(make_project, tmp_path):
    root = tmp_path / "my projects [2026] $HOME *" / "ünïcode 'q'"
    project = make_project("spaced", where=root, bootstrapped=False)
    result = project.run("start", "--no-open")  # bootstraps first: there is no venv yet
    assert result.returncode == 0, result.output
    assert ".jupyter_venv is not there yet: bootstrapping first" in result.stderr
    assert project.server_info()["root_dir"] == str(root / "notebooks")

    link = tmp_path / "link"
    link.symlink_to(root)
    via_link = Project(link)
    status = via_link.run("status", cwd=tmp_path)
    assert status.returncode == 0, status.output
    assert f"PID {project.server_pid()}" in status.stdout
    assert "orphans:   none" in status.stdout
    assert via_link.run("stop").returncode == 0
    assert not project.processes()


def test_a_restart_from_another_terminal_keeps_the_new_servers_pid_file(project: Project):
    foreground = subprocess.Popen(
        [str(project.app), "start", "--foreground", "--no-open"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        read_line(foreground.stdout, timeout=120)
        old = project.server_pid()
        assert project.run("restart", "--no-open").returncode == 0
        foreground.wait(timeout=60)  # its server is gone: the foreground command ends
        new = project.server_pid()
        assert new != old and pid_alive(new)
        assert project.run("status").returncode == 0
    finally:
        if foreground.poll() is None:
            foreground.kill()
