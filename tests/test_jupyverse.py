"""server=jupyverse (issue 17): app.sh keeps its promises with jupyverse as the server.

One project rendered with server=jupyverse goes through the whole lifecycle: bootstrap
installs the pinned jupyverse set and registers the project's kernel; start serves on a
free port of the range on 127.0.0.1 with token auth (the token passed on stdin, in no
process's command line) and writes app.sh's own runtime record; a kernel starts with its
connection file in the project's runtime directory and runs code; status, url, doctor
and status --json agree; stop takes the server and its kernel and leaves no file behind.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import TEST_PORT_END, TEST_PORT_START, Project, bootstrap, pid_alive, process_table, render

pytestmark = pytest.mark.slow


def get(url: str) -> int:
    class Keep(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args):
            return None

    try:
        with urllib.request.build_opener(Keep).open(url, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def post(url: str, body: dict) -> tuple[int, dict | None]:
    request = urllib.request.Request(url, method="POST", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, None


def test_jupyverse_bootstrap_start_kernel_status_doctor_stop(copie):
    project = Project(render(copie, server="jupyverse"))
    try:
        bootstrap(project)
        assert (project.root / ".jupyter_venv/bin/jupyverse").exists()
        assert (project.root / ".venv/share/jupyter/kernels/demo/kernel.json").exists()

        result = project.start()
        url = result.stdout.strip().splitlines()[-1]
        pid = project.server_pid()
        record = project.runtime_dir / f"jpserver-{pid}.json"
        assert stat.S_IMODE(record.stat().st_mode) == 0o600
        info = project.server_info(pid)
        token, base = info["token"], info["url"].rstrip("/")
        assert TEST_PORT_START <= info["port"] <= TEST_PORT_END
        assert base == f"http://127.0.0.1:{info['port']}"
        assert url == f"{base}/lab?token={token}"

        # Token auth on: the API answers with the token, refuses without it.
        assert get(f"{base}/api/status?token={token}") == 200
        assert get(f"{base}/api/status") in (401, 403)
        assert get(f"{base}/lab?token={token}") == 200

        # The server: the project's notebook directory is its working directory; the
        # token is in no process's command line.
        assert os.path.realpath(f"/proc/{pid}/cwd") == str(project.root / "notebooks")
        assert not [args for _, _, args in process_table() if token in args]

        # A kernel: the project's (the default), its connection file in the project's
        # runtime directory, and it runs code.
        status, session = post(
            f"{base}/api/sessions?token={token}",
            {"kernel": {"name": "demo"}, "name": "a.ipynb", "path": "a.ipynb", "type": "notebook"},
        )
        assert status in (200, 201), status
        deadline = time.monotonic() + 60
        kernel = None
        while time.monotonic() < deadline and kernel is None:
            kernel = next(
                ((p, args) for p, ppid, args in process_table() if ppid == pid and "ipykernel" in args),
                None,
            )
            time.sleep(0.2)
        assert kernel, "no kernel process"
        kernel_pid, args = kernel
        connection = args.split(" -f ", 1)[1].split()[0]
        assert connection.startswith(f"{project.runtime_dir}/kernel-"), args
        code = (
            "import sys; from jupyter_client import BlockingKernelClient; c = BlockingKernelClient(connection_file=sys.argv[1]);"
            "c.load_connection_file(); c.start_channels(); c.wait_for_ready(timeout=60);"
            "r = c.execute_interactive('print(6 * 7)', timeout=60, output_hook=lambda m: m['msg_type'] == 'stream' and print(m['content']['text'], end=''))"
        )
        ran = subprocess.run([str(project.root / ".jupyter_venv/bin/python"), "-c", code, connection], capture_output=True, text=True, timeout=120)
        assert ran.stdout.strip() == "42", ran.stdout + ran.stderr

        # status, url, status --json and doctor agree.
        status_result = project.run("status")
        assert status_result.returncode == 0, status_result.output
        assert f"running (PID {pid})" in status_result.stdout
        assert "jupyverse" in status_result.stdout
        assert project.run("url").stdout.strip() == url
        as_json = json.loads(project.run("status", "--json").stdout)
        assert as_json["server"] == "running" and as_json["pid"] == pid and as_json["url"] == url
        assert as_json["server_side_execution"] is True, "as status says: jupyverse runs cells on the server"
        doctor = project.run("doctor", "--offline")
        assert "PASS  server tracked by its PID file (spec 6)" in doctor.stdout, doctor.output
        assert "WARN  server: jupyverse" in doctor.stdout
        assert "FAIL  no orphan processes" not in doctor.stdout

        # The machine view sees it as this project's running server, with its kernel;
        # jupyverse is not asked for kernel states (a login per look), so stop --idle
        # leaves it, saying why.
        scope = {"APP_MACHINE_SCOPE": str(project.root)}
        machine = json.loads(project.run("status", "--all", "--json", env=scope).stdout)
        [entry] = machine["projects"]
        assert (entry["state"], entry["pid"], entry["port"], entry["kernels"]) == ("running", pid, info["port"], 1), entry
        assert machine["other_servers"] == []
        assert f"the Jupyter server of the project {project.root} (PID {pid})" in project.run("status", "--port", str(info["port"])).stdout
        idle = project.run("stop", "--idle", "0", env=scope)
        assert f"left:    {project.root}: its server does not say how long it has been idle" in idle.stdout, idle.output
        assert project.server_pid() == pid

        # stop: the server and its kernel go, and no runtime file, connection file or
        # state outlives it outside the project's isolated directories.
        stopped = project.run("stop", timeout=120)
        assert stopped.returncode == 0, stopped.output
        alive = {p for p, _, _ in process_table()}
        assert pid not in alive and kernel_pid not in alive
        assert not project.pid_file.exists()
        assert list(project.runtime_dir.iterdir()) == []
        assert not [p.name for p in (project.root / "notebooks").iterdir() if p.name.endswith(".db")]
        state = project.root / ".jupyter_data" / "jupyverse"
        assert (state / "jupyverse_users.db").exists() and (state / "fileid.db").exists()
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        assert project.run("status").returncode == 3
        assert not project.processes()
    finally:
        project.run("stop", timeout=60)
        project.kill_everything()


def test_jupyverse_killed_server_leaves_a_kernel_that_status_reports_and_stop_removes(copie):
    project = Project(render(copie, server="jupyverse"))
    try:
        bootstrap(project)
        project.start()
        pid = project.server_pid()
        info = project.server_info(pid)
        base, token = info["url"].rstrip("/"), info["token"]
        status, _ = post(f"{base}/api/sessions?token={token}", {"kernel": {"name": "demo"}, "name": "b.ipynb", "path": "b.ipynb", "type": "notebook"})
        assert status in (200, 201), status
        deadline = time.monotonic() + 60
        kernel = None
        while time.monotonic() < deadline and kernel is None:
            kernel = next((p for p, ppid, args in process_table() if ppid == pid and "ipykernel" in args), None)
            time.sleep(0.2)
        assert kernel
        os.kill(pid, 9)
        time.sleep(1)
        status_result = project.run("status")
        assert status_result.returncode == 4, status_result.output
        assert f"kernels without their server: PID {kernel}" in status_result.stdout
        stopped = project.run("stop", timeout=120)
        assert stopped.returncode == 0, stopped.output
        assert kernel not in {p for p, _, _ in process_table()}
        # The runtime record goes; the killed kernel's connection file stays until it is a
        # minute old (cleanup_stale_runtime's rule, the same as with jupyter-server).
        assert [p.name for p in project.runtime_dir.iterdir() if not p.name.startswith("kernel-")] == []
        assert project.run("status").returncode == 3
    finally:
        project.run("stop", timeout=60)
        project.kill_everything()


def test_an_idle_timeout_is_refused_with_jupyverse_which_has_none(copie):
    """jupyverse can neither cull idle kernels nor stop itself when idle: start refuses
    APP_IDLE_TIMEOUT (exit 2, before anything is made) and doctor fails it."""
    project = Project(render(copie, server="jupyverse"))
    before = sorted(p.name for p in project.root.iterdir())
    for args in (["start", "--no-open"], ["restart", "--no-open"]):
        refused = project.run(*args, env={"APP_IDLE_TIMEOUT": "30"})
        assert refused.returncode == 2, refused.output
        assert "APP_IDLE_TIMEOUT=30: jupyverse" in refused.stderr and "server=jupyter-server" in refused.stderr
    assert sorted(p.name for p in project.root.iterdir()) == before, "nothing made, nothing bootstrapped"
    doctor = project.run("doctor", "--offline", env={"APP_IDLE_TIMEOUT": "30"})
    assert any(line.startswith("FAIL  idle shutdown") for line in doctor.stdout.splitlines()), doctor.stdout
    assert project.run("status", env={"APP_IDLE_TIMEOUT": "30"}).returncode == 3, "other commands still work"


def installed(project: Project) -> set[str]:
    """The distributions in the server's venv (.jupyter_venv), by normalised name."""
    code = "from importlib import metadata; print('\\n'.join(d.metadata['Name'].lower().replace('_', '-') for d in metadata.distributions()))"
    listing = subprocess.run([str(project.root / ".jupyter_venv/bin/python"), "-c", code], capture_output=True, text=True, check=True)
    return set(listing.stdout.split())


def test_switching_servers_with_copier_update_removes_the_other_servers_packages(template_repo, tmp_path):
    from copier import run_copy, run_update

    from conftest import TEST_PORTS, git, leave_nothing_behind

    root = tmp_path / "switch"
    run_copy(str(template_repo), str(root), data={"project_name": "switch", **TEST_PORTS}, defaults=True, unsafe=True, quiet=True)
    project = Project(root)
    (root / "requirements.txt").write_text("iniconfig==2.1.0\n")  # the project's own: it stays
    (root / "notebooks/empty.ipynb").write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "rendered")
    bootstrap(project)
    with_jupyter_server = installed(project)
    assert {"jupyter-server", "jupyterlab"} <= with_jupyter_server and "iniconfig" not in with_jupyter_server
    iniconfig = [str(root / ".venv/bin/python"), "-c", "import iniconfig"]
    assert subprocess.run(iniconfig).returncode == 0, "the project's own, in its .venv"
    try:
        for server in ("jupyverse", "jupyter-server"):
            if server == "jupyverse":  # switched while JupyterLab runs
                project.start()
                old_pid = project.server_pid()
            run_update(str(root), data={"server": server}, defaults=True, overwrite=True, unsafe=True, quiet=True)
            git(root, "add", "-A")
            git(root, "commit", "-qm", f"server={server}")
            if server == "jupyverse":
                status = project.run("status")
                assert status.returncode == 0, status.output
                assert "jupyter:   .jupyter_venv made for jupyter-server; the server is now jupyverse" in status.stdout
                assert f"running (PID {old_pid}), still jupyter-server: switch it to jupyverse with scripts/app.sh restart" in status.stdout
                assert json.loads(project.run("status", "--json").stdout)["running_old_server"] == "jupyter-server"
                doctor = project.run("doctor", "--offline")
                assert "FAIL  server of this project" in doctor.stdout, doctor.stdout
                start = project.run("start", "--no-open")  # leaves the running server and its venv alone
                assert start.returncode == 0 and "it is still jupyter-server" in start.stderr, start.output
                assert (root / ".jupyter_venv/bin/jupyter-lab").exists() and project.server_pid() == old_pid
                run = project.run("run", "notebooks/empty.ipynb")
                assert run.returncode == 1 and "still jupyter-server" in run.stderr, run.output
                result = project.run("restart", "--no-open", timeout=600)  # stops it, bootstraps, starts jupyverse
                assert result.returncode == 0, result.output
                assert not pid_alive(old_pid)
                status = project.run("status")
                assert "still" not in status.stdout and "jupyter:   .jupyter_venv (jupyverse)" in status.stdout, status.output
                assert project.run("stop").returncode == 0
            else:
                result = project.run("bootstrap", timeout=600)
                assert result.returncode == 0, result.output
            assert f"the server is now {server}: removing" in result.stderr
            assert "damaged" not in result.stderr
            now = installed(project)
            if server == "jupyverse":
                assert {"jupyverse", "fps"} <= now
                assert subprocess.run(iniconfig).returncode == 0, "the project's .venv is not the server's"
                assert not now & {"jupyter-server", "jupyterlab", "jupyterlab-server", "jupyter-lsp", "notebook-shim"}
            else:
                assert now == with_jupyter_server, "back to jupyter-server: the venv a fresh bootstrap makes"
            url = project.start().stdout.strip().splitlines()[-1]
            assert url.startswith("http://127.0.0.1:")
            status = project.run("status")
            assert status.returncode == 0, status.output
            assert project.run("stop").returncode == 0
    finally:
        leave_nothing_behind(project)


@pytest.mark.parametrize(
    "forbidden", ["--set=auth.mode=noauth", "--set auth.mode=noauth", "--set=auth.directory=/tmp/elsewhere", "--disable=auth", "--host=0.0.0.0"]
)
def test_the_customisation_home_cannot_undo_jupyverse_guarantees_in_either_option_form(copie, forbidden):
    project = Project(render(copie, server="jupyverse"))
    local = project.root / "scripts/app.local.sh"
    local.write_text(local.read_text() + f"JUPYTER_EXTRA_ARGS+=({forbidden})\n")
    result = project.run("start", "--no-open")
    assert result.returncode == 1 and "JUPYTER_EXTRA_ARGS may not set" in result.stderr, result.output
    assert not project.pid_file.exists() and not (project.root / ".venv").exists() and not (project.root / ".jupyter_venv").exists()

