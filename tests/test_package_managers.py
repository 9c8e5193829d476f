"""Projects whose environment a package manager owns (uv.lock, poetry.lock), and projects
bootstrapped by the previous layout, where JupyterLab lived in the project's .venv.

The promise: JupyterLab lives in .jupyter_venv, app.sh's own; the kernel runs the
project's .venv, exactly as its lock says, with ipykernel added from
.jupyter_venv/kernel by scripts/ipykernel_launcher.py. So the user's own `uv sync`,
`uv run`, `uv add`, `poetry install` never take the server (or the kernel) away, app.sh
never writes pyproject.toml or the lock, and a lock may pin what JupyterLab needs at
another version. Each project is built here as its tool builds it (`uv init`, `uv add`,
`poetry lock`), adopted with the real copier CLI, started, and asked through a real
kernel what it runs.

Every test here fails on the previous layout (JupyterLab and ipykernel in .venv, no
lock read, git show 8881f97^:template/scripts/app.d/bootstrap.sh): its docstring says how.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

import conftest
from conftest import RUN_CELL, TEMPLATE, TEST_PORTS, Project, Result, git, pid_alive, process_table
from test_existing_projects import CHANGELOG_RELEASES, commit_all, copier_cli, render_at

# Every story under bash 3.2 too (the `shells` marker); the migration from v1.0.0's
# layout only under the first shell: its bash-3.2 leg is the same code path as the last
# commit's, which runs under both.
pytestmark = [pytest.mark.slow, pytest.mark.shells]


# --- the user's side: a project as its package manager makes it ----------------------------


def user(root: Path, *command: str, env: dict | None = None) -> str:
    """A command the user types in the project's terminal: not inside the test runner's
    venv (no VIRTUAL_ENV), so uv and poetry use the project's .venv as they would."""
    environment = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    done = subprocess.run(
        command,
        cwd=root,
        capture_output=True,
        text=True,
        env={**environment, **(env or {})},
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}"
    return done.stdout + done.stderr


def uv_project(root: Path, *dependencies: str) -> Path:
    """`uv init` and `uv add DEPENDENCIES...`, as a user starts a uv project."""
    root.mkdir(parents=True)
    user(root, "uv", "init", "--quiet", "--name", root.name, "--no-workspace", ".")
    if dependencies:
        user(root, "uv", "add", "--quiet", *dependencies)
    return root


# The poetry every test here uses: not installed on the machine, run by uv.
POETRY = ("uv", "tool", "run", "poetry")
POETRY_ENV = {"POETRY_VIRTUALENVS_IN_PROJECT": "true"}


def poetry_project(root: Path, dependency: str, locked: str, env: dict = POETRY_ENV) -> Path:
    """A poetry project (PEP 621, package-mode = false) declaring DEPENDENCY, whose
    poetry.lock holds LOCKED (locked first, then the declaration loosened and locked
    again: poetry keeps the locked version). ENV: poetry's settings."""
    root.mkdir(parents=True)
    pyproject = (
        f'[project]\nname = "{root.name}"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        "dependencies = [{}]\n\n[tool.poetry]\npackage-mode = false\n"
    )
    (root / "pyproject.toml").write_text(pyproject.format(f'"{locked}"'))
    user(root, *POETRY, "lock", env=env)
    (root / "pyproject.toml").write_text(pyproject.format(f'"{dependency}"'))
    user(root, *POETRY, "lock", env=env)
    return root


def locked_version(lock: Path, name: str) -> str:
    return next(package["version"] for package in tomllib.loads(lock.read_text())["package"] if package["name"] == name)


def owned_files(root: Path, *names: str) -> dict[str, bytes]:
    """The files only the user and their package manager write."""
    return {name: (root / name).read_bytes() for name in names}


# --- the template's side -------------------------------------------------------------------


def settled(project: Project) -> list[tuple[int, str]]:
    """`stop`, as a user ends the day; then what of the project still runs (killed):
    nothing, or the test fails."""
    project.run("stop", timeout=60)
    return project.kill_everything()


@pytest.fixture
def adopt(template_repo: Path):
    """adopt(root) commits the project at ROOT as it is and adopts the template in it,
    non-interactively, as README says (the real copier CLI). Every project is stopped
    and checked clean afterwards."""
    made: list[Project] = []

    def make(root: Path) -> Project:
        if not (root / ".git").exists():
            git(root, "init", "-q")
        commit_all(root, "the project as it was")
        answers = [f"-d{key}={value}" for key, value in {"project_name": root.name, **TEST_PORTS}.items()]
        copied = copier_cli("copy", "--trust", "--defaults", *answers, str(template_repo), ".", cwd=root)
        assert copied.returncode == 0, copied.stderr
        project = Project(root)
        made.append(project)
        return project

    yield make
    left = [settled(project) for project in made]
    assert not any(left), f"processes left behind after stop: {left}"


def client_python(project: Project) -> Path:
    """A Python with jupyter_client: the server's (.jupyter_venv), or in the previous
    layout, .venv."""
    for venv in (".jupyter_venv", ".venv"):
        python = project.root / venv / "bin/python"
        if python.exists() and subprocess.run([str(python), "-c", "import jupyter_client"], capture_output=True).returncode == 0:
            return python
    raise AssertionError(f"no Python with jupyter_client in {project.root}")


def run_cell(project: Project, kernel: tuple[str, int], code: str, *, ok: bool = True) -> str:
    """Runs CODE in KERNEL (its id and process, as start_kernel gives them) as a frontend
    does; returns what it printed (both streams, errors as 'ERROR name: value'). OK: the
    cell must succeed (else the server's log says why)."""
    ran = subprocess.run(
        [str(client_python(project)), "-c", RUN_CELL, str(project.runtime_dir / f"kernel-{kernel[0]}.json"), code, str(kernel[1])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if ok and ran.returncode != 0:
        raise AssertionError(f"the cell failed: {ran.stdout}{ran.stderr}\n{log_tail(project)}")
    return ran.stdout


def log_tail(project: Project) -> str:
    log = (project.root / ".logs/jupyter.log").read_text(errors="replace").splitlines()
    return "the server's log ends:\n" + "\n".join(log[-12:])


def start_kernel(project: Project) -> tuple[str, int]:
    """A kernel started as JupyterLab starts one: its id and process. A kernel that dies
    at once (the server restarts it, then gives up) fails with the server's log."""
    try:
        return project.start_kernel()
    except AssertionError as error:
        raise AssertionError(f"{error}\n{log_tail(project)}") from None


def run_in_new_kernel(project: Project, code: str) -> str:
    """Starts a kernel in the running server (as JupyterLab does), runs CODE in it, shuts
    it down; returns what the cell printed."""
    kernel = start_kernel(project)
    try:
        return run_cell(project, kernel, code)
    finally:
        project.api("DELETE", f"/api/kernels/{kernel[0]}")


def assert_serving(project: Project, pid: int) -> None:
    """status: the server PID runs, and neither environment is broken or missing; a new
    kernel runs code, in the project's Python."""
    status = project.run("status")
    assert status.returncode == 0, status.output
    assert f"running (PID {pid})" in status.stdout, status.stdout
    assert "broken" not in status.output and "missing" not in status.output, status.stdout
    executable = run_in_new_kernel(project, "import sys; print(sys.executable, 6 * 7)")
    assert executable == f"{project.root}/.venv/bin/python 42\n"


VERSION_OF = "import importlib.metadata as m; print(m.version({!r}))"


# --- uv ----------------------------------------------------------------------------------


def test_a_uv_project_survives_uv_sync_uv_run_and_uv_add(adopt, tmp_path):
    """The user keeps working as uv users do while JupyterLab runs: `uv sync`, `uv run`,
    `uv add six`. After each, status is fine, the notebook left open still runs code and
    the running server starts kernels that do; a new kernel imports what `uv add` added;
    the next start takes in the new lock by itself (a bootstrap of the project's side
    only: JupyterLab is not reinstalled); app.sh never writes pyproject.toml or uv.lock,
    and its sync of the user's own .venv keeps what they installed there by hand.

    Previous layout: JupyterLab was in .venv, so the first `uv sync` (exact) removed it,
    and the server's own venv was broken (status: "venv: broken")."""
    root = uv_project(tmp_path / "uvproj", "iniconfig")
    user(root, "uv", "pip", "install", "--quiet", "tomli")  # by hand, into the user's .venv
    before = owned_files(root, "pyproject.toml", "uv.lock")
    project = adopt(root)
    project.start()
    assert owned_files(root, "pyproject.toml", "uv.lock") == before, "app.sh never writes pyproject.toml or uv.lock"
    pid = project.server_pid()
    notebook = start_kernel(project)
    assert run_cell(project, notebook, "import iniconfig, tomli; print('mine')") == "mine\n"
    assert not list((root / ".venv/lib").glob("python*/site-packages/ipykernel")), "ipykernel is not in the project's .venv"

    for command in (("uv", "sync"), ("uv", "run", "python", "-c", "pass"), ("uv", "add", "six")):
        user(root, *command)
        assert_serving(project, pid)
        assert run_cell(project, notebook, "print('still here')") == "still here\n"
    assert run_in_new_kernel(project, "import six, iniconfig; print(six.__name__)") == "six\n"
    after_uv_add = owned_files(root, "pyproject.toml", "uv.lock")
    assert after_uv_add != before

    assert project.run("stop").returncode == 0
    restarted = project.start()
    assert "uv.lock or the project's Python changed since the last bootstrap: bootstrapping again" in restarted.stderr, restarted.stderr
    assert "installing jupyterlab" not in restarted.stderr, "the lock changed, not the server: JupyterLab stays"
    assert "already bootstrapped" in project.run("bootstrap").stderr, "start took the new lock in"
    assert owned_files(root, "pyproject.toml", "uv.lock") == after_uv_add
    assert_serving(project, project.server_pid())
    assert run_in_new_kernel(project, "import six, iniconfig; print('both')") == "both\n"


def test_the_kernel_runs_exactly_the_locked_versions(adopt, tmp_path):
    """A fresh clone of a uv project (no .venv): pyproject.toml asks iniconfig>=1, uv.lock
    pins 1.1.1; the kernel imports 1.1.1, not the newest release.

    Previous layout: no lock was read; pyproject.toml's requirement was installed, so the
    kernel had the newest iniconfig (2.x)."""
    root = uv_project(tmp_path / "locked", "iniconfig==1.1.1")
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"iniconfig==1.1.1"', '"iniconfig>=1"'))
    user(root, "uv", "lock")
    assert '"iniconfig>=1"' in pyproject.read_text() and locked_version(root / "uv.lock", "iniconfig") == "1.1.1"
    shutil.rmtree(root / ".venv")  # as a clone has it
    project = adopt(root)
    project.start()
    assert run_in_new_kernel(project, VERSION_OF.format("iniconfig")) == "1.1.1\n"
    assert (root / ".venv/.app-made-by-jupyter-template").exists(), "app.sh made this .venv: it may recreate it"


def test_a_lock_pinning_what_jupyterlab_needs_at_another_version(adopt, tmp_path):
    """The project locks jsonschema 3.2.0; JupyterLab needs jsonschema>=4.18. Both run:
    the kernel imports 3.2.0, the server its own, and kernels start.

    Previous layout: one environment for both; the install of 3.2.0 beside JupyterLab
    failed (or JupyterLab's won) and the kernel reported jsonschema 4.x."""
    root = uv_project(tmp_path / "oldschema", "jsonschema==3.2.0")
    project = adopt(root)
    project.start()
    assert_serving(project, project.server_pid())
    assert run_in_new_kernel(project, "import jsonschema; " + VERSION_OF.format("jsonschema")) == "3.2.0\n"
    servers = subprocess.run(
        [str(root / ".jupyter_venv/bin/python"), "-c", VERSION_OF.format("jsonschema")], capture_output=True, text=True, check=True
    ).stdout
    assert int(servers.split(".")[0]) >= 4, f"the server's jsonschema is {servers}"


def test_percent_pip_install_in_a_uv_project_says_uv_add_is_the_way(adopt, tmp_path):
    """`%pip install six` in a notebook of a uv project: what it installs, the next
    `uv sync` removes; the kernel says, once, that `uv add` is the way.

    Previous layout: the kernel was stock ipykernel (python -m ipykernel_launcher),
    which says nothing."""
    project = adopt(uv_project(tmp_path / "pipnote", "iniconfig"))
    project.start()
    kernel = start_kernel(project)
    said = run_cell(project, kernel, "%pip install six", ok=False)
    assert "Add packages with `uv add NAME`" in said, said
    again = run_cell(project, kernel, "%pip install six", ok=False)
    assert "uv add" not in again, f"the note is said once per kernel: {again}"
    project.api("DELETE", f"/api/kernels/{kernel[0]}")


# --- poetry --------------------------------------------------------------------------------


def test_a_poetry_project_runs_its_locked_versions_and_survives_poetry_install(adopt, tmp_path):
    """A poetry project (package-mode = false) declaring iniconfig>=1, locked at 1.1.1,
    with no poetry on PATH: start installs the lock with poetry (run by uv), the kernel
    imports 1.1.1. The user's own `poetry install` and `poetry sync` (which removes
    whatever the lock does not list) afterwards leave the server and its kernels working.

    Previous layout: poetry.lock was not read and [project]'s requirement installed, so
    the kernel had the newest iniconfig; and `poetry sync` removed JupyterLab from .venv."""
    root = poetry_project(tmp_path / "poetryproj", "iniconfig>=1", "iniconfig==1.1.1")
    assert locked_version(root / "poetry.lock", "iniconfig") == "1.1.1"
    before = owned_files(root, "pyproject.toml", "poetry.lock")
    project = adopt(root)
    started = project.start()
    assert "installing poetry.lock into .venv" in started.stderr, started.stderr
    assert run_in_new_kernel(project, VERSION_OF.format("iniconfig")) == "1.1.1\n"
    pid = project.server_pid()
    for command in ("install", "sync"):
        user(root, *POETRY, command, "--no-interaction", env=POETRY_ENV)
        assert_serving(project, pid)
        assert run_in_new_kernel(project, VERSION_OF.format("iniconfig")) == "1.1.1\n"
    assert owned_files(root, "pyproject.toml", "poetry.lock") == before, "app.sh never writes pyproject.toml or poetry.lock"


def test_a_poetry_project_whose_environment_poetry_keeps_elsewhere_gets_the_lock_in_its_venv(adopt, tmp_path):
    """Poetry's default: the project's environment in poetry's own directory
    (virtualenvs.in-project unset), made by the user's `poetry install` before the
    template came. start still installs the lock into the project's .venv, which the
    kernel runs, and the kernel imports the locked version.

    Previous layout: poetry.lock was not read and [project]'s requirement installed, so
    the kernel had the newest iniconfig."""
    # Poetry's directory for environments, kept in the test (its settings apply to the
    # user's poetry and to the one app.sh runs alike, as a config file's would).
    elsewhere = {"POETRY_VIRTUALENVS_PATH": str(tmp_path / "poetry-virtualenvs")}
    root = poetry_project(tmp_path / "poetrycache", "iniconfig>=1", "iniconfig==1.1.1", env=elsewhere)
    user(root, *POETRY, "install", "--no-interaction", env=elsewhere)
    assert not (root / ".venv").exists() and list((tmp_path / "poetry-virtualenvs").iterdir()), "poetry's own place"
    project = adopt(root)
    started = project.start(env=elsewhere)
    assert "installing poetry.lock into .venv" in started.stderr, started.stderr
    assert run_in_new_kernel(project, "import sys; " + VERSION_OF.format("iniconfig") + "; print(sys.prefix)") == f"1.1.1\n{root}/.venv\n"


# --- the previous layout -------------------------------------------------------------------


def previous_layouts() -> dict[str, str]:
    """The commits whose template kept JupyterLab in .venv, to render a project of the
    previous layout from: the last release (v1.0.0), and the last commit before the two
    environments (the parent of the one that brought .jupyter_venv to app.sh)."""
    layouts = {"v1.0.0": CHANGELOG_RELEASES["v1.0.0"]}
    brought = git(TEMPLATE, "log", "--reverse", "--format=%H", "-S", "JUPYTER_VENV=", "--", "template/scripts/app.sh.jinja").split()
    if brought:
        layouts["last-commit"] = git(TEMPLATE, "rev-parse", f"{brought[0]}^").strip()
    return layouts


PREVIOUS_LAYOUTS = previous_layouts()


@pytest.fixture(scope="module")
def template_history(tmp_path_factory, template_repo: Path) -> Path:
    """A clone of the template with its history, and the working tree committed on top:
    a project renders at an old commit, then `copier update`s to the working tree."""
    clone = tmp_path_factory.mktemp("template-history") / "template"
    git(clone.parent, "clone", "-q", str(TEMPLATE), str(clone))
    for entry in clone.iterdir():
        if entry.name != ".git":
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    shutil.copytree(template_repo, clone, ignore=shutil.ignore_patterns(".git"), dirs_exist_ok=True, symlinks=True)
    commit_all(clone, "the working tree")
    return clone


def previous_layout_project(template_history: Path, layout: str, root: Path) -> Project:
    """A project rendered at LAYOUT and bootstrapped by it (JupyterLab in .venv), with a
    dependency of its own (six, requirements.txt) and one installed by hand (tomli)."""
    commit = PREVIOUS_LAYOUTS[layout]
    if subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=template_history).returncode != 0:
        pytest.skip(f"{layout} ({commit[:7]}) is not in this clone of the template (shallow?)")
    project = render_at(template_history, commit, root)
    requirements = root / "requirements.txt"
    requirements.write_text((requirements.read_text() if requirements.exists() else "") + "six\n")
    commit_all(root, "a dependency")
    bootstrapped = as_the_previous_release(project, "bootstrap")
    assert bootstrapped.returncode == 0, bootstrapped.output
    assert (root / ".venv/.app-bootstrap-stamp").exists() and (root / ".venv/bin/jupyter-lab").exists(), "the previous layout"
    assert not (root / ".jupyter_venv").exists()
    subprocess.run(["uv", "pip", "install", "--quiet", "--python", str(root / ".venv/bin/python"), "tomli"], check=True)
    return project


def as_the_previous_release(project: Project, *args: str) -> Result:
    """The previous layout's app.sh, as it ran: under the machine's bash, whatever the
    leg (v1.0.0 stops at a syntax error under bash 3.2, exit status 0). It only sets the
    scene; this template's app.sh is what runs under the leg's shell."""
    path = [entry for entry in os.environ["PATH"].split(os.pathsep) if entry != str(conftest.SHELL_BIN_DIR)]
    done = subprocess.run(
        [str(project.app), *args],
        cwd=project.root,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PATH": os.pathsep.join(path)},
        stdin=subprocess.DEVNULL,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def update_to_the_working_tree(project: Project) -> None:
    commit_all(project.root, "before the update")
    updated = copier_cli("update", "--trust", "--defaults", "--vcs-ref", "HEAD", cwd=project.root)
    assert updated.returncode == 0, updated.stderr
    assert "JUPYTER_VENV=" in project.app.read_text(), "updated to the two environments"


def site_packages(project: Project) -> set[str]:
    """The distributions in the project's .venv, by normalised name."""
    return {
        path.name.partition("-")[0].lower().replace("_", "-")
        for path in (project.root / ".venv/lib").glob("python*/site-packages/*.dist-info")
    }


def server_args(pid: int) -> str:
    return next(args for p, _, args in process_table() if p == pid)


@pytest.fixture
def previous(template_history: Path, tmp_path: Path):
    """previous(layout) makes a project of the previous layout; stopped and checked clean."""
    made: list[Project] = []

    def make(layout: str) -> Project:
        project = previous_layout_project(template_history, layout, tmp_path / f"old-{layout.replace('.', '-')}")
        made.append(project)
        return project

    yield make
    left = [settled(project) for project in made if project.app.exists()]
    assert not any(left), f"processes left behind after stop: {left}"


@pytest.mark.parametrize("layout", sorted(PREVIOUS_LAYOUTS))
def test_a_project_of_the_previous_layout_migrates_at_its_next_start(previous, layout, shell):
    """A project bootstrapped by the previous layout (JupyterLab in .venv), updated to
    this template: its next `start` moves JupyterLab to .jupyter_venv and takes the
    packages only the server needed out of .venv; the project's own (six, from
    requirements.txt) and what the user installed by hand (tomli) stay; the kernel runs.

    Previous layout: there is no .jupyter_venv and no migration; this is the update."""
    if shell == "bash-3.2" and layout == "v1.0.0":
        pytest.skip("v1.0.0's layout migrates by the same code path as the last commit's, which runs under bash 3.2")
    project = previous(layout)
    update_to_the_working_tree(project)
    status = project.run("status")
    assert "as an earlier release laid it out" in status.stdout and "scripts/app.sh start moves it" in status.stdout, status.stdout
    started = project.start()
    assert "moving JupyterLab out of .venv" in started.stderr, started.stderr
    root = project.root
    assert (root / ".jupyter_venv/bin/jupyter-lab").exists()
    assert not (root / ".venv/.app-bootstrap-stamp").exists()
    packages = site_packages(project)
    assert {"jupyterlab", "jupyter-server", "notebook-shim", "ipykernel"}.isdisjoint(packages), sorted(packages)
    assert {"six", "tomli"} <= packages, sorted(packages)
    assert server_args(project.server_pid()).startswith(f"{root}/.jupyter_venv/bin/python ")
    assert_serving(project, project.server_pid())
    assert run_in_new_kernel(project, "import six, tomli; print('kept')") == "kept\n"
    assert "already bootstrapped" in project.run("bootstrap").stderr, "migrated once"


# The newest previous layout only: the old server's code path is the same for both.
@pytest.mark.parametrize("layout", ["last-commit" if "last-commit" in PREVIOUS_LAYOUTS else "v1.0.0"])
def test_a_running_server_of_the_previous_layout_is_left_to_restart_which_migrates(previous, layout):
    """The previous layout's server runs when the project is updated: `start` and
    `bootstrap` leave it (same PID, JupyterLab still in .venv) and say that `restart`
    moves it; `restart` stops it and starts JupyterLab from .jupyter_venv, the project's
    packages kept.

    Previous layout: there is no .jupyter_venv to move to."""
    project = previous(layout)
    started = as_the_previous_release(project, "start", "--no-open")
    assert started.returncode == 0, started.output
    old = project.server_pid()
    update_to_the_working_tree(project)
    root = project.root

    status = project.run("status")
    assert status.returncode == 0 and f"running (PID {old})" in status.stdout, status.output
    assert "scripts/app.sh restart moves it" in status.stdout, status.stdout
    for command in (("start", "--no-open"), ("bootstrap",)):
        left = project.run(*command)
        assert left.returncode == 0, left.output
        assert project.server_pid() == old and pid_alive(old)
        assert (root / ".venv/bin/jupyter-lab").exists() and (root / ".venv/.app-bootstrap-stamp").exists(), "left alone"
    assert "Move it to .jupyter_venv with: scripts/app.sh restart" in left.stderr, left.stderr

    restarted = project.run("restart", "--no-open", timeout=600)
    assert restarted.returncode == 0, restarted.output
    new = project.server_pid()
    assert new != old and not pid_alive(old)
    assert server_args(new).startswith(f"{root}/.jupyter_venv/bin/python "), server_args(new)
    packages = site_packages(project)
    assert "jupyterlab" not in packages and {"six", "tomli"} <= packages, sorted(packages)
    assert_serving(project, new)
    assert run_in_new_kernel(project, "import six, tomli; print('kept')") == "kept\n"
