"""Server-side execution: a long cell keeps its outputs when every frontend is gone.

Headless, as JupyterLab's frontend does it: open the notebook's collaboration room
(Yjs sync over the room websocket, token in the header), start a kernel, ask the
server to execute a cell (`POST /api/kernels/<id>/execute`), close the client at
once, then read the .ipynb from disk. The controls show the same measurement seeing
lines and then missing them: with a short cleanup delay, and the classic way (kernel
channels websocket, the frontend saving what it heard) with the option off.
Real JupyterLab, jupyter-collaboration and jupyter-server-nbmodel.
"""

from __future__ import annotations

import json
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import Project, bootstrap, render
from test_lifecycle import wait_for

pytestmark = pytest.mark.slow

LINES = 8
SLOW_CELL = f"import time\nfor i in range({LINES}):\n    print('line', i, flush=True)\n    time.sleep(1)"


@pytest.fixture(scope="session")
def sse_project(copie_session) -> Project:
    """A project rendered with server_side_execution=true, bootstrapped once."""
    project = Project(render(copie_session, project_name="sse-proj", server_side_execution=True))
    bootstrap(project)
    return project


@pytest.fixture
def sse(sse_project: Project):
    from conftest import leave_nothing_behind

    leave_nothing_behind(sse_project)
    yield sse_project
    leave_nothing_behind(sse_project)


def notebook(kernel: str, cell_id: str, outputs: list | None = None) -> dict:
    cell = {"cell_type": "code", "id": cell_id, "metadata": {}, "source": SLOW_CELL, "outputs": outputs or [], "execution_count": None}
    metadata = {"kernelspec": {"name": kernel, "display_name": kernel, "language": "python"}}
    return {"cells": [cell], "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}


def write_notebook(project: Project, name: str, kernel: str) -> tuple[Path, str]:
    cell_id = uuid.uuid4().hex[:8]
    path = project.root / "notebooks" / name
    path.write_text(json.dumps(notebook(kernel, cell_id)))
    return path, cell_id


def parsed(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def stream_lines(path: Path) -> list[str]:
    # The collaboration server rewrites the file in place: a read in the middle of a
    # save sees it empty or cut short. A moment later it is whole.
    cell = wait_for(lambda: parsed(path), timeout=10, interval=0.05)["cells"][0]
    text = "".join("".join(o.get("text", "")) for o in cell["outputs"] if o.get("output_type") == "stream")
    return [line for line in text.splitlines() if line.startswith("line")]


def ws_url(project: Project, path: str) -> str:
    return project.server_info()["url"].replace("http://", "ws://").rstrip("/") + path


class Room:
    """A tab's view of a notebook: its collaboration room and its copy of the document."""

    def __init__(self, room_id: str, socket):
        from pycrdt import Doc

        self.id, self.socket, self.doc = room_id, socket, Doc()

    def receive(self, timeout: float) -> bool:
        """Applies the server's next message to the tab's document; True on the first full sync."""
        from pycrdt import YMessageType, YSyncMessageType, handle_sync_message

        message = self.socket.recv(timeout=timeout)
        if message[0] != YMessageType.SYNC:
            return False  # awareness: who else is here
        reply = handle_sync_message(message[1:], self.doc)
        if reply is not None:
            self.socket.send(reply)
        return message[1] == YSyncMessageType.SYNC_STEP2

    def shows(self, text: str) -> bool:
        from pycrdt import Array

        return text in json.dumps(self.doc.get("cells", type=Array).to_py(), default=str)

    def wait_until_it_shows(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.shows(text):
            assert time.monotonic() < deadline, f"the tab never showed {text!r}"
            self.receive(timeout=max(0.1, deadline - time.monotonic()))


@contextmanager
def room_open(project: Project, notebook: str):
    """A frontend with the notebook open: joins its collaboration room, waits until the
    server has loaded it, yields the Room; leaving the block closes the tab."""
    from pycrdt import create_sync_message
    from websockets.sync.client import connect

    status, session = project.api("PUT", f"/api/collaboration/session/{notebook}", {"format": "json", "type": "notebook"})
    assert status in (200, 201), status
    room_id = f"json:notebook:{session['fileId']}"
    with connect(
        ws_url(project, f"/api/collaboration/room/{room_id}?sessionId={session['sessionId']}"),
        additional_headers=project.auth_headers(),
        max_queue=None,  # a tab kept open while the test does not read: never stall the server
    ) as socket:
        room = Room(room_id, socket)
        socket.send(create_sync_message(room.doc))
        deadline = time.monotonic() + 30
        while not room.receive(timeout=max(0.1, deadline - time.monotonic())):
            assert time.monotonic() < deadline, "the room never synced"
        yield room


def execute_on_server(project: Project, kernel_id: str, room: str, cell_id: str) -> None:
    status, _ = project.api(
        "POST", f"/api/kernels/{kernel_id}/execute", {"code": SLOW_CELL, "metadata": {"document_id": room, "cell_id": cell_id}}
    )
    assert status == 202, status


class ClassicTab:
    """A classic frontend: the kernel's channels websocket (a session of its own, as each
    JupyterLab tab is), the lines it hears, and the notebook it saves with them."""

    def __init__(self, project: Project, socket, session: str):
        self.project, self.socket, self.session = project, socket, session
        self.lines: list[str] = []

    def send(self, msg_type: str, content: dict) -> str:
        msg_id = uuid.uuid4().hex
        header = {"msg_id": msg_id, "msg_type": msg_type, "username": "test", "session": self.session, "version": "5.3"}
        self.socket.send(json.dumps({"header": header, "parent_header": {}, "metadata": {}, "content": content, "channel": "shell", "buffers": []}))
        return msg_id

    def hear_until(self, done, timeout: float) -> None:
        """Collects the printed lines until a message `done` accepts."""
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message["msg_type"] == "stream":
                self.lines += [line for line in message["content"]["text"].splitlines() if line.startswith("line")]
            if done(message):
                return

    def run_cell(self, until_the_end: bool) -> None:
        """Runs the slow cell; hears it to its end, or only until it first prints."""
        msg_id = self.send("execute_request", {"code": SLOW_CELL, "silent": False, "store_history": True, "user_expressions": {}, "allow_stdin": False})

        def finished(message):
            return message["msg_type"] == "status" and message["parent_header"].get("msg_id") == msg_id and message["content"]["execution_state"] == "idle"

        self.hear_until(finished if until_the_end else lambda m: m["msg_type"] == "stream", timeout=LINES + 30)

    def catch_up(self) -> None:
        """A tab that just opened: whatever the server hands it, up to the kernel's info."""
        msg_id = self.send("kernel_info_request", {})
        self.hear_until(lambda m: m["msg_type"] == "kernel_info_reply" and m["parent_header"].get("msg_id") == msg_id, timeout=30)

    def save(self, name: str, kernel: str, cell_id: str) -> None:
        """Saves the notebook with what this tab heard, as JupyterLab's Ctrl+S does."""
        text = "".join(f"{line}\n" for line in self.lines)
        outputs = [{"output_type": "stream", "name": "stdout", "text": text}] if text else []
        model = {"type": "notebook", "format": "json", "content": notebook(kernel, cell_id, outputs)}
        status, _ = self.project.api("PUT", f"/api/contents/{name}", model)
        assert status == 200, status


@contextmanager
def classic_tab(project: Project, kernel_id: str):
    """A tab open on the kernel; leaving the block closes it."""
    from websockets.sync.client import connect

    session = uuid.uuid4().hex
    with connect(
        ws_url(project, f"/api/kernels/{kernel_id}/channels?session_id={session}"),
        additional_headers={"Authorization": f"token {project.server_info()['token']}"},
        max_queue=None,
    ) as socket:
        yield ClassicTab(project, socket, session)


def test_server_side_execution_keeps_every_output_after_the_client_leaves(sse: Project):
    sse.start()
    status = sse.run("status")
    assert "execution: server-side" in status.stdout, status.stdout
    for extension in ("jupyter_server_ydoc", "jupyter_server_fileid", "jupyter_server_nbmodel"):
        assert extension in status.stdout

    path, cell_id = write_notebook(sse, "long.ipynb", "sse-proj")
    with room_open(sse, "long.ipynb") as room:
        kernel_id, _ = sse.start_kernel()
        execute_on_server(sse, kernel_id, room.id, cell_id)
    # The tab closed at once.

    deadline = time.monotonic() + LINES + 30
    while time.monotonic() < deadline and len(stream_lines(path)) < LINES:
        time.sleep(0.5)
    assert stream_lines(path) == [f"line {i}" for i in range(LINES)]

    # Every piece of collaboration state is inside the isolated, git-ignored directories.
    for stray in (sse.root / ".jupyter_ystore.db", sse.root / "notebooks/.jupyter", sse.root / "notebooks/.jupyter_ystore.db"):
        assert not stray.exists(), stray
    assert (sse.root / ".jupyter_data/jupyter_ystore.db").exists()


def test_a_short_cleanup_delay_loses_the_outputs_which_is_why_the_template_disables_it(sse: Project):
    """Control: the stock behaviour (room dropped 2 s after its last client leaves)
    loses what the cell prints afterwards. The tab sees the cell print before it closes;
    the same measurement of the file sees every line of the same cell whose tab stays
    open, on the same server."""
    sse.start(env={"APP_DOCUMENT_CLEANUP_DELAY": "2"})
    closed, closed_cell = write_notebook(sse, "closed.ipynb", "sse-proj")
    kept, kept_cell = write_notebook(sse, "kept.ipynb", "sse-proj")
    with room_open(sse, "closed.ipynb") as room:
        closed_kernel, _ = sse.start_kernel()
        execute_on_server(sse, closed_kernel, room.id, closed_cell)
        room.wait_until_it_shows("line 0", timeout=60)
    # The tab closed while the cell runs. The same cell, started later, its tab kept open:
    with room_open(sse, "kept.ipynb") as room:
        kept_kernel, _ = sse.start_kernel()
        execute_on_server(sse, kept_kernel, room.id, kept_cell)
        wait_for(lambda: len(stream_lines(kept)) == LINES, timeout=LINES + 60)
    # The closed tab's cell started first: it has finished, and whatever of it would be
    # saved is saved by now. (The saves are debounced: how many of its first lines made
    # it to disk before the room went varies, none included.)
    wait_for(lambda: sse.api("GET", f"/api/kernels/{closed_kernel}")[1]["execution_state"] == "idle")
    lines = stream_lines(closed)
    assert len(lines) < LINES, lines
    assert lines == [f"line {i}" for i in range(len(lines))]


def test_without_the_option_outputs_of_a_closed_client_are_lost(project: Project):
    """The default project: the classic frontend-driven execution, where outputs reach
    the .ipynb only through a tab that heard them and saves. A tab that stays hears and
    saves every line; a tab closed after the first line saved what it had, and a tab
    opened once the cell has finished hears nothing more to save. (jupyter_server
    replays missed messages only to the same session reconnecting after a network
    blip; a reopened tab is a session of its own.)"""
    project.start()
    status = project.run("status")
    assert "execution: in the browser" in status.stdout
    closed, closed_cell = write_notebook(project, "closed.ipynb", "e2e-proj")
    kept, kept_cell = write_notebook(project, "kept.ipynb", "e2e-proj")
    closed_kernel, _ = project.start_kernel()
    kept_kernel, _ = project.start_kernel()

    with classic_tab(project, closed_kernel) as leaving:
        leaving.run_cell(until_the_end=False)
        leaving.save("closed.ipynb", "e2e-proj", closed_cell)  # saves, then closes: the cell runs on
    seen = stream_lines(closed)
    assert seen and seen == leaving.lines, seen

    with classic_tab(project, kept_kernel) as staying:  # the same cell, started later, its tab open
        staying.run_cell(until_the_end=True)
        staying.save("kept.ipynb", "e2e-proj", kept_cell)
    assert stream_lines(kept) == [f"line {i}" for i in range(LINES)]

    # The closed tab's cell started first: it has finished (or is about to). Reopened, the
    # notebook gets what the file holds and what the server hands a new tab; it is saved again.
    wait_for(lambda: project.api("GET", f"/api/kernels/{closed_kernel}")[1]["execution_state"] == "idle")
    with classic_tab(project, closed_kernel) as reopened:
        reopened.lines = stream_lines(closed)
        reopened.catch_up()
        reopened.save("closed.ipynb", "e2e-proj", closed_cell)
    assert stream_lines(closed) == seen and len(seen) < LINES


def test_the_option_can_be_turned_on_and_off_with_copier_update(template_repo, tmp_path):
    from copier import run_copy, run_update

    from conftest import TEST_PORTS, git, leave_nothing_behind

    root = tmp_path / "toggle"
    run_copy(str(template_repo), str(root), data={"project_name": "toggle", **TEST_PORTS}, defaults=True, unsafe=True, quiet=True)
    project = Project(root)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "rendered")
    bootstrap(project)
    try:
        for enabled in (True, False):
            run_update(str(root), data={"server_side_execution": enabled}, defaults=True, overwrite=True, unsafe=True, quiet=True)
            git(root, "add", "-A")
            git(root, "commit", "-qm", f"server_side_execution={enabled}")
            warned = project.run("start", "--no-open")
            assert warned.returncode == 0 and "run: scripts/app.sh bootstrap" in warned.stderr
            project.run("stop")
            result = project.run("bootstrap")
            assert result.returncode == 0, result.output
            project.start()
            status = project.run("status").stdout
            nbmodel = root / ".jupyter_venv/etc/jupyter/jupyter_server_config.d/jupyter_server_nbmodel.json"
            if enabled:
                assert "execution: server-side (jupyter_server_ydoc jupyter_server_fileid jupyter_server_nbmodel loaded)" in status
                assert nbmodel.exists()
            else:
                assert "execution: in the browser" in status
                assert "removing jupyter-server-nbmodel" in result.stderr
                assert not nbmodel.exists()
                assert "jupyter_server_ydoc" not in (root / ".logs/jupyter.log").read_text()
            project.run("stop")
    finally:
        leave_nothing_behind(project)
