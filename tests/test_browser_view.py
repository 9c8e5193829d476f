"""What a user sees (issue 15): in a real browser, one kernel and no news toast; in the
server log, what the server says and nothing the wrapper causes; doctor names a kernel
that should not be there.

Playwright drives Debian's Chromium, as in test_browser.py; the browser tests skip,
saying why, where no Chromium is installed. Nothing here writes JupyterLab settings:
the project's own defaults are under test.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

import pytest

from conftest import Project, bootstrap
from test_browser import browser  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow

NEWS_QUESTION = "official Jupyter news"


def launcher_kernels(page) -> dict[str, list[str]]:
    """The launcher's sections (Notebook, Console, ...) and the labels of their cards."""
    return page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('.jp-Launcher-section')].map(section => [
            section.querySelector('.jp-Launcher-sectionTitle').innerText.trim(),
            [...section.querySelectorAll('.jp-LauncherCard-label')].map(label => label.innerText.trim()),
        ]))"""
    )


def test_the_launcher_offers_only_the_projects_kernel_and_no_news_toast(project: Project, browser):  # noqa: F811
    project.start()
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    try:
        page.goto(project.run("url").stdout.strip())
        page.wait_for_selector(".jp-Launcher-section .jp-LauncherCard", timeout=60_000)
        loaded = time.monotonic()
        sections = launcher_kernels(page)
        assert sections.get("Notebook") == ["E2E Proj"], sections
        assert sections.get("Console") == ["E2E Proj"], sections
        # JupyterLab asks about the news a moment after it is restored: give it 10 s.
        try:
            page.wait_for_function(f"() => document.body.innerText.includes({NEWS_QUESTION!r})", timeout=10_000)
        except Exception:
            pass
        assert NEWS_QUESTION not in page.inner_text("body"), "the news toast is shown"
        assert time.monotonic() - loaded >= 9.5
        assert not page.locator(".jp-Dialog").count(), page.locator(".jp-Dialog").first.inner_text()
        assert not page.locator(".Toastify__toast").count(), page.locator(".Toastify__toast").first.inner_text()
        assert not errors, errors
    finally:
        page.close()


def test_the_log_has_no_line_the_wrapper_causes(project: Project, browser):  # noqa: F811
    project.start()
    # A notebook open with its kernel, so the log holds what a session does, not just a start.
    notebook = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (project.root / "notebooks/view.ipynb").write_text(json.dumps(notebook))
    page = browser.new_page()
    try:
        page.goto(project.run("url").stdout.strip().replace("/lab?", "/lab/tree/view.ipynb?"))
        page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=60_000)
    finally:
        page.close()
        (project.root / "notebooks/view.ipynb").unlink()
    project.run("restart", "--no-open")  # a second start: the log of the first is kept as jupyter.log.1
    assert project.run("stop").returncode == 0
    for log in (project.root / ".logs/jupyter.log.1", project.root / ".logs/jupyter.log"):
        text = log.read_text()
        assert "is running at" in text, text
        assert not re.search(r"\b40[13] GET|Forbidden", text), text
    shown = project.run("logs").stdout
    assert not re.search(r"\b40[13] GET|Forbidden", shown), shown


def test_doctor_fails_while_the_native_kernel_is_back_and_bootstrap_removes_it(project: Project):
    native = project.root / ".venv/share/jupyter/kernels/python3"
    assert not native.exists(), "bootstrap left ipykernel's own kernel spec in the venv"
    # What every install of ipykernel does (pip install -U ipykernel, uv pip install ...).
    python = str(project.root / ".venv/bin/python")
    (support,) = (project.root / ".jupyter_venv/kernel").glob("python3.*")
    line = next(line for line in project.run("doctor", "--offline").stdout.splitlines() if "only the project's kernel (spec 2)" in line)
    assert line.startswith("PASS"), line
    subprocess.run([python, "-m", "ipykernel", "install", "--sys-prefix"], check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(support)})
    assert (native / "kernel.json").is_file()
    doctor = project.run("doctor", "--offline")
    assert doctor.returncode == 1, doctor.output
    line = next(line for line in doctor.stdout.splitlines() if "only the project's kernel (spec 2)" in line)
    assert line.startswith("FAIL") and ".venv/share/jupyter/kernels/python3" in line and "scripts/app.sh bootstrap" in line, line
    bootstrap(project)  # nothing else changed: the no-op bootstrap removes it
    assert not native.exists()
    doctor = project.run("doctor", "--offline")
    line = next(line for line in doctor.stdout.splitlines() if "only the project's kernel (spec 2)" in line)
    assert line.startswith("PASS"), line
    # Installed again while the server is down: start removes it, and the server offers one kernel.
    subprocess.run([python, "-m", "ipykernel", "install", "--sys-prefix"], check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(support)})
    project.start()
    assert not native.exists()
    status, specs = project.api("GET", "/api/kernelspecs")
    assert status == 200 and sorted(specs["kernelspecs"]) == ["e2e-proj"], specs


def page_config(project: Project) -> dict:
    """The page configuration JupyterLab embeds in /lab, as the browser receives it."""
    import urllib.request

    info = project.server_info()
    request = urllib.request.Request(f"{info['url'].rstrip('/')}/lab", headers={"Authorization": f"token {info['token']}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        html = response.read().decode()
    match = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', html, re.S)
    assert match, "the /lab page carries its configuration"
    return json.loads(match.group(1))


def test_the_extension_manager_installs_nothing_unless_the_project_asks(project: Project):
    local = project.root / "scripts/app.local.sh"
    saved = local.read_text()
    try:
        project.start()
        manager = page_config(project)["extensionManager"]
        assert manager["can_install"] is False, manager
        # The project's own choice, in app.local.sh, wins over the template's default.
        local.write_text(saved + "JUPYTER_EXTRA_ARGS+=(--LabApp.extension_manager=pypi)\n")
        assert project.run("restart", "--no-open").returncode == 0
        assert page_config(project)["extensionManager"]["can_install"] is True
    finally:
        local.write_text(saved)


# Sends a cell to a kernel through its connection file and leaves: the kernel is busy
# with no browser (no websocket of the server) attached.
SEND_AND_LEAVE = """
import sys
from jupyter_client import BlockingKernelClient
client = BlockingKernelClient()
client.load_connection_file(sys.argv[1])
client.start_channels()
client.wait_for_ready(timeout=60)
client.execute("import time; time.sleep(30)")
client.get_iopub_msg(timeout=30)  # the kernel said it is busy
client.stop_channels()
"""


def test_status_says_when_a_kernel_prints_to_no_one(project: Project):
    project.start()
    kernel_id, _ = project.start_kernel()
    assert "busy with no browser attached" not in project.run("status").stdout
    connection = project.runtime_dir / f"kernel-{kernel_id}.json"
    subprocess.run([str(project.root / ".jupyter_venv/bin/python"), "-c", SEND_AND_LEAVE, str(connection)], check=True, timeout=90)
    deadline = time.monotonic() + 20
    while (status := project.run("status")).stdout.count("busy with no browser attached") == 0:
        assert time.monotonic() < deadline, status.stdout
        time.sleep(0.5)
    assert "1 kernel(s) busy with no browser attached" in status.stdout
