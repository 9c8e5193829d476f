"""Benchmark: what app.sh costs on top of JupyterLab itself, and how fast bootstrap is.

Renders a project with copier into a temporary directory, then measures side by side,
with repetitions (min / median / max):

- `app.sh start` until the URL is printed, against a bare `jupyter lab --no-browser`
  (same venv, same isolation variables) until `/api` answers;
- the same against a user's own venv (`uv pip install` of the same requirements, so
  with rfc3987-syntax), as a ratio (issue 14: <= 0.55), and again for a project with
  server-side execution (<= 0.6);
- `app.sh stop`, idle and with 3 busy kernels, against SIGTERM to a bare server until
  its port closes; and the processes left afterwards;
- `app.sh status` with 20 stale runtime files;
- `app.sh status --all` with 20 registered projects, 2 of them running (a private
  XDG_STATE_HOME; APP_MACHINE_SCOPE leaves out other servers of the machine);
- `app.sh stop` idle against the bare server's SIGTERM-to-exit as a ratio (<= 1.0);
- `app.sh bootstrap` cold (empty uv cache, no venv), warm (cache, no venv) also as a
  ratio to `uv venv` + `uv pip install` of the same requirements (<= 1.2), warm with
  PYTHONDONTWRITEBYTECODE=1 (bytecode compiled at bootstrap), no-op,
  cold without uv on PATH, and `python -m venv` + `pip install` as the baseline;
- optionally (--suite) the test suite, whole and the fast subset;
- the two servers side by side (issue 17; `--only servers` runs just these rows): a
  project with server=jupyter-server and one with server=jupyverse, each: `app.sh start`
  until the URL is printed, `app.sh stop`, the idle server's RSS after start, the
  size of its .venv and .jupyter_venv (du).

Run from the repository root:  uv run python bench/bench.py [--reps N] [--suite] [--write-readme]
                               [--port PORT] [--only SECTION,...]
Not a test: it prints a table (and with --write-readme puts it in README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The bare server's port; the projects' app.sh use the range after it (PORT + 3 to
# PORT + 12). --port (or JT_BENCH_PORT) moves them, so that a benchmark never meets
# another one's servers, or a test run's (tests/conftest.py: JT_TEST_PORT_START).
PORT = int(os.environ.get("JT_BENCH_PORT", "18777"))
SECTIONS = ("cold", "warm", "start", "user", "sse", "busy", "status", "status-all", "servers")


def port_range() -> dict[str, int]:
    return {"port_range_start": PORT + 3, "port_range_end": PORT + 12}


BUSY_KERNEL = """
import sys, time
from jupyter_client import BlockingKernelClient
client = BlockingKernelClient()
client.load_connection_file(sys.argv[1])
client.start_channels()
client.wait_for_ready(timeout=30)  # else iopub may join after "busy" was sent
client.execute("import time\\nwhile True: time.sleep(0.01)")
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    msg = client.get_iopub_msg(timeout=20)
    if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "busy":
        break
client.stop_channels()
"""


class Project:
    def __init__(self, root: Path):
        self.root = root
        self.app = root / "scripts/app.sh"
        self.env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(root / ".jupyter_config"),
            "JUPYTER_DATA_DIR": str(root / ".jupyter_data"),
            "JUPYTER_RUNTIME_DIR": str(root / ".jupyter_runtime"),
            "IPYTHONDIR": str(root / ".ipython"),
            "MPLCONFIGDIR": str(root / ".cache/matplotlib"),
        }

    def run(self, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.app), *args],
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
            check=check,
            stdin=subprocess.DEVNULL,
        )

    def timed(self, *args: str, env: dict | None = None) -> float:
        started = time.perf_counter()
        self.run(*args, env=env)
        return time.perf_counter() - started

    def leftovers(self) -> list[int]:
        """PIDs of this project's live processes (server, kernels)."""
        out = subprocess.run(["ps", "-A", "-ww", "-o", "pid=", "-o", "stat=", "-o", "args="], capture_output=True, text=True).stdout
        markers = (f"{self.root}/.venv/bin/", f"{self.root}/.jupyter_venv/bin/", f"{self.root}/.jupyter_runtime/")
        pids = []
        for line in out.splitlines():
            pid, state, args = (line.split(None, 2) + [""])[:3]
            if not state.startswith("Z") and any(m in args for m in markers):
                pids.append(int(pid))
        return pids

    def token_url(self) -> tuple[str, str]:
        pid = (self.root / ".logs/jupyter.pid").read_text().strip()
        info = json.loads((self.root / f".jupyter_runtime/jpserver-{pid}.json").read_text())
        return info["url"].rstrip("/"), info["token"]


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except Exception:
        return False


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def start_busy_kernels(project: Project, url: str, token: str, count: int = 3) -> None:
    for _ in range(count):
        request = urllib.request.Request(
            f"{url}/api/kernels", method="POST", data=b"{}", headers={"Authorization": f"token {token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            kernel = json.loads(response.read())
        connection = project.root / f".jupyter_runtime/kernel-{kernel['id']}.json"
        deadline = time.monotonic() + 30
        while not connection.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        subprocess.run([str(project.root / ".jupyter_venv/bin/python"), "-c", BUSY_KERNEL, str(connection)], check=True)


# Seconds from asking the server for a kernel (POST /api/kernels) to the first output
# of `print` in it, as a frontend sees it; run with a Python that has jupyter_client.
FIRST_RESULT = """
import json, sys, time, urllib.request
from jupyter_client import BlockingKernelClient
url, token, runtime, name = sys.argv[1:5]
headers = {"Authorization": "token " + token, "Content-Type": "application/json"}
started = time.perf_counter()
request = urllib.request.Request(url + "/api/kernels", data=json.dumps({"name": name}).encode(), headers=headers, method="POST")
kernel = json.loads(urllib.request.urlopen(request, timeout=60).read())
client = BlockingKernelClient(connection_file=runtime + "/kernel-" + kernel["id"] + ".json")
client.load_connection_file()
client.start_channels()
client.wait_for_ready(timeout=60)
seen = []
client.execute_interactive("print('ready')", timeout=60, output_hook=lambda m: seen.append(m["msg_type"] == "stream"))
elapsed = time.perf_counter() - started
assert any(seen), "no output"
urllib.request.urlopen(urllib.request.Request(url + "/api/kernels/" + kernel["id"], headers=headers, method="DELETE"), timeout=60)
print(elapsed)
"""


def first_result(python: Path, url: str, token: str, project: Project, name: str) -> float:
    out = subprocess.run(
        [str(python), "-c", FIRST_RESULT, url, token, str(project.root / ".jupyter_runtime"), name],
        capture_output=True, text=True, check=True, env=project.env, timeout=120,
    ).stdout
    return float(out.strip().splitlines()[-1])


def side_by_side_first_result(project: Project, user: Path, reps: int, log) -> tuple[list[float], list[float]]:
    """A new kernel's first result: app.sh's server and kernel (the project's .venv with
    ipykernel from .jupyter_venv/kernel) against a bare server of a user's venv and its
    own ipykernel, one venv for both, as the earlier layout had it."""
    project.run("start", "--no-open")
    url, token = project.token_url()
    bare = bare_start(project, user)[1]
    bare_url, bare_tok = f"http://127.0.0.1:{PORT}", bare_token(project, bare)
    ours, theirs = [], []
    try:
        for run in range(reps + 1):  # the first of each caches bytecode: not measured
            log(f"kernel start to first result: round {run} of {reps}")
            pair = (
                first_result(project.root / ".jupyter_venv/bin/python", url, token, project, "bench"),
                first_result(user / "bin/python", bare_url, bare_tok, project, "python3"),
            )
            if run:
                ours.append(pair[0])
                theirs.append(pair[1])
    finally:
        bare_stop(bare)
        project.run("stop")
    return ours, theirs


def bare_server(project: Project, venv: Path | None = None) -> subprocess.Popen:
    venv = venv or project.root / ".jupyter_venv"
    args = [str(venv / "bin/jupyter-lab"), "--no-browser", "--ip=127.0.0.1", f"--port={PORT}"]
    if os.geteuid() == 0:
        args.append("--allow-root")
    return subprocess.Popen(
        args,
        cwd=project.root / "notebooks",
        env=project.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def bare_start(project: Project, venv: Path | None = None) -> tuple[float, subprocess.Popen]:
    started = time.perf_counter()
    server = bare_server(project, venv)
    while not http_ok(f"http://127.0.0.1:{PORT}/api"):
        if server.poll() is not None:
            raise RuntimeError("the bare server exited")
        time.sleep(0.01)
    return time.perf_counter() - started, server


def bare_stop(server: subprocess.Popen) -> float:
    started = time.perf_counter()
    server.send_signal(signal.SIGTERM)
    while port_open(PORT) or server.poll() is None:
        time.sleep(0.01)
    return time.perf_counter() - started


def bare_token(project: Project, server: subprocess.Popen) -> str:
    info = json.loads((project.root / f".jupyter_runtime/jpserver-{server.pid}.json").read_text())
    return info["token"]


def render(where: Path, name: str, **answers) -> Project:
    from copier import run_copy

    # HEAD: the working tree, not the latest release tag copier would pick by default.
    data = {"project_name": name, **port_range(), **answers}
    run_copy(str(REPO), str(where), data=data, defaults=True, unsafe=True, quiet=True, vcs_ref="HEAD")
    return Project(where)


def requirements(project: Project) -> list[str]:
    """The Jupyter requirements bootstrap installs (the server's, then the kernel's), from
    its "installing ... into" lines: what a user installs into one venv without it."""
    remove_venvs(project)
    output = project.run("bootstrap").stderr
    lines = [line for line in output.splitlines() if line.startswith("app.sh: installing ") and "==" in line]
    return [word for line in lines for word in line.removeprefix("app.sh: installing ").split() if "==" in word]


def remove_venvs(project: Project) -> None:
    """No environment left: the server's, the project's."""
    for name in (".venv", ".jupyter_venv"):
        shutil.rmtree(project.root / name, ignore_errors=True)


def user_venv(project: Project, venv: Path, reqs: list[str]) -> float:
    """What a user gets without the template: a new venv, `uv pip install` of the same
    requirements (so with rfc3987-syntax). Returns the seconds it took."""
    shutil.rmtree(venv, ignore_errors=True)
    started = time.perf_counter()
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    subprocess.run(["uv", "venv", "--quiet", "--python", str(project.root / ".venv/bin/python"), str(venv)], check=True, **quiet)
    subprocess.run(["uv", "pip", "install", "--quiet", "--python", str(venv / "bin/python"), *reqs], check=True, **quiet)
    return time.perf_counter() - started


def side_by_side_start(project: Project, venv: Path, reps: int, log) -> tuple[list[float], list[float], list[float], list[float]]:
    """app.sh start/stop against a bare server of `venv`, alternating the order per round."""
    for warm_up in ("app", "bare"):  # the first start caches bytecode: not measured
        if warm_up == "app":
            project.run("start", "--no-open")
            project.run("stop")
        else:
            bare_stop(bare_start(project, venv)[1])
    app_start, bare_starts, app_stop, bare_stops = [], [], [], []
    for rep in range(reps):
        log(f"start/stop against {venv.name}: round {rep + 1} of {reps}")
        for side in ("app", "bare") if rep % 2 == 0 else ("bare", "app"):
            if side == "app":
                app_start.append(project.timed("start", "--no-open"))
                app_stop.append(project.timed("stop"))
            else:
                seconds, server = bare_start(project, venv)
                bare_starts.append(seconds)
                bare_stops.append(bare_stop(server))
    return app_start, bare_starts, app_stop, bare_stops


def ratio_row(label: str, app: list[float], base: list[float], limit: float) -> tuple[str, str, str, str, str]:
    ratio = statistics.median(app) / statistics.median(base)
    return (label, fmt(app), fmt(base), f"ratio ≤ {limit}", f"{'ok' if ratio <= limit else 'MISSED'}: ratio {ratio:.2f}")


def summary(samples: list[float]) -> tuple[float, float, float]:
    return min(samples), statistics.median(samples), max(samples)


def fmt(samples: list[float]) -> str:
    low, mid, high = summary(samples)
    unit, scale = ("ms", 1000) if high < 1 else ("s", 1)
    return f"{low * scale:.{0 if scale == 1000 else 2}f} / {mid * scale:.{0 if scale == 1000 else 2}f} / {high * scale:.{0 if scale == 1000 else 2}f} {unit}"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, uv {subprocess.run(['uv', '--version'], capture_output=True, text=True).stdout.split()[1]}, "
        f"{time.strftime('%Y-%m-%d')}"
    )


def main() -> int:
    global PORT
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5, help="repetitions of start/stop (default 5)")
    parser.add_argument("--suite", action="store_true", help="also time the test suite (~4 min)")
    parser.add_argument("--no-pip-baseline", action="store_true", help="skip the ~40 s pip baseline")
    parser.add_argument("--write-readme", action="store_true", help="put the table in README.md")
    parser.add_argument(
        "--port", type=int, default=PORT, help=f"the bare server's port; app.sh uses the next 3 to 12 (default {PORT}, env JT_BENCH_PORT)"
    )
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run, of {','.join(SECTIONS)} (default: all; --write-readme needs all)",
    )
    options = parser.parse_args()
    only = set(filter(None, options.only.split(",")))
    if only - set(SECTIONS):
        parser.error(f"--only: unknown section(s) {','.join(sorted(only - set(SECTIONS)))}")
    if options.write_readme and only != set(SECTIONS):
        parser.error("--write-readme needs every section (no --only)")
    PORT = options.port
    # Python's default: it caches bytecode on first import. The one row that sets
    # PYTHONDONTWRITEBYTECODE (as container images do) says so.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ.setdefault("COPIER_SETTINGS_PATH", str(Path(tempfile.mkdtemp()) / "settings.yml"))
    Path(os.environ["COPIER_SETTINGS_PATH"]).write_text("{}\n")

    rows: list[tuple[str, str, str, str, str]] = []  # measure, app.sh, baseline, target, verdict
    work = Path(tempfile.mkdtemp(prefix="jt-bench-"))
    log = lambda text: print(f"bench: {text}", file=sys.stderr, flush=True)  # noqa: E731
    try:
        project = render(work / "bench", "bench")

        # --- bootstrap ------------------------------------------------------------
        cold, cold_no_uv, pip_baseline = [], [], []
        for _ in range(2 if "cold" in only else 0):
            log("bootstrap: cold (empty uv cache, no venv)")
            remove_venvs(project)
            cache = Path(tempfile.mkdtemp(prefix="jt-uv-cache-"))
            cold.append(project.timed("bootstrap", env={"UV_CACHE_DIR": str(cache)}))
            shutil.rmtree(cache, ignore_errors=True)
        no_uv_path = os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep) if not (Path(d) / "uv").exists())
        for _ in range(2 if "cold" in only else 0):
            log("bootstrap: cold without uv on PATH (venv + pip installs uv, then uv)")
            remove_venvs(project)
            cache = Path(tempfile.mkdtemp(prefix="jt-uv-cache-"))
            cold_no_uv.append(
                project.timed("bootstrap", env={"UV_CACHE_DIR": str(cache), "PATH": no_uv_path, "PIP_NO_CACHE_DIR": "1"})
            )
            shutil.rmtree(cache, ignore_errors=True)
        reqs = requirements(project)  # also the venv the sections below start from
        warm, uv_alone, warm_compiling, noop = [], [], [], []
        for rep in range(max(3, options.reps) if "warm" in only else 0):
            log(f"bootstrap: warm (uv cache, no venv), against uv venv + uv pip install of the same requirements: round {rep + 1}")
            for side in ("app", "uv") if rep % 2 == 0 else ("uv", "app"):
                if side == "app":
                    remove_venvs(project)
                    warm.append(project.timed("bootstrap"))
                else:
                    uv_alone.append(user_venv(project, work / "user-venv", reqs))
        for _ in range(2 if "warm" in only else 0):
            log("bootstrap: warm, with PYTHONDONTWRITEBYTECODE=1 (compiles bytecode)")
            remove_venvs(project)
            warm_compiling.append(project.timed("bootstrap", env={"PYTHONDONTWRITEBYTECODE": "1"}))
        for _ in range(10 if "warm" in only else 0):
            noop.append(project.timed("bootstrap"))
        if "cold" in only and not options.no_pip_baseline:
            log("baseline: python -m venv + pip install jupyterlab ipykernel (~40 s)")
            venv = work / "pip-venv"
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run(
                [str(venv / "bin/python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", "jupyterlab==4.6.6", "ipykernel==7.4.0"],
                check=True,
            )
            pip_baseline.append(time.perf_counter() - started)
        baseline = fmt(pip_baseline) if pip_baseline else "(skipped)"
        if cold:
            rows += [
                ("bootstrap, cold: empty uv cache, no venv", fmt(cold), baseline, "as fast as the network allows", "ok"),
                ("bootstrap, cold without uv on PATH", fmt(cold_no_uv), baseline, "as fast as the network allows", "ok"),
            ]
        if warm:
            rows += [
                ("bootstrap, warm: uv cache, no venv", fmt(warm), "", "≤ 3 s", "ok" if statistics.median(warm) <= 3 else "MISSED"),
                ratio_row("bootstrap, warm / uv venv + uv pip install of the same requirements", warm, uv_alone, 1.2),
                (
                    "bootstrap, warm, PYTHONDONTWRITEBYTECODE=1",
                    fmt(warm_compiling),
                    fmt(warm),
                    "(compiles bytecode once)",
                    f"+{statistics.median(warm_compiling) - statistics.median(warm):.1f} s, so no start recompiles",
                ),
                ("bootstrap, no-op: nothing changed", fmt(noop), "", "≤ 0.3 s", "ok" if statistics.median(noop) <= 0.3 else "MISSED"),
            ]

        # --- start / stop ------------------------------------------------------------
        project.run("bootstrap")
        if only & {"start", "user", "busy"}:
            project.run("start", "--no-open")  # the first start caches bytecode: not measured
            project.run("stop")
        if "start" in only:
            # The bare server of the project's own venv.
            app_start, bare_starts, app_stop, bare_stops = side_by_side_start(project, project.root / ".jupyter_venv", options.reps, log)
            ratio = statistics.median(app_start) / statistics.median(bare_starts)
            overhead = statistics.median(app_start) - statistics.median(bare_starts)
            rows.append(
                (
                    "start until the URL is printed",
                    fmt(app_start),
                    fmt(bare_starts),
                    "ratio ≤ 1.03 (overhead < 0.2 s)",
                    f"{'ok' if ratio <= 1.03 or overhead < 0.2 else 'MISSED'}: ratio {ratio:.3f}, {overhead * 1000:+.0f} ms",
                )
            )
            rows.append(("stop, idle", fmt(app_stop), fmt(bare_stops), "≤ 1 s, nothing left", verdict_stop(app_stop, project)))
            rows.append(ratio_row("stop, idle / bare SIGTERM-to-exit, same venv", app_stop, bare_stops, 1.0))

        if "user" in only:
            # Against what a user gets without the template: the same requirements installed
            # with `uv pip install` into a new venv (user_venv above, so with rfc3987-syntax).
            user = work / "user-venv"
            if not user.exists():  # the warm section made it
                user_venv(project, user, reqs)
            app_start, bare_starts, app_stop, bare_stops = side_by_side_start(project, user, options.reps, log)
            rows.append(
                ratio_row("start until the URL is printed / bare `jupyter lab` of a user's venv until /api answers", app_start, bare_starts, 0.55)
            )
            rows.append(ratio_row("stop, idle / bare SIGTERM-to-exit of a user's venv", app_stop, bare_stops, 1.0))
            ours, theirs = side_by_side_first_result(project, user, max(3, options.reps), log)
            rows.append(
                ratio_row("kernel start to first result (POST /api/kernels to print's output) / one venv's own ipykernel", ours, theirs, 1.2)
            )

        if "sse" in only:
            log("server-side execution: render, bootstrap, a user's venv with the same requirements")
            sse = render(work / "bench-sse", "bench-sse", server_side_execution=True)
            sse_reqs = requirements(sse)
            user_venv(sse, work / "user-venv-sse", sse_reqs)
            app_start, bare_starts, app_stop, bare_stops = side_by_side_start(sse, work / "user-venv-sse", options.reps, log)
            rows.append(
                ratio_row("server-side execution: start until the URL is printed / bare `jupyter lab` of a user's venv", app_start, bare_starts, 0.6)
            )
            rows.append(ratio_row("server-side execution: stop, idle / bare SIGTERM-to-exit of a user's venv", app_stop, bare_stops, 1.0))

        busy_app, busy_bare = [], []
        for rep in range(max(2, options.reps // 2) if "busy" in only else 0):
            log(f"stop with 3 busy kernels: round {rep + 1}")
            project.run("start", "--no-open")
            start_busy_kernels(project, *project.token_url())
            busy_app.append(project.timed("stop"))
            left_app = project.leftovers()
            seconds, server = bare_start(project)
            start_busy_kernels(project, f"http://127.0.0.1:{PORT}", bare_token(project, server))
            busy_bare.append(bare_stop(server))
            left_bare = project.leftovers()
            for pid in left_bare:  # the bare server's stragglers: the benchmark cleans up
                os.kill(pid, signal.SIGKILL)
        if busy_app:
            rows.append(
                (
                    "stop, 3 busy kernels",
                    fmt(busy_app),
                    f"{fmt(busy_bare)}, {len(left_bare)} left",
                    "≤ 1 s, nothing left",
                    verdict_stop(busy_app, project, left_app),
                )
            )

        # --- status --------------------------------------------------------------------
        if "status" in only:
            log("status with 20 stale runtime files")
            runtime = project.root / ".jupyter_runtime"
            status_times = []
            for _ in range(10):
                for i in range(20):
                    (runtime / f"jpserver-{4_000_000 + i}.json").write_text('{"pid": 1}')
                    (runtime / f"jpserver-{4_000_000 + i}-open.html").write_text("")
                started = time.perf_counter()
                project.run("status", check=False)
                status_times.append(time.perf_counter() - started)
                assert not list(runtime.glob("jpserver-4*")), "status must clean stale files"
            rows.append(
                ("status, 20 stale runtime files", fmt(status_times), "", "≤ 150 ms", "ok" if statistics.median(status_times) <= 0.15 else "MISSED")
            )
        if "status-all" in only:
            project.run("stop", check=False)  # its port: status_all_row starts two servers
            rows.append(status_all_row(work / "status-all", log))
    finally:
        for name in ("project", "sse"):
            if name in locals():
                locals()[name].run("stop", check=False)
        shutil.rmtree(work, ignore_errors=True)

    if "servers" in only:
        rows += server_rows(options.reps)

    if options.suite:
        for label, args, target, limit in (
            ("test suite, fast subset (-m 'not slow')", ["-m", "not slow"], "≤ 1 min", 60),
            ("test suite, whole", [], "≤ 15 min on 2 cores", 900),
        ):
            print(f"bench: {label}", file=sys.stderr, flush=True)
            started = time.perf_counter()
            subprocess.run(["uv", "run", "pytest", "-q", "-p", "no:warnings", *args], cwd=REPO, check=True, capture_output=True)
            seconds = time.perf_counter() - started
            rows.append((label, f"{seconds:.0f} s", "", target, "ok" if seconds <= limit else "MISSED"))

    table = render_table(rows)
    print(table)
    if options.write_readme:
        write_readme(table)
    return 0


def status_all_row(work: Path, log) -> tuple[str, str, str, str, str]:
    """`status --all` from a stopped project, with 20 projects in a private registry: 2
    running (bootstrapped, started), 18 stopped (rendered, registered by `status`)."""
    env = {"XDG_STATE_HOME": str(work / "state"), "APP_MACHINE_SCOPE": str(work)}
    work.mkdir(parents=True, exist_ok=True)
    log("status --all: 20 registered projects, 2 running")
    running = [render(work / f"all-{i}", f"all-{i}") for i in range(2)]
    stopped = [render(work / "all-2", "all-2")]
    for i in range(3, 20):
        shutil.copytree(stopped[0].root, work / f"all-{i}", symlinks=True)
        stopped.append(Project(work / f"all-{i}"))
    try:
        for project in running:
            project.run("bootstrap", env=env)
            project.run("start", "--no-open", env=env)
        for project in stopped:
            project.run("status", env=env, check=False)
        registered = list((work / "state/jupyter-template/projects").glob("*.json"))
        assert len(registered) == 20, registered
        times = []
        for _ in range(10):
            started = time.perf_counter()
            result = stopped[0].run("status", "--all", env=env)
            times.append(time.perf_counter() - started)
            assert result.stdout.count("\nrunning ") == 2 and result.stdout.count("\nstopped ") == 18, result.stdout
    finally:
        for project in running:
            project.run("stop", env=env, check=False)
    verdict = "ok" if statistics.median(times) <= 0.3 else "MISSED"
    return ("status --all, 20 registered projects (2 running)", fmt(times), "", "≤ 300 ms", verdict)


# --- the two servers (issue 17) ------------------------------------------------------------


def rss_kib(pid: int) -> int:
    out = subprocess.run(["ps", "-o", "rss=", "-p", str(pid)], capture_output=True, text=True).stdout.strip()
    return int(out or 0)


def venv_mib(root: Path) -> float:
    out = subprocess.run(["du", "-sk", str(root / ".venv"), str(root / ".jupyter_venv")], capture_output=True, text=True, check=True).stdout
    return sum(int(line.split()[0]) for line in out.splitlines()) / 1024


def server_rows(reps: int) -> list[tuple[str, str, str, str, str]]:
    """Per server (and jupyter-server with server-side execution, jupyverse's feature
    set): start until the URL is printed, stop, the idle server's RSS a second after
    start, the .venv's size. Each project is rendered and bootstrapped here."""
    log = lambda text: print(f"bench: {text}", file=sys.stderr, flush=True)  # noqa: E731
    rows = []
    work = Path(tempfile.mkdtemp(prefix="jt-bench-servers-"))
    try:
        variants = (
            ("jupyter-server", {"server": "jupyter-server"}),
            ("jupyter-server + server-side execution", {"server": "jupyter-server", "server_side_execution": True}),
            ("jupyverse", {"server": "jupyverse"}),  # its cells always run on the server
        )
        for number, (server, answers) in enumerate(variants):
            log(f"servers: {server}: bootstrap")
            project = render(work / f"variant-{number}", f"bench-{number}", **answers)
            project.run("bootstrap")
            starts, stops, rss = [], [], []
            project.timed("start", "--no-open")  # the first start compiles and indexes: not counted
            project.run("stop")
            for _ in range(reps):
                starts.append(project.timed("start", "--no-open"))
                time.sleep(1)
                rss.append(rss_kib(int((project.root / ".logs/jupyter.pid").read_text())) / 1024)
                stops.append(project.timed("stop"))
            rows += [
                (f"{server}: start until the URL is printed", fmt(starts), "", "", ""),
                (f"{server}: stop (idle)", fmt(stops), "", "", ""),
                (f"{server}: RSS of the idle server", " / ".join(f"{v:.0f}" for v in summary(rss)) + " MiB", "", "", ""),
                (f"{server}: .venv + .jupyter_venv size (du)", f"{venv_mib(project.root):.0f} MiB", "", "", ""),
            ]
            project.run("stop", check=False)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def verdict_stop(samples: list[float], project: Project, left: list[int] | None = None) -> str:
    left = project.leftovers() if left is None else left
    fast = statistics.median(samples) <= 1
    return f"{'ok' if fast and not left else 'MISSED'}: {len(left)} processes left"


def render_table(rows) -> str:
    lines = [
        f"Measured on {machine()}; min / median / max.",
        "",
        "| measure | app.sh | baseline | target | verdict |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    return "\n".join(lines)


def write_readme(table: str) -> None:
    readme = REPO / "README.md"
    text = readme.read_text()
    begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
    head, _, rest = text.partition(begin)
    _, _, tail = rest.partition(end)
    readme.write_text(f"{head}{begin}\n{table}\n{end}{tail}")


if __name__ == "__main__":
    sys.exit(main())
