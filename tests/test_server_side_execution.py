"""Server-side execution: a long cell keeps its outputs when every frontend is gone.

Headless, as JupyterLab's frontend does it: open the notebook's collaboration room
(Yjs sync over the room websocket, token in the header), start a kernel, ask the
server to execute a cell (`POST /api/kernels/<id>/execute`), close the client at
once, then read the .ipynb from disk. The same cell run the classic way (kernel
channels websocket) with the option off loses its outputs: the test proves the
difference. Real JupyterLab, jupyter-collaboration and jupyter-server-nbmodel.
"""

from __future__ import annotations

import json
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import Project, bootstrap, render

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


def write_notebook(project: Project, name: str, kernel: str) -> tuple[Path, str]:
    cell_id = uuid.uuid4().hex[:8]
    notebook = {
        "cells": [{"cell_type": "code", "id": cell_id, "metadata": {}, "source": SLOW_CELL, "outputs": [], "execution_count": None}],
        "metadata": {"kernelspec": {"name": kernel, "display_name": kernel, "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = project.root / "notebooks" / name
    path.write_text(json.dumps(notebook))
    return path, cell_id


def stream_lines(path: Path) -> list[str]:
    cell = json.loads(path.read_text())["cells"][0]
    text = "".join("".join(o.get("text", "")) for o in cell["outputs"] if o.get("output_type") == "stream")
    return [line for line in text.splitlines() if line.startswith("line")]


def ws_url(project: Project, path: str) -> str:
    return project.server_info()["url"].replace("http://", "ws://").rstrip("/") + path


@contextmanager
def room_open(project: Project, notebook: str):
    """A frontend with the notebook open: joins its collaboration room, waits until the
    server has loaded it, yields the room id; leaving the block closes the tab."""
    from pycrdt import Doc, YMessageType, YSyncMessageType, create_sync_message, handle_sync_message
    from websockets.sync.client import connect

    status, session = project.api("PUT", f"/api/collaboration/session/{notebook}", {"format": "json", "type": "notebook"})
    assert status in (200, 201), status
    room = f"json:notebook:{session['fileId']}"
    token = project.server_info()["token"]
    with connect(
        ws_url(project, f"/api/collaboration/room/{room}?sessionId={session['sessionId']}"),
        additional_headers={"Authorization": f"token {token}"},
    ) as socket:
        doc = Doc()
        socket.send(create_sync_message(doc))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = socket.recv(timeout=30)
            if message[0] == YMessageType.SYNC:
                reply = handle_sync_message(message[1:], doc)
                if reply is not None:
                    socket.send(reply)
                if message[1] == YSyncMessageType.SYNC_STEP2:
                    yield room
                    return
        raise AssertionError("the room never synced")


def execute_on_server(project: Project, kernel_id: str, room: str, cell_id: str) -> None:
    status, _ = project.api(
        "POST", f"/api/kernels/{kernel_id}/execute", {"code": SLOW_CELL, "metadata": {"document_id": room, "cell_id": cell_id}}
    )
    assert status == 202, status


def execute_over_channels(project: Project, kernel_id: str) -> None:
    """The classic way: the frontend sends execute_request on the kernel's websocket."""
    from websockets.sync.client import connect

    token = project.server_info()["token"]
    headers = {"Authorization": f"token {token}"}
    with connect(ws_url(project, f"/api/kernels/{kernel_id}/channels"), additional_headers=headers) as socket:
        session = uuid.uuid4().hex
        socket.send(
            json.dumps(
                {
                    "header": {"msg_id": uuid.uuid4().hex, "msg_type": "execute_request", "username": "test", "session": session, "version": "5.3"},
                    "parent_header": {},
                    "metadata": {},
                    "content": {"code": SLOW_CELL, "silent": False, "store_history": True, "user_expressions": {}, "allow_stdin": False},
                    "channel": "shell",
                    "buffers": [],
                }
            )
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # until the first line is out: the cell runs
            message = json.loads(socket.recv(timeout=30))
            if message["msg_type"] == "stream":
                break


def test_server_side_execution_keeps_every_output_after_the_client_leaves(sse: Project):
    sse.start()
    status = sse.run("status")
    assert "execution: server-side" in status.stdout, status.stdout
    for extension in ("jupyter_server_ydoc", "jupyter_server_fileid", "jupyter_server_nbmodel"):
        assert extension in status.stdout

    path, cell_id = write_notebook(sse, "long.ipynb", "sse-proj")
    with room_open(sse, "long.ipynb") as room:
        kernel_id, _ = sse.start_kernel()
        execute_on_server(sse, kernel_id, room, cell_id)
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
    """Control: the same run with the stock behaviour (room dropped 2 s after the
    client leaves) loses what the cell prints afterwards."""
    sse.start(env={"APP_DOCUMENT_CLEANUP_DELAY": "2"})
    path, cell_id = write_notebook(sse, "short-delay.ipynb", "sse-proj")
    with room_open(sse, "short-delay.ipynb") as room:
        kernel_id, _ = sse.start_kernel()
        execute_on_server(sse, kernel_id, room, cell_id)
    time.sleep(LINES + 4)
    assert len(stream_lines(path)) < LINES


def test_without_the_option_outputs_of_a_closed_client_are_lost(project: Project):
    """The default project: the classic frontend-driven execution."""
    project.start()
    status = project.run("status")
    assert "execution: in the browser" in status.stdout
    path, _ = write_notebook(project, "long.ipynb", "e2e-proj")
    kernel_id, _ = project.start_kernel()
    execute_over_channels(project, kernel_id)  # the tab closes once the cell prints
    time.sleep(LINES + 3)
    assert stream_lines(path) == []


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
            nbmodel = root / ".venv/etc/jupyter/jupyter_server_config.d/jupyter_server_nbmodel.json"
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
