"""Fixtures: rendered projects, one bootstrapped project per session, and a helper
that drives a project's scripts/app.sh the way a user does in a terminal.

Everything is real: copier renders the template (pytest-copie), app.sh runs in bash,
JupyterLab and its kernels run for real. Each test leaves no process behind: the
`project` fixture stops the server after the test and fails it if anything of the
project still runs.

The end-to-end modules (SHELL_MODULES) run once per shell: the system's bash, then
bash 3.2 (macOS's) first on PATH; see `shell` below. The lifecycle and hostile suites
(SERVER_MODULES) also run against each server of the template's `server` question:
jupyter-server, then jupyverse; see `server` below.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from collections.abc import Iterator
from pathlib import Path

import pytest

TEMPLATE = Path(__file__).resolve().parent.parent
# Ports away from 8888 so the tests never meet a developer's own servers.
# JT_TEST_PORT_START moves the range, so that two test runs on one machine do not meet.
# Each pytest-xdist worker (gw0, gw1, ...) gets its own block of PORT_BLOCK ports: the
# range (the first 12) and, above it, ports tests need outside the range (`port`).
PORT_BLOCK = 200
XDIST_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
TEST_PORT_START = int(os.environ.get("JT_TEST_PORT_START", "18888")) + PORT_BLOCK * XDIST_WORKER
TEST_PORT_END = TEST_PORT_START + 11


def port(offset: int) -> int:
    """A port of this worker's block, OFFSET above TEST_PORT_START (12 to PORT_BLOCK - 1:
    outside the projects' range, for tests that need a port no project picks)."""
    assert 12 <= offset < PORT_BLOCK, offset
    return TEST_PORT_START + offset
TEST_PORTS = {"port_range_start": TEST_PORT_START, "port_range_end": TEST_PORT_END}


def pytest_configure(config: pytest.Config) -> None:
    # Hermetic: copier must not read the developer's settings file.
    settings = Path(config.rootpath) / ".pytest_cache" / "copier-settings.yml"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text("{}\n")
    os.environ["COPIER_SETTINGS_PATH"] = str(settings)
    # Python's default, whatever the machine says: each test venv caches the bytecode
    # of what it runs. The session's project is bootstrapped with the variable set.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    # app.sh registers every project it sees in ${XDG_STATE_HOME}/jupyter-template (the
    # machine view of status --all): the tests' projects go to a registry of their own.
    os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="jt-test-state-")
    config.addinivalue_line("markers", "bash32: runs app.sh under bash 3.2 (deselect with -m 'not bash32')")
    config.addinivalue_line("markers", "shells: run the test once per shell of JT_TEST_SHELLS (as SHELL_MODULES are)")
    config.addinivalue_line("markers", "jupyverse: runs against a server=jupyverse project (deselect with -m 'not jupyverse')")
    config.addinivalue_line(
        "markers", "jupyter_server_only(reason): asserts what only jupyter-server does; skipped with jupyverse, saying why"
    )
    selected_shells()  # a typo in JT_TEST_SHELLS is a usage error, not a silent skip


# --- the shells app.sh runs under ----------------------------------------------------------
# README promises bash 3.2 (macOS) as well as Linux's bash. The end-to-end modules run
# under the shells of JT_TEST_SHELLS (default "bash,bash-3.2"): "bash" is whatever bash PATH
# finds, "bash-3.2" puts a directory holding only a `bash` link to bash 3.2 first on PATH,
# so app.sh's `#!/usr/bin/env bash`, every Popen of it and every `bash -c` of a test run
# bash 3.2. Under both shells: test_cli.py, the tests of BASH32_TESTS (one or two per code
# path of app.sh) and tests marked `shells`; the others run under the first shell listed.
# Every test of these modules under both shells would add ~12 minutes to a suite of ~12 on 2
# cores (budget: 15); JT_TEST_SHELLS_ALL=1 does it (the macOS job of the GitHub workflow).
# One shell only: JT_TEST_SHELLS=bash (or bash-3.2: every test under bash 3.2), or
# -m "not bash32".
SHELLS = ("bash", "bash-3.2")
SHELL_MODULES = {"test_cli", "test_lifecycle", "test_hostile", "test_existing_projects", "test_promises"}
BASH32_TESTS = {
    "test_cli": "*",
    "test_lifecycle": {
        "test_start_serves_jupyterlab_on_a_free_port_with_the_pid_file_and_token",
        "test_the_default_kernel_is_the_projects_and_stop_takes_kernels_with_it",
        "test_logs_show_and_follow_the_server_log",
        "test_foreground_ctrl_c_stops_the_server_and_its_kernels",
        "test_a_killed_server_leaves_kernels_that_status_reports_and_stop_removes",
        "test_a_stock_jupyter_lab_in_the_project_is_reported_and_not_stopped",
        "test_a_busy_port_is_refused_by_name_and_skipped_by_auto_selection",
        "test_every_port_taken_names_the_range_and_the_way_out",
        "test_a_server_dying_during_startup_fails_fast_with_its_log",
        "test_stale_runtime_files_are_cleaned_on_status",
        "test_the_lifecycle_works_without_setsid_flock_lsof_ss_or_curl",
        "test_a_path_with_spaces_brackets_and_symbols_reached_through_a_symlink",
        "test_bootstrap_installs_the_projects_own_dependencies",
    },
    # Not the lock races: 240 commands, ~40 s under bash 3.2 (its /proc reading is ~4x slower).
    "test_hostile": {
        "test_a_read_only_directory_is_a_clear_error",
        "test_a_full_disk_is_a_clear_error",
        "test_the_pid_file_log_and_runtime_files_are_private",
    },
    "test_existing_projects": {
        "test_a_broken_local_config_is_a_clear_error_that_only_start_refuses",
        "test_app_local_sh_is_run_as_a_users_shell_file_and_never_pollutes_stdout",
        "test_bootstrap_never_clears_a_venv_it_did_not_make",
        "test_bootstrap_reads_dependencies_from_pyproject_toml",
    },
    "test_promises": {
        "test_numeric_settings_are_checked_before_anything_runs",
        "test_a_typo_in_the_settings_never_keeps_a_running_server_from_stopping",
        "test_app_local_sh_sets_the_start_timeout",
        "test_app_sh_through_a_relative_symlink_called_without_a_slash",
        "test_status_json_is_json_in_every_state_and_agrees_with_status",
        "test_status_json_is_json_whatever_the_pid_file_holds",
        "test_status_json_is_json_in_a_path_that_needs_escaping",
        "test_doctor_passes_the_kernel_of_a_project_whose_path_has_a_quote",
        "test_doctor_without_copier_skips_the_template_check",
        "test_without_ps_and_without_proc_app_sh_refuses_and_changes_nothing",
        "test_without_a_working_ps_the_running_server_is_still_seen_and_stopped",
        "test_the_token_stays_out_of_curls_command_line_when_bash_has_no_dev_tcp",
        "test_closing_the_terminal_while_start_waits_keeps_the_server_ctrl_c_stops_it",
    },
}
BASH32_BUILDER = TEMPLATE / "tests/tools/bash-3.2/build.sh"
# The bash-3.2 leg's directory while it runs: Project.run keeps it first on a PATH a test sets.
SHELL_BIN_DIR: Path | None = None

# --- the servers app.sh runs --------------------------------------------------------------
# The template's `server` question: jupyter-server (the default) or jupyverse (issue 17).
# Every test of SERVER_MODULES runs with jupyter-server; the tests of JUPYVERSE_TESTS (one
# or two per code path of app.sh where the servers differ: start, port and token, kernels
# and stop, a killed server's kernels, busy port, death at startup, stale runtime files,
# the PID file, orphans, Ctrl-C, odd paths, racing stop, private and read-only files) run
# with jupyverse too, against a second session project (`server`, `bootstrapped_project`),
# only under the first shell of JT_TEST_SHELLS: app.sh's shell code is the same for both
# servers, so bash 3.2 is proved by the jupyter-server leg (JT_TEST_SHELLS_ALL=1 runs them
# under every shell too). The subset adds ~2 minutes on 2 cores; JT_TEST_SERVERS_ALL=1
# runs every test with both servers. A test that asserts what only jupyter-server does
# (one of its flags, its config files, its `jupyter lab`) is marked
# `jupyter_server_only(reason)`, stays out of JUPYVERSE_TESTS, and skips with that
# reason under JT_TEST_SERVERS_ALL=1. The test IDs name the shell and the server
# (`[bash-jupyverse]`); -m "not jupyverse" leaves jupyverse out.
SERVER_MODULES = {"test_lifecycle", "test_hostile"}
JUPYVERSE_TESTS = {
    "test_lifecycle": {
        "test_bootstrap_registers_the_kernel_in_the_venv_exactly_as_the_spec_says",
        "test_start_serves_jupyterlab_on_a_free_port_with_the_pid_file_and_token",
        "test_the_default_kernel_is_the_projects_and_stop_takes_kernels_with_it",
        "test_logs_show_and_follow_the_server_log",
        "test_a_busy_port_is_refused_by_name_and_skipped_by_auto_selection",
        "test_a_server_dying_during_startup_fails_fast_with_its_log",
        "test_stale_runtime_files_are_cleaned_on_status",
        "test_a_reused_pid_in_the_pid_file_is_never_signalled",
        "test_a_killed_server_leaves_kernels_that_status_reports_and_stop_removes",
        "test_a_server_that_lost_its_pid_file_is_an_orphan_that_start_adopts",
        "test_foreground_ctrl_c_stops_the_server_and_its_kernels",
        "test_a_path_with_spaces_brackets_and_symbols_reached_through_a_symlink",
        # jupyverse works in the notebook folder: restarted with it deleted.
        "test_a_missing_notebook_folder_is_named_by_status_and_doctor_and_restart_makes_it",
    },
    "test_hostile": {
        "test_stop_racing_start_leaves_no_orphan",
        "test_a_read_only_directory_is_a_clear_error",
        "test_the_pid_file_log_and_runtime_files_are_private",
        "test_a_jupyter_lab_started_by_hand_in_the_project_is_an_orphan",
    },
}


def selected_shells() -> list[str]:
    names = [name.strip() for name in os.environ.get("JT_TEST_SHELLS", ",".join(SHELLS)).split(",") if name.strip()]
    if not names or not set(names) <= set(SHELLS):
        raise pytest.UsageError(f"JT_TEST_SHELLS={os.environ['JT_TEST_SHELLS']!r}: use a comma-separated subset of {','.join(SHELLS)}")
    return names


def runs_under_every_shell(module: str, name: str, definition: pytest.Item) -> bool:
    listed = BASH32_TESTS.get(module, ())
    return os.environ.get("JT_TEST_SHELLS_ALL") == "1" or listed == "*" or name in listed or bool(definition.get_closest_marker("shells"))


def runs_with_jupyverse(module: str, name: str) -> bool:
    return os.environ.get("JT_TEST_SERVERS_ALL") == "1" or name in JUPYVERSE_TESTS.get(module, ())


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    module = metafunc.module.__name__.rpartition(".")[2]
    name = metafunc.function.__name__
    if module in SERVER_MODULES:
        shells = selected_shells()
        every_shell = runs_under_every_shell(module, name, metafunc.definition)
        combos = [(shell, "jupyter-server") for shell in (shells if every_shell else shells[:1])]
        if runs_with_jupyverse(module, name):
            combos += [(shell, "jupyverse") for shell in (shells if os.environ.get("JT_TEST_SHELLS_ALL") == "1" else shells[:1])]
        params = [
            pytest.param(
                shell,
                server,
                id=f"{shell}-{server}",
                marks=[pytest.mark.bash32] * (shell == "bash-3.2") + [pytest.mark.jupyverse] * (server == "jupyverse"),
            )
            for shell, server in combos
        ]
        metafunc.parametrize(("shell", "server"), params, indirect=True, scope="session")
    elif module in SHELL_MODULES or metafunc.definition.get_closest_marker("shells"):
        shells = selected_shells()
        if not runs_under_every_shell(module, name, metafunc.definition):
            shells = shells[:1]
        params = [pytest.param(name, id=name, marks=[pytest.mark.bash32] if name == "bash-3.2" else []) for name in shells]
        metafunc.parametrize("shell", params, indirect=True, scope="session")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """BASH32_TESTS and JUPYVERSE_TESTS name tests that exist (a renamed test must be
    renamed there too), and JUPYVERSE_TESTS none marked jupyter_server_only."""
    modules = {item.module.__name__.rpartition(".")[2]: item.module for item in items if isinstance(item, pytest.Function)}
    for listing, tests in (("BASH32_TESTS", BASH32_TESTS), ("JUPYVERSE_TESTS", JUPYVERSE_TESTS)):
        missing = [
            f"{module}.{name}"
            for module, names in tests.items()
            if module in modules and names != "*"
            for name in sorted(names)
            if not hasattr(modules[module], name)
        ]
        if missing:
            raise pytest.UsageError(f"tests/conftest.py {listing} names tests that do not exist: {', '.join(missing)}")
    # A test that cannot apply to jupyverse is not in its subset.
    listed = [
        f"{module}.{name}"
        for module, names in JUPYVERSE_TESTS.items()
        if module in modules
        for name in sorted(names)
        if any(m.name == "jupyter_server_only" for m in getattr(getattr(modules[module], name, None), "pytestmark", []))
    ]
    if listed:
        raise pytest.UsageError(f"tests/conftest.py JUPYVERSE_TESTS names tests marked jupyter_server_only: {', '.join(listed)}")


@functools.cache
def build_bash32() -> tuple[str | None, str]:
    """(path of bash 3.2, "") or (None, why not): tests/tools/bash-3.2/build.sh, once a session
    (it caches the binary across sessions, so only the first session builds, ~1 minute)."""
    try:
        built = subprocess.run([str(BASH32_BUILDER)], capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, f"{BASH32_BUILDER.relative_to(TEMPLATE)}: {error}"
    if built.returncode != 0:
        return None, built.stderr.strip().replace("\n", "; ") or f"build.sh exited {built.returncode}"
    return built.stdout.strip(), ""


def bash32_binary() -> str:
    """The bash 3.2 binary, built on first use; the test skips, saying why, where it cannot be."""
    if "bash-3.2" not in selected_shells():
        pytest.skip(f"JT_TEST_SHELLS={os.environ.get('JT_TEST_SHELLS')} excludes bash-3.2")
    path, reason = build_bash32()
    if path is None:
        pytest.skip(f"NO BASH 3.2: the bash-3.2 tests skip, so macOS's shell is untested here: {reason}")
    return path


@pytest.fixture(scope="session")
def bash32() -> str:
    """Path of a bash 3.2 binary (skips where none can be built)."""
    return bash32_binary()


@pytest.fixture(scope="session", autouse=True)
def shell(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The shell app.sh runs under: "bash", or "bash-3.2" first on PATH for the bash-3.2 leg
    of the tests pytest_generate_tests runs under each shell. pytest groups the tests of
    each leg, so the switch happens once per leg; no server of a session project is left
    running across it."""
    global SHELL_BIN_DIR
    name = getattr(request, "param", "bash")
    saved = os.environ["PATH"]
    if name == "bash-3.2":
        bin_dir = tmp_path_factory.mktemp("bash-3.2-bin")
        (bin_dir / "bash").symlink_to(bash32_binary())
        os.environ["PATH"] = f"{bin_dir}{os.pathsep}{saved}"
        SHELL_BIN_DIR = bin_dir
    try:
        if name == "bash-3.2":
            found = subprocess.run(["bash", "-c", "echo $BASH_VERSION"], capture_output=True, text=True, check=True).stdout
            assert found.startswith("3.2."), f"bash on PATH is {found.strip()}, not 3.2"
        yield name
    finally:
        os.environ["PATH"] = saved
        SHELL_BIN_DIR = None
        for project in SESSION_PROJECTS:
            # At the session's end copie_session may have removed the project already.
            if project.app.exists():
                leave_nothing_behind(project)


@pytest.fixture(scope="session")
def server(request: pytest.FixtureRequest) -> str:
    """The server of the projects a test makes: the `server` answer, "jupyter-server" or
    "jupyverse" (pytest_generate_tests runs SERVER_MODULES' tests with each)."""
    return getattr(request, "param", "jupyter-server")


@pytest.fixture(autouse=True)
def _jupyter_server_only(request: pytest.FixtureRequest) -> None:
    marker = request.node.get_closest_marker("jupyter_server_only")
    if marker and "server" in request.fixturenames and request.getfixturevalue("server") == "jupyverse":
        pytest.skip(f"not with jupyverse: {marker.args[0]}")


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def process_table() -> list[tuple[int, int, str]]:
    """(pid, ppid, command line) of every live (non-zombie) process."""
    out = subprocess.run(
        ["ps", "-A", "-ww", "-o", "pid=", "-o", "ppid=", "-o", "stat=", "-o", "args="],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = []
    for line in out.splitlines():
        pid, ppid, stat, *args = line.split(None, 3)
        if not stat.startswith("Z"):
            rows.append((int(pid), int(ppid), args[0] if args else ""))
    return rows


# Runs one cell (argv 2) in the kernel of a connection file (argv 1), whose process is
# argv 3 when given;
# prints what the cell printed (both streams; an error as "ERROR name: value"). No
# heartbeat: a kernel still importing ipykernel when the first ping goes unanswered for
# a second is not dead. Its process is: a kernel that died is said so at once.
RUN_CELL = """
import os, sys, time
from jupyter_client import BlockingKernelClient
client = BlockingKernelClient()
client.load_connection_file(sys.argv[1])
client.start_channels(hb=False)
deadline = time.monotonic() + 90
while True:
    try:
        client.wait_for_ready(timeout=2)
        break
    except RuntimeError:
        try:
            if len(sys.argv) > 3:
                os.kill(int(sys.argv[3]), 0)
        except ProcessLookupError:
            sys.exit("the kernel died before it replied (see the server's log)")
        if time.monotonic() > deadline:
            raise
out = []
def keep(msg):
    if msg["msg_type"] == "stream":
        out.append(msg["content"]["text"])
    elif msg["msg_type"] == "error":
        out.append("ERROR " + msg["content"]["ename"] + ": " + msg["content"]["evalue"])
reply = client.execute_interactive(sys.argv[2], timeout=90, output_hook=keep)
client.stop_channels()
print("".join(out), end="")
sys.exit(reply["content"]["status"] != "ok")
"""


# A Jupyter config that turns authentication off whatever token the server has: an
# identity provider that lets everyone in (a token of '' no longer can: app.sh sets one).
OPEN_TO_EVERYONE = """
from jupyter_server.auth.identity import IdentityProvider, User


class Everyone(IdentityProvider):
    def get_user(self, handler):
        return User(username="anyone")


c.ServerApp.identity_provider_class = Everyone
"""


def pid_alive(pid: int) -> bool:
    return any(p == pid for p, _, _ in process_table())


@dataclass
class Project:
    """A rendered project and the commands a user runs in it."""

    root: Path

    @property
    def app(self) -> Path:
        return self.root / "scripts" / "app.sh"

    @property
    def server(self) -> str:
        """The server this project runs: app.sh's SERVER constant (its copier answer)."""
        for line in self.app.read_text().splitlines():
            if line.startswith("SERVER="):
                return line.partition("=")[2].strip("'\"")
        return "jupyter-server"

    @property
    def pid_file(self) -> Path:
        return self.root / ".logs" / "jupyter.pid"

    @property
    def runtime_dir(self) -> Path:
        return self.root / ".jupyter_runtime"

    def run(self, *args: str, timeout: float = 180, env: dict | None = None, cwd=None) -> Result:
        env = {**os.environ, **(env or {})}
        if SHELL_BIN_DIR and env.get("PATH", "").split(os.pathsep)[0] != str(SHELL_BIN_DIR):
            # A test's own PATH (tools removed, say) still runs app.sh under the leg's shell.
            env["PATH"] = os.pathsep.join(filter(None, [str(SHELL_BIN_DIR), env.get("PATH")]))
        proc = subprocess.run(
            [str(self.app), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd or self.root,
            env=env,
            stdin=subprocess.DEVNULL,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def start(self, *args: str, **kwargs) -> Result:
        result = self.run("start", "--no-open", *args, **kwargs)
        assert result.returncode == 0, result.output
        return result

    def server_pid(self) -> int:
        return int(self.pid_file.read_text().strip())

    def server_info(self, pid: int | None = None) -> dict:
        pid = pid or self.server_pid()
        return json.loads((self.runtime_dir / f"jpserver-{pid}.json").read_text())

    def auth_headers(self) -> dict:
        """The headers a logged-in frontend sends: the token (jupyter-server), or the
        session cookie jupyverse gives for it (it takes the token only as ?token=)."""
        info = self.server_info()
        if info.get("server") == "jupyverse":
            return {"Cookie": jupyverse_cookie(info["url"].rstrip("/"), info["token"])}
        return {"Authorization": f"token {info['token']}"}

    def api(self, method: str, path: str, body: dict | None = None, token: str | None = "auto"):
        """Calls the running server's REST API; returns (status, parsed JSON or None)."""
        import urllib.error
        import urllib.request

        info = self.server_info()
        url, headers = f"{info['url'].rstrip('/')}{path}", {"Content-Type": "application/json"}
        if token == "auto":
            headers.update(self.auth_headers())
        elif token and info.get("server") == "jupyverse":
            url += f"?token={token}"  # jupyverse takes no Authorization header
        elif token:
            headers["Authorization"] = f"token {token}"
        request = urllib.request.Request(
            url, method=method, data=None if body is None else json.dumps(body).encode(), headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                data = response.read()
                return response.status, json.loads(data) if data else None
        except urllib.error.HTTPError as error:
            return error.code, None

    def start_kernel(self) -> tuple[str, int]:
        """Starts a kernel over the REST API, as JupyterLab does; returns (id, pid)."""
        if self.server == "jupyverse":
            return self.start_jupyverse_kernel()
        status, kernel = self.api("POST", "/api/kernels", {})
        assert status == 201, status
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for pid, _, args in process_table():
                if f"kernel-{kernel['id']}.json" in args:
                    return kernel["id"], pid
            time.sleep(0.1)
        raise AssertionError(f"kernel {kernel['id']} has no process")

    def start_jupyverse_kernel(self) -> tuple[str, int]:
        """jupyverse starts kernels for sessions only (POST /api/kernels is 405), and
        names their connection files at random: the kernel is the server's new child."""
        server = self.server_pid()
        before = {pid for pid, ppid, _ in process_table() if ppid == server}
        name = f"kernel-{time.monotonic_ns()}.ipynb"
        body = {"kernel": {"name": self.kernel_name()}, "name": name, "path": name, "type": "notebook"}
        status, session = self.api("POST", "/api/sessions", body)
        assert status in (200, 201), status
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for pid, ppid, args in process_table():
                if ppid == server and pid not in before and " -f " in args:
                    return session["kernel"]["id"], pid
            time.sleep(0.1)
        raise AssertionError(f"kernel {session['kernel']['id']} has no process")

    def kernel_name(self) -> str:
        return next((self.root / ".venv/share/jupyter/kernels").iterdir()).name

    def connection_file(self, kernel_pid: int) -> Path:
        """The connection file a kernel was started with (its -f argument)."""
        args = dict((pid, args) for pid, _, args in process_table())[kernel_pid]
        path = args.split(" -f ", 1)[1]
        return Path(path[: path.index(".json") + len(".json")])

    def processes(self) -> list[tuple[int, str]]:
        """Live processes of this project: its venv's programs, its server, its kernels.

        Precise markers, so a project nested in this one, or a sibling whose name
        starts with this one's ("proj 2"), is never taken for it."""
        markers = [f"{self.root}/.venv/bin/", f"{self.root}/.jupyter_venv/bin/", f"{self.root}/notebooks", f"{self.root}/.jupyter_runtime/"]
        return [(pid, args) for pid, _, args in process_table() if any(m in args for m in markers)]

    def servers(self) -> list[int]:
        """PIDs of the Jupyter servers serving this project's notebook directory, however
        they were launched (app.sh runs `python -m jupyterlab`, users `jupyter lab`)."""
        marker = f"--notebook-dir={self.root}/notebooks"
        return [
            pid
            for pid, _, args in process_table()
            if ("jupyter" in args or " jupyverse " in args) and any(a == marker for a in args.split())
        ]

    def kill_everything(self) -> list[tuple[int, str]]:
        left = self.processes()
        for pid, _ in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return left


@functools.cache
def jupyverse_cookie(base: str, token: str) -> str:
    """jupyverse's session cookie for the token (one login per server and token)."""
    import urllib.request

    with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=30) as response:
        cookie = next(c.split(";", 1)[0] for c in response.headers.get_all("Set-Cookie") or [] if c.startswith("fastapiusersauth="))
    return cookie


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture(scope="session")
def template_repo(tmp_path_factory) -> Path:
    """The template as it is in the working tree, committed to a repository of its own.

    `copier update` needs the template version a project was rendered from to exist
    as a commit; a dirty working tree has none.
    """
    repo = tmp_path_factory.mktemp("template")
    files = git(TEMPLATE, "ls-files", "--cached", "--others", "--exclude-standard", "-z").split("\0")
    for name in filter(None, files):
        source = TEMPLATE / name
        if source.is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "template")
    return repo


def assert_reported_and_left_alone(project: Project, server: subprocess.Popen) -> None:
    """A Jupyter server app.sh did not start, in this project: status names it,
    start warns about it, stop leaves it running."""
    status = project.run("status")
    assert status.returncode == 4, status.output
    assert f"servers not tracked by the PID file: PID {server.pid}, not started by this app.sh" in status.stdout
    assert f"kill {server.pid}" in status.stdout and "clean up with: scripts/app.sh stop" not in status.stdout
    doctor = project.run("doctor", "--offline")
    assert f"not started by this app.sh, which leaves them: kill {server.pid}" in doctor.stdout, doctor.stdout
    started = project.run("start", "--no-open")
    assert started.returncode == 0, started.output
    assert f"another Jupyter server runs in this project, not started by app.sh: PID {server.pid}" in started.stderr
    stop = project.run("stop")
    assert f"not stopping PID {server.pid}" in stop.stderr
    assert server.poll() is None


def render(copie, **answers) -> Path:
    result = copie.copy(extra_answers={"project_name": "demo", **TEST_PORTS, **answers})
    assert result.exit_code == 0 and result.exception is None, result.exception
    return Path(result.project_dir)


def server_answers(server: str) -> dict:
    """The copier answer for SERVER; none for the default, as a user gives it."""
    return {} if server == "jupyter-server" else {"server": server}


@pytest.fixture
def rendered(copie, server: str) -> Project:
    """A freshly rendered project, never bootstrapped."""
    return Project(render(copie, **server_answers(server)))


def bootstrap(project: Project, env: dict | None = None) -> None:
    result = project.run("bootstrap", timeout=600, env=env)
    assert result.returncode == 0, result.output


# Session projects shared by both shells' legs: `shell` stops them when a leg ends.
SESSION_PROJECTS: list[Project] = []


def session_project(copie_session, server: str) -> Project:
    project = Project(render(copie_session, project_name="e2e-proj", display_name="E2E Proj", **server_answers(server)))
    # As in many container images: Python never caches bytecode itself, so bootstrap
    # must compile it, or every start recompiles JupyterLab's imports.
    bootstrap(project, env={"PYTHONDONTWRITEBYTECODE": "1"})
    SESSION_PROJECTS.append(project)
    return project


def module_project(copie_session, name: str, **answers) -> Iterator[Project]:
    """A project rendered and bootstrapped for one module's tests, checked clean after
    them: a module-scoped fixture does `yield from module_project(copie_session, ...)`."""
    project = Project(render(copie_session, project_name=name, **answers))
    bootstrap(project)
    yield project
    leave_nothing_behind(project)


@pytest.fixture(scope="session")
def jupyter_server_session_project(copie_session) -> Project:
    return session_project(copie_session, "jupyter-server")


@pytest.fixture(scope="session")
def jupyverse_session_project(copie_session) -> Project:
    return session_project(copie_session, "jupyverse")


@pytest.fixture
def bootstrapped_project(request: pytest.FixtureRequest, server: str) -> Project:
    """One rendered and bootstrapped project per server, shared by the session's tests
    (both shells': it is bootstrapped under the shell of the first test that needs it)."""
    return request.getfixturevalue(f"{server.replace('-', '_')}_session_project")


def leave_nothing_behind(project: Project) -> None:
    project.run("stop", timeout=60)
    left = project.kill_everything()
    assert not left, f"processes left behind after stop: {left}"


def reset_config(project: Project) -> None:
    """Drops any Jupyter config a test wrote, keeping the directory bootstrap made."""
    config = project.root / ".jupyter_config"
    shutil.rmtree(config, ignore_errors=True)
    config.mkdir()


@pytest.fixture
def project(bootstrapped_project: Project):
    """The session's bootstrapped project, stopped and checked clean after the test."""
    leave_nothing_behind(bootstrapped_project)
    reset_config(bootstrapped_project)
    yield bootstrapped_project
    leave_nothing_behind(bootstrapped_project)
    reset_config(bootstrapped_project)


@pytest.fixture
def make_project(copie, tmp_path, server: str):
    """Factory: render a project (optionally moved to `where`), bootstrapped or not,
    with the test's server unless `server=` says otherwise.

    Every project it makes is stopped and checked clean after the test.
    """
    made: list[Project] = []

    def make(name: str = "other", where: Path | None = None, bootstrapped: bool = True, **answers) -> Project:
        root = render(copie, project_name=name, **{**server_answers(server), **answers})
        if where is not None:
            where.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(root), str(where))
            root = where
        project = Project(root)
        made.append(project)
        if bootstrapped:
            bootstrap(project)
        return project

    yield make
    problems = []
    for project in made:
        if project.app.exists():
            project.run("stop", timeout=60)
        left = project.kill_everything()
        if left:
            problems.append(left)
    assert not problems, f"processes left behind after stop: {problems}"
