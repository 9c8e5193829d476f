"""End to end: `scripts/app.sh status --all` sees every project's Jupyter on this machine
(issue 16): projects from the registry each app.sh keeps, servers from a process scan,
kernel states and last activity from each server's API without counting as activity.

Other test sessions may run Jupyter servers on this machine at the same time: the
assertions look only at what lies under this test's own directories.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import TEST_PORT_END, Project, pid_alive
from test_lifecycle import hang_kernel, listening_socket, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.shells]  # bash and bash 3.2


def last_activity(project: Project) -> str:
    """The server's last activity, asked without counting as activity."""
    info = project.server_info()
    request = urllib.request.Request(
        f"{info['url'].rstrip('/')}/api/status?no_track_activity=1", headers={"Authorization": f"token {info['token']}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["last_activity"]


def busy_kernels(project: Project) -> int:
    """How many kernels the server itself counts busy (asked without counting as activity)."""
    info = project.server_info()
    request = urllib.request.Request(
        f"{info['url'].rstrip('/')}/api/kernels?no_track_activity=1", headers={"Authorization": f"token {info['token']}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return sum(1 for k in json.loads(response.read()) if k["execution_state"] == "busy")


def ours(entries: list[dict], *dirs: Path) -> list[dict]:
    """The entries under this test's directories (other sessions' servers left out)."""
    prefixes = tuple(str(d) + "/" for d in dirs)
    return [e for e in entries if ((e.get("root") or e.get("notebook_dir") or "") + "/").startswith(prefixes)]


def test_status_all_lists_every_project_and_every_other_server(make_project, tmp_path, monkeypatch):
    state = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    registry = state / "jupyter-template" / "projects"
    first = make_project("first", where=tmp_path / "first project")
    second = make_project("second", where=tmp_path / "second")
    stopped = make_project("stopped", where=tmp_path / "stopped", bootstrapped=False)
    gone = make_project("gone", where=tmp_path / "gone", bootstrapped=False)
    for project in (stopped, gone):
        assert project.run("status").returncode == 3
    assert len(list(registry.glob("*.json"))) == 4, "bootstrap and status register their project"
    first.start()
    second.start("--port", str(TEST_PORT_END))
    _, kernel_pid = first.start_kernel()
    hang_kernel(first, kernel_pid)  # busy, and it will outlive a killed server
    wait_for(lambda: busy_kernels(first) == 1)  # the server hears of it over IOPub, a moment later
    shutil.rmtree(gone.root)
    # A project that never registered (an older app.sh, a hand-written script): found by
    # the process scan.
    for entry in registry.glob("*.json"):
        if json.loads(entry.read_text())["root"] == str(second.root):
            entry.unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    stock = subprocess.Popen(
        [str(first.root / ".jupyter_venv/bin/jupyter-lab"), "--no-browser", f"--port={TEST_PORT_END - 1}", "--allow-root"],
        cwd=elsewhere,
        env={**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "stock-runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path / "stock-config")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: (tmp_path / "stock-runtime" / f"jpserver-{stock.pid}.json").exists(), timeout=60)
        before = last_activity(first)
        time.sleep(1.1)

        result = stopped.run("status", "--all", "--json")
        assert result.returncode == 0, result.output
        view = json.loads(result.stdout)
        projects = {Path(p["root"]): p for p in ours(view["projects"], tmp_path)}
        assert set(projects) == {first.root, second.root, stopped.root}, projects
        for project in (first, second):
            entry = projects[project.root]
            info = project.server_info()
            assert entry["managed"] is True
            assert entry["state"] == "running"
            assert entry["pid"] == project.server_pid()
            assert entry["port"] == info["port"]
            assert entry["url"] == f"{info['url'].rstrip('/')}/lab?token={info['token']}"
            assert entry["rss_kb"] > 10_000
            assert entry["uptime_seconds"] >= 0 and entry["idle_seconds"] >= 0
        assert projects[second.root]["port"] == TEST_PORT_END
        assert projects[first.root]["kernels"] == 1 and projects[first.root]["busy_kernels"] == 1
        assert projects[first.root]["rss_kb"] > projects[second.root]["rss_kb"], "the kernel's memory counts"
        assert projects[second.root]["kernels"] == 0
        assert projects[stopped.root]["state"] == "stopped" and projects[stopped.root]["port"] is None
        others = ours(view["other_servers"], tmp_path)
        assert [(o["pid"], o["managed"], o["port"]) for o in others] == [(stock.pid, False, TEST_PORT_END - 1)]

        registered = {json.loads(e.read_text())["root"] for e in registry.glob("*.json")}
        registered = {root for root in registered if root.startswith(f"{tmp_path}/")}
        assert registered == {str(first.root), str(second.root), str(stopped.root)}, "the gone project pruned, the scanned one added"

        human = first.run("status", "--all")
        assert human.returncode == 0, human.output
        lines = human.stdout.splitlines()
        assert lines[0].split()[:7] == ["STATE", "PORT", "KERNELS", "UPTIME", "IDLE", "MEMORY", "URL"]
        line = next(line for line in lines if line.endswith(str(first.root)))
        assert line.startswith("running") and "1 (1 busy)" in line and f"/lab " in line
        assert next(line for line in lines if line.endswith(str(stopped.root))).startswith("stopped")
        assert any(line.startswith("unmanaged") and str(elsewhere) in line and f"PID {stock.pid}," in line for line in lines)
        assert not any(str(gone.root) in line for line in lines)
        for project in (first, second):
            assert project.server_info()["token"] not in human.stdout, "no token in the human form"

        assert last_activity(first) == before, "looking is not activity"

        # status --port: who holds a port.
        held = stopped.run("status", "--port", str(TEST_PORT_END))
        assert held.returncode == 0, held.output
        assert f"the project {second.root} (PID {second.server_pid()})" in held.stdout
        assert f"{second.root}/scripts/app.sh stop" in held.stdout
        # The command it gives runs as printed, a space in the path included.
        held = stopped.run("status", "--port", str(first.server_info()["port"]))
        [hint] = [line.split("stop it with: ", 1)[1] for line in held.stdout.splitlines() if "stop it with: " in line]
        assert hint == f"'{first.root}/scripts/app.sh' stop", hint
        version = subprocess.run(["bash", "-c", hint.removesuffix(" stop") + " --version"], capture_output=True, text=True)
        assert version.returncode == 0 and "jupyter-template" in version.stdout, version.stderr
        held = stopped.run("status", "--port", str(TEST_PORT_END - 1))
        assert f"not managed by an app.sh (PID {stock.pid}, in {elsewhere})" in held.stdout, held.output
        with listening_socket(TEST_PORT_END - 2):
            held = stopped.run("status", "--port", str(TEST_PORT_END - 2))
        assert held.returncode == 0 and f"PID {os.getpid()}:" in held.stdout, held.output
        free = stopped.run("status", "--port", str(TEST_PORT_END - 3))
        assert free.returncode == 3 and "free" in free.stdout, free.output

        # stop --idle: the idle server goes through its own app.sh, the busy one stays.
        scope = {"APP_MACHINE_SCOPE": str(tmp_path)}  # never other sessions' servers
        idle = stopped.run("stop", "--idle", "0", env=scope)
        assert idle.returncode == 0, idle.output
        assert f"stopped: {second.root}" in idle.stdout
        assert f"left:    {first.root}: 1 busy kernel(s)" in idle.stdout
        assert f"left:    PID {stock.pid} ({elsewhere}): a Jupyter server not managed by an app.sh" in idle.stdout
        assert not second.servers() and not second.pid_file.exists()
        assert pid_alive(first.server_pid()) and stock.poll() is None

        # A killed server with its kernel left: dead, with the way out.
        server = first.server_pid()
        os.kill(server, 9)
        wait_for(lambda: not pid_alive(server), timeout=60)
        view = json.loads(second.run("status", "--all", "--json").stdout)
        entry = {Path(p["root"]): p for p in ours(view["projects"], tmp_path)}[first.root]
        assert entry["state"] == "dead" and entry["leftover_kernels"] == [kernel_pid], entry
        assert f"run: '{first.root}/scripts/app.sh' stop" in second.run("status", "--all").stdout

        # stop --all: the dead server's kernel goes through its project's own stop; the
        # server no app.sh manages is left, and said so.
        everything = second.run("stop", "--all", env=scope)
        assert everything.returncode == 0, everything.output
        assert f"stopped: {first.root}" in everything.stdout
        assert f"left:    PID {stock.pid} (" in everything.stdout
        assert not pid_alive(kernel_pid) and stock.poll() is None
        assert "nothing running" in second.run("stop", "--all", env={"APP_MACHINE_SCOPE": str(first.root)}).stdout
    finally:
        stock.terminate()
        stock.wait(timeout=30)


def test_projects_whose_server_keeps_its_pid_in_run_are_listed_and_stopped_by_their_own_app_sh(
    project, make_project, tmp_path, monkeypatch
):
    """Spec 4's other PID file, .run/jupyter.pid, written by a hand-written script: in a
    project adopted by the template since (its scripts/app.sh stops that server), and in
    one with no scripts/app.sh at all (left running, and said why and how to stop it).
    status --all exits 0 while a listed server runs, 3 when none does."""
    from test_existing_projects import LEGACY_APP_SH, LEGACY_PORT

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    scope = {"APP_MACHINE_SCOPE": str(tmp_path)}  # never other sessions' servers
    adopted = make_project("adopted", where=tmp_path / "adopted", bootstrapped=False)
    handmade = tmp_path / "hand made"
    (handmade / "notebooks").mkdir(parents=True)
    none = adopted.run("status", "--all", env=scope)
    assert none.returncode == 3, none.output
    jupyter = str(project.root / ".jupyter_venv/bin/jupyter")
    servers = {}
    for root, script, port in ((adopted.root, "app.sh.pre-template", TEST_PORT_END - 4), (handmade, "start-jupyter.sh", TEST_PORT_END - 5)):
        path = root / "scripts" / script
        path.parent.mkdir(exist_ok=True)
        path.write_text(LEGACY_APP_SH.replace(f"--port={LEGACY_PORT}", f"--port={port}"))
        path.chmod(0o755)
        subprocess.run([str(path)], env={**os.environ, "JUPYTER": jupyter}, check=True)
        servers[root] = (int((root / ".run/jupyter.pid").read_text()), port)
    try:
        for root, (pid, _) in servers.items():
            wait_for(lambda: (root / f".jupyter_runtime/jpserver-{pid}.json").exists(), timeout=60)

        listed = adopted.run("status", "--all", "--json", env=scope)
        assert listed.returncode == 0, listed.output
        projects = {Path(p["root"]): p for p in json.loads(listed.stdout)["projects"]}
        assert set(projects) == {adopted.root, handmade}, projects
        for root, (pid, port) in servers.items():
            entry = projects[root]
            assert (entry["state"], entry["managed"], entry["pid"], entry["port"]) == ("running", True, pid, port), entry
            assert entry["pid_file"] == ".run/jupyter.pid" and entry["kernels"] == 0, entry

        stopped = adopted.run("stop", "--all", env=scope)
        assert stopped.returncode == 0, stopped.output
        assert f"stopped: {adopted.root}" in stopped.stdout
        adopted_pid, handmade_pid = servers[adopted.root][0], servers[handmade][0]
        assert f"left:    {handmade}: running, but no executable scripts/app.sh" in stopped.stdout, stopped.stdout
        assert f"kill {handmade_pid}" in stopped.stdout
        assert not pid_alive(adopted_pid) and not (adopted.root / ".run/jupyter.pid").exists()
        assert pid_alive(handmade_pid), "never a server no app.sh manages"
    finally:
        for pid, _ in servers.values():
            try:
                os.kill(pid, 15)
            except ProcessLookupError:
                pass
    wait_for(lambda: not pid_alive(handmade_pid), timeout=30)
    after = adopted.run("status", "--all", env=scope)
    assert after.returncode == 3, after.output
    assert not any(line.startswith("running") for line in after.stdout.splitlines()), after.stdout


def test_junk_in_one_project_never_blocks_the_machine_view(rendered: Project, tmp_path, monkeypatch):
    """A FIFO where a project keeps its PID file and log (reading one blocks forever):
    status --all, --port and stop --idle still answer, for every project."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    logs = rendered.root / ".logs"
    logs.mkdir(exist_ok=True)
    assert rendered.run("status").returncode == 3  # registered
    os.mkfifo(logs / "jupyter.pid")
    os.mkfifo(logs / "jupyter.log")
    scope = {"APP_MACHINE_SCOPE": str(rendered.root)}
    for args in (["status", "--all"], ["status", "--port", str(TEST_PORT_END)], ["stop", "--idle", "1000"]):
        result = rendered.run(*args, timeout=30, env=scope)
        assert result.returncode in (0, 3), result.output
    assert str(rendered.root) in rendered.run("status", "--all", timeout=30, env=scope).stdout
