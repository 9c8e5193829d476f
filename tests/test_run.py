"""`app.sh run NOTEBOOK`: a notebook started headless, picked up later by any frontend.

Real JupyterLab with jupyter-collaboration and jupyter-server-nbmodel, real kernels;
the hand-off stories (run, --wait, --cancel; --follow's printer is shared) run again
with server=jupyverse (issue 17), whose frontend logs in with a cookie and runs cells
from the document.
A notebook is started from a "terminal" (app.sh run, nothing attached afterwards);
later a frontend opens it the way JupyterLab does (the notebook's collaboration room,
its session) and finds every output, including those printed while nobody watched,
and the same live kernel: the loop variable still holds its last value.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from conftest import Project, module_project, pid_alive, process_table
from test_lifecycle import wait_for
from test_server_side_execution import room_open

pytestmark = pytest.mark.slow

STEPS = 30
LOOP = f"import time\nfor i in range({STEPS}):\n    print(i, flush=True)\n    time.sleep(0.2)"


@pytest.fixture(scope="module")
def sse(copie_session):
    """A project with server-side execution, its server running for the module's tests."""
    yield from module_project(copie_session, "run-proj", server_side_execution=True)


@pytest.fixture(scope="module")
def jupyverse_run(copie_session):
    """The same project with server=jupyverse (cells always run on the server there)."""
    yield from module_project(copie_session, "run-proj", server="jupyverse")


@pytest.fixture(params=["jupyter-server", "jupyverse"])
def handoff(request):
    """The module's project for each server: the hand-off stories hold on both."""
    return request.getfixturevalue("sse" if request.param == "jupyter-server" else "jupyverse_run")


def is_jupyverse(project: Project) -> bool:
    return project.server_info().get("server") == "jupyverse"


def write_notebook(project: Project, name: str, *sources: str) -> Path:
    cells = [
        {"cell_type": "code", "id": f"cell-{n}", "metadata": {}, "source": source, "outputs": [], "execution_count": None}
        for n, source in enumerate(sources)
    ]
    cells.insert(1, {"cell_type": "markdown", "id": "prose", "metadata": {}, "source": "Some *prose*"})
    metadata = {"kernelspec": {"name": "run-proj", "display_name": "Run Proj", "language": "python"}}
    path = project.root / "notebooks" / name
    path.write_text(json.dumps({"cells": cells, "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}))
    return path


def session_kernel(project: Project, name: str) -> str:
    status, sessions = project.api("GET", "/api/sessions")
    assert status == 200
    (kernel,) = [s["kernel"]["id"] for s in sessions if s["path"] == name]
    return kernel


def pending(project: Project, kernel: str) -> list:
    status, data = project.api("GET", f"/api/kernels/{kernel}/execute")
    assert status == 200, status
    return data["requests"]


def cells_of(room) -> list[dict]:
    from pycrdt import Array

    return room.doc.get("cells", type=Array).to_py() or []


def running(project: Project, name: str) -> bool:
    """The notebook's run still has cells running or queued, as the server tells:
    nbmodel's queue; jupyverse queues nothing, so its shared document: a cell marked
    busy, or (the notebook run once, from fresh) a code cell not run yet while no cell
    has failed. Looked at twice: between two cells of a run none is busy, for a moment."""
    if not is_jupyverse(project):
        return bool(pending(project, session_kernel(project, name)))
    for _ in range(2):
        with room_open(project, name) as room:
            code = [cell for cell in cells_of(room) if cell.get("cell_type") == "code"]
            failed = any(o.get("output_type") == "error" for cell in code for o in cell.get("outputs") or [])
            if any(cell.get("execution_state") in ("busy", "running") for cell in code):
                return True
            if not failed and any(cell.get("execution_count") is None for cell in code):
                return True
        time.sleep(0.3)
    return False


def evaluate_in_document(project: Project, notebook: str, kernel: str, code: str) -> str:
    """jupyverse has no execute-code API: a frontend adds a cell to the shared document
    and asks the server to run it, as JupyterLab does; its text/plain result."""
    from pycrdt import Array, Map, Text, create_update_message

    with room_open(project, notebook) as room:
        cells = room.doc.get("cells", type=Array)
        updates: list[bytes] = []
        subscription = room.doc.observe(lambda event: updates.append(event.update))
        cell_id = uuid.uuid4().hex[:8]
        cell = {"cell_type": "code", "id": cell_id, "source": Text(code), "metadata": Map(), "outputs": Array(), "execution_count": None}
        cells.append(Map(cell))
        room.doc.unobserve(subscription)
        for update in updates:
            room.socket.send(create_update_message(update))
        time.sleep(0.5)  # the server applies the new cell before it is asked to run it
        status, _ = project.api("POST", f"/api/kernels/{kernel}/execute", {"document_id": room.id, "cell_id": cell_id})
        assert status == 200, status
        deadline = time.monotonic() + 30
        while True:
            ran = next(c for c in cells_of(room) if c.get("id") == cell_id)
            if ran.get("execution_count") and ran.get("execution_state") == "idle":
                return "".join(
                    "".join(o["data"]["text/plain"]) for o in ran.get("outputs", []) if o.get("output_type") == "execute_result"
                )
            assert time.monotonic() < deadline, f"{code!r} never ended"
            room.receive(timeout=max(0.1, deadline - time.monotonic()))


def evaluate(project: Project, kernel: str, code: str, notebook: str = "") -> str:
    """What the kernel answers to `code` (its text/plain result), through the server."""
    if is_jupyverse(project):
        return evaluate_in_document(project, notebook, kernel, code)
    status, request = project.api("POST", f"/api/kernels/{kernel}/execute", {"code": code})
    assert status == 202, status
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, result = project.api("GET", request["request_url"])
        if status == 200:
            outputs = json.loads(result["outputs"])
            return "".join("".join(o["data"]["text/plain"]) for o in outputs if o["output_type"] == "execute_result")
        assert status == 202, (status, result)
        time.sleep(0.1)
    raise AssertionError(f"{code!r} never ended")


def stream_text(cell: dict) -> str:
    return "".join(
        "".join(o["text"]) if isinstance(o["text"], list) else o["text"] for o in cell.get("outputs", []) if o.get("output_type") == "stream"
    )


def saved_lines(path: Path, cell: int = 1) -> list[str]:
    try:
        notebook = json.loads(path.read_text())
    except json.JSONDecodeError:  # caught in the middle of a save
        return []
    return stream_text(notebook["cells"][cell]).split()


def test_a_headless_run_is_picked_up_later_with_every_output_and_the_same_kernel(handoff: Project):
    """The hand-off: run returns at once, the run goes on with nothing attached, a second
    run is refused, status shows it, the token is nowhere, and a frontend that opens the
    notebook afterwards sees all the outputs and the loop's `i` in the same kernel."""
    log_before = (handoff.root / ".logs/jupyter.log").read_text() if (handoff.root / ".logs/jupyter.log").exists() else ""
    path = write_notebook(handoff, "loop.ipynb", "x = 'kept'", LOOP)
    started = time.monotonic()
    result = handoff.run("run", "notebooks/loop.ipynb", timeout=120)
    assert result.returncode == 0, result.output
    assert time.monotonic() - started < 60  # includes the server's start
    token = handoff.server_info()["token"]
    url = handoff.server_info()["url"].rstrip("/")
    tree = "/lab/workspaces/default/tree/" if is_jupyverse(handoff) else "/lab/tree/"  # jupyverse's /lab/tree/ takes no token
    assert result.stdout == f"{url}{tree}loop.ipynb?token={token}\n"
    assert "2 cell(s) queued" in result.stderr

    # While it runs: nothing of this project carries the token in its command line,
    # status lists the run, a second run is refused.
    kernel = session_kernel(handoff, "loop.ipynb")
    assert running(handoff, "loop.ipynb"), "the run had ended before anyone looked"
    for pid, _, args in process_table():
        assert token not in args, (pid, args)
    status = handoff.run("status")
    assert "run:       loop.ipynb: cell " in status.stdout and " of 2, since " in status.stdout, status.stdout
    runs = json.loads(handoff.run("status", "--json").stdout)["runs"]
    assert [(r["notebook"], r["cells"]) for r in runs] == [("loop.ipynb", 2)]
    again = handoff.run("run", "loop.ipynb")
    assert again.returncode == 1
    assert "already running" in again.stderr and "--follow" in again.stderr and "--cancel" in again.stderr

    wait_for(lambda: not running(handoff, "loop.ipynb"), timeout=STEPS + 60, interval=0.5)
    # A frontend opens the notebook afterwards: the shared document has every line,
    # the file on disk too (saved a second after the last change), and the session's
    # kernel is the one that ran the loop.
    with room_open(handoff, "loop.ipynb") as room:
        room.wait_until_it_shows(f"{STEPS - 1}\\n", timeout=10)
    wait_for(lambda: saved_lines(path, cell=2) == [str(i) for i in range(STEPS)], timeout=30, interval=0.5)
    assert session_kernel(handoff, "loop.ipynb") == kernel
    assert evaluate(handoff, kernel, "i, x", "loop.ipynb") == f"({STEPS - 1}, 'kept')"
    assert "run:" not in handoff.run("status").stdout
    assert json.loads(handoff.run("status", "--json").stdout)["runs"] == []
    # The token is in no line of the log: jupyter-server shows "?token=..." for a token it
    # did not generate. jupyverse's own start-up line ("Server running") is the exception
    # (it logs no request line, so not the ?token= login either).
    added = (handoff.root / ".logs/jupyter.log").read_text().removeprefix(log_before)
    banner = ("Server running",) if is_jupyverse(handoff) else ()
    assert [line for line in added.splitlines() if token in line and not any(b in line for b in banner)] == []


def test_wait_exits_1_at_the_first_failing_cell_and_0_when_all_succeed(handoff: Project):
    write_notebook(handoff, "fails.ipynb", "print('before')", "1/0", "print('never')")
    failed = handoff.run("run", "--wait", "fails.ipynb", timeout=120)
    assert failed.returncode == 1, failed.output
    assert "cell 2 of 3 failed: ZeroDivisionError: division by zero" in failed.stderr
    kernel = session_kernel(handoff, "fails.ipynb")
    assert evaluate(handoff, kernel, "6 * 7", "fails.ipynb") == "42"  # the kernel lives on
    with room_open(handoff, "fails.ipynb") as room:
        room.wait_until_it_shows("before", timeout=10)
        assert not room.shows("never\\n"), "a cell after the failure ran"

    path = write_notebook(handoff, "fine.ipynb", "y = 6 * 7", "print(y)")
    fine = handoff.run("run", "--wait", "fine.ipynb", timeout=120)
    assert fine.returncode == 0, fine.output
    assert "all 2 cell(s) ran" in fine.stderr
    # --wait returns once the file is saved: the next tool (nbconvert, git) reads the outputs.
    assert saved_lines(path, cell=2) == ["42"], "run --wait returned before the notebook was saved"
    assert "not saved yet" not in fine.stderr
    # Saved means this run's outputs, not the last run's, whose execution counts a new
    # kernel repeats (the notebook closed in between: its session and kernel are gone).
    clock = write_notebook(handoff, "clock.ipynb", "import time; print(time.time_ns())")
    seen = []
    for _ in range(2):
        again = handoff.run("run", "--wait", "clock.ipynb", timeout=120)
        assert again.returncode == 0, again.output
        seen.append(saved_lines(clock, cell=0))
        _, sessions = handoff.api("GET", "/api/sessions")
        for session in sessions:
            if session["path"].endswith("clock.ipynb"):
                assert handoff.api("DELETE", f"/api/sessions/{session['id']}")[0] == 204
    assert seen[0] != seen[1] and all(len(lines) == 1 for lines in seen), seen


def test_two_runs_started_at_once_run_the_notebook_once(sse: Project, tmp_path):
    """Both find no run in progress unless one claims the notebook first: the other joins
    it (--wait) or is refused, and the cell runs once."""
    marker = tmp_path / "marker.txt"
    write_notebook(sse, "once.ipynb", f"import time; time.sleep(2); open({str(marker)!r}, 'a').write('ran\\n')")
    for _ in range(3):
        marker.unlink(missing_ok=True)
        runs = [
            subprocess.Popen([str(sse.app), "run", "--wait", "once.ipynb"], cwd=sse.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        said = [run.communicate(timeout=120)[1] for run in runs]
        assert marker.read_text() == "ran\n", said
        codes = sorted(run.returncode for run in runs)
        assert codes in ([0, 0], [0, 1]), said
        if codes == [0, 1]:
            assert any("another run of once.ipynb is starting" in text or "already running" in text for text in said), said


def test_follow_prints_the_outputs_in_order_and_ctrl_c_detaches(sse: Project):
    write_notebook(sse, "follow.ipynb", "print('first')", LOOP, "i * 10")
    followed = sse.run("run", "--follow", "follow.ipynb", timeout=120)
    assert followed.returncode == 0, followed.output
    lines = followed.stdout.splitlines()
    assert lines[0].startswith("http://") and "/tree/follow.ipynb?token=" in lines[0]
    assert lines[1:] == ["first", *map(str, range(STEPS)), str((STEPS - 1) * 10)]

    # Ctrl-C while following (SIGINT to the terminal's foreground process group): the
    # terminal is free again, the run goes on to its end, and a second --follow joins it.
    watcher = subprocess.Popen(
        [str(sse.app), "run", "--follow", "follow.ipynb"],
        cwd=sse.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    while watcher.stdout.readline().strip() != "3":
        assert watcher.poll() is None, watcher.stderr.read()
    os.killpg(watcher.pid, signal.SIGINT)
    out, err = watcher.communicate(timeout=30)
    assert watcher.returncode == 130, err
    assert "detached; the run goes on" in err
    assert running(sse, "follow.ipynb"), "the run stopped with its watcher"
    joined = sse.run("run", "--follow", "follow.ipynb", timeout=120)
    assert joined.returncode == 0, joined.output
    assert "joining it" in joined.stderr
    assert joined.stdout.splitlines()[-1] == str((STEPS - 1) * 10)


def test_cancel_interrupts_the_running_cell_and_drops_the_rest(handoff: Project):
    write_notebook(handoff, "cancel.ipynb", LOOP.replace("0.2", "1"), "print('after')")
    assert handoff.run("run", "cancel.ipynb", timeout=120).returncode == 0
    kernel = session_kernel(handoff, "cancel.ipynb")
    wait_for(lambda: running(handoff, "cancel.ipynb"), timeout=60)
    time.sleep(2)
    cancelled = handoff.run("run", "--cancel", "cancel.ipynb")
    assert cancelled.returncode == 0, cancelled.output
    assert "run cancelled at cell 1 of 2" in cancelled.stderr
    assert not running(handoff, "cancel.ipynb")
    stopped_at = int(evaluate(handoff, kernel, "i", "cancel.ipynb"))
    assert stopped_at < STEPS - 1
    with room_open(handoff, "cancel.ipynb") as room:
        room.wait_until_it_shows("KeyboardInterrupt", timeout=10)
        assert not room.shows("after\\n"), "the queued cell ran"
    nothing = handoff.run("run", "--cancel", "cancel.ipynb")
    assert nothing.returncode == 0 and "no run in progress" in nothing.stderr


def test_stop_during_a_jupyverse_run_ends_its_driver(jupyverse_run: Project):
    """jupyverse: the run's cells go one at a time through a driver of app.sh's own;
    `stop` in the middle of a run leaves nothing of the project running, even a driver
    that cannot see the server go (stopped here: SIGSTOP)."""
    write_notebook(jupyverse_run, "stopped.ipynb", LOOP)
    assert jupyverse_run.run("run", "stopped.ipynb", timeout=120).returncode == 0
    drivers = [pid for pid, args in jupyverse_run.processes() if "notebook_run.py drive " in args]
    assert drivers, jupyverse_run.processes()
    for pid in drivers:
        os.kill(pid, signal.SIGSTOP)
    stopped = jupyverse_run.run("stop", timeout=120)
    assert stopped.returncode == 0, stopped.output
    assert jupyverse_run.processes() == []
    assert "run:" not in jupyverse_run.run("status").stdout


def test_bad_input_is_refused_and_changes_nothing(sse: Project, tmp_path):
    sse.run("stop")
    outside = tmp_path / "outside.ipynb"
    outside.write_text("{}")
    (sse.root / "notebooks/broken.ipynb").write_text("not json")
    (sse.root / "notebooks/notes.txt").write_text("text")
    cases = {
        (): (2, "which notebook?"),
        ("a.ipynb", "b.ipynb"): (2, "one notebook at a time"),
        ("--bogus", "a.ipynb"): (2, "unknown option '--bogus'"),
        ("--cancel", "--wait", "a.ipynb"): (2, "--cancel takes neither"),
        ("missing.ipynb",): (1, "no notebook 'missing.ipynb'"),
        (str(outside),): (1, "outside the notebook directory notebooks/"),
        ("notebooks",): (1, "is a directory"),
        ("notes.txt",): (1, "is not a notebook"),
        ("broken.ipynb",): (1, "is not a notebook: not JSON"),
    }
    for args, (code, message) in cases.items():
        result = sse.run("run", *args)
        assert (result.returncode, result.stdout) == (code, ""), (args, result.output)
        assert message in result.stderr, (args, result.stderr)
    assert not sse.pid_file.exists() and sse.servers() == []


def test_without_server_side_execution_run_says_how_to_turn_it_on(project: Project):
    (project.root / "notebooks/plain.ipynb").write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    result = project.run("run", "plain.ipynb")
    assert result.returncode == 1 and result.stdout == ""
    assert "copier update --trust -d server_side_execution=true" in result.stderr
    assert "scripts/app.sh bootstrap" in result.stderr and "restart" in result.stderr
    assert not project.pid_file.exists() and project.servers() == []


def test_a_browser_joins_a_headless_run_halfway_and_goes_on_in_the_same_kernel(sse: Project):
    """Chromium opens the notebook while the headless run is halfway: the earlier outputs
    are there at once, the later ones arrive, and once the run ends a new cell typed in
    the page uses the loop's variable, in the same kernel."""
    from test_browser import CHROMIUM

    if not CHROMIUM:
        pytest.skip("no Chromium installed (Debian: apt-get install chromium; .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    steps = 40  # 20 s: the page (a few seconds to load) joins while the run goes on
    write_notebook(sse, "joined.ipynb", f"import time\nfor i in range({steps}):\n    print('step', i, flush=True)\n    time.sleep(0.5)")
    result = sse.run("run", "notebooks/joined.ipynb", timeout=120)
    assert result.returncode == 0, result.output
    url = result.stdout.strip()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        try:
            page = chromium.new_page(viewport={"width": 1400, "height": 900})
            page.goto(url)
            outputs = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output")
            outputs.first.wait_for(timeout=60_000)
            assert pending(sse, session_kernel(sse, "joined.ipynb")), "the browser came halfway, not after the end"
            seen_first = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook").inner_text()
            assert "step 0" in seen_first, "the outputs printed before the browser came are there"
            page.get_by_text(f"step {steps - 1}").wait_for(timeout=60_000)  # the later ones arrive
            wait_for(lambda: not pending(sse, session_kernel(sse, "joined.ipynb")), timeout=60)

            # Go on in the page: a new cell below the last, using the loop's variable.
            page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell").last.click()
            page.keyboard.press("Escape")
            page.keyboard.press("b")
            page.keyboard.press("Enter")
            page.keyboard.type("print('i is', i)")
            page.keyboard.press("Shift+Enter")
            page.get_by_text(f"i is {steps - 1}").wait_for(timeout=90_000)
        finally:
            chromium.close()


def test_an_idle_timeout_stops_an_idle_server_and_keeps_the_one_running_a_notebook(project: Project, sse: Project):
    """APP_IDLE_TIMEOUT=1 (issue 16), on two servers at once: the idle one stops itself
    (jupyter-server looks once a minute: within ~2 minutes) and leaves nothing behind,
    and status says it stopped itself, and when; the one whose headless run sleeps in a
    cell, printing nothing (a busy kernel, idle by every other measure), keeps its kernel
    and its run."""
    from test_promises import local_settings

    sse.run("stop")
    write_notebook(sse, "long.ipynb", "import time\ntime.sleep(600)")
    queued = sse.run("run", "long.ipynb", env={"APP_IDLE_TIMEOUT": "1"}, timeout=120)
    assert queued.returncode == 0, queued.output
    kernel = session_kernel(sse, "long.ipynb")
    busy, queued_at = sse.server_pid(), time.monotonic()
    try:
        with local_settings(project, "APP_IDLE_TIMEOUT=1  # minutes"):
            project.start()
            idle = project.server_pid()
            runtime_file = project.runtime_dir / f"jpserver-{idle}.json"
            assert runtime_file.exists()
            started = time.monotonic()
            wait_for(lambda: not pid_alive(idle), timeout=150, interval=1)
            assert time.monotonic() - started > 55, "stopped before a minute of idleness"
            status = project.run("status")
        assert status.returncode == 3, status.output
        line = next(line for line in status.stdout.splitlines() if line.startswith("server:"))
        assert "not running (it stopped itself at 20" in line and "idle: APP_IDLE_TIMEOUT" in line, line
        assert not project.pid_file.exists() and not runtime_file.exists(), "status cleans up after it"
        assert json.loads(project.run("status", "--json").stdout)["idle_stopped_at"].startswith("20")
        every = json.loads(project.run("status", "--all", "--json").stdout)
        (entry,) = [p for p in every["projects"] if p["root"] == str(project.root)]
        assert entry["state"] == "stopped" and entry["idle_stopped_at"], entry

        # The culler (every minute since the kernel started) has seen the busy kernel
        # silent for over a minute, and left it: the run goes on.
        time.sleep(max(0.0, queued_at + 125 - time.monotonic()))
        assert pid_alive(busy)
        assert session_kernel(sse, "long.ipynb") == kernel and pending(sse, kernel)
        assert "run:       long.ipynb: cell 1 of 1," in sse.run("status").stdout
        log = (sse.root / ".logs/jupyter.log").read_text()
        assert "Culling kernels with idle durations > 60 seconds" in log and "seconds of inactivity" not in log
    finally:
        sse.run("stop")
