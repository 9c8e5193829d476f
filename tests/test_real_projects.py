"""Existing projects as they really are (issue 12): notebooks where they already live,
the project's own package, a dependency that no longer resolves. Each project is built
here in the shape of a public repository, adopted with the real copier CLI, and its own
notebook opened through the running server as JupyterLab opens it: the contents API,
a session, and a cell run in that session's kernel.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import RUN_CELL, TEST_PORTS, Project, git, leave_nothing_behind, pid_alive
from test_existing_projects import copier_cli

pytestmark = pytest.mark.slow


def notebook(*sources: str) -> str:
    cells = [
        {"cell_type": "code", "id": f"c{i}", "metadata": {}, "source": src, "outputs": [], "execution_count": None}
        for i, src in enumerate(sources)
    ]
    return json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def write_tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


@pytest.fixture
def adopt(template_repo: Path, tmp_path: Path):
    """adopt(files, name) builds a committed repository from `files` and adopts the
    template in it non-interactively, as README says; returns the project and copier's
    output. Every project is stopped and checked clean afterwards."""
    made: list[Project] = []

    def make(files: dict[str, str], name: str, *options: str) -> tuple[Project, str]:
        root = tmp_path / name
        root.mkdir()
        write_tree(root, files)
        git(root, "init", "-q")
        git(root, "add", "-A")
        git(root, "commit", "-qm", "the project as it was")
        answers = [f"-d{key}={value}" for key, value in {"project_name": name, **TEST_PORTS}.items()]
        copied = copier_cli("copy", "--trust", "--defaults", *answers, *options, str(template_repo), ".", cwd=root)
        assert copied.returncode == 0, copied.stderr
        project = Project(root)
        made.append(project)
        return project, copied.stdout + copied.stderr

    yield make
    for project in made:
        leave_nothing_behind(project)


def open_and_run(project: Project, notebook_path: str, code: str) -> str:
    """Opens NOTEBOOK_PATH (relative to JupyterLab's root) as JupyterLab does and runs CODE
    in its session's kernel; returns what the cell printed."""
    status, model = project.api("GET", f"/api/contents/{notebook_path}")
    assert status == 200, f"JupyterLab cannot open {notebook_path}: {status}"
    assert model["type"] == "notebook"
    status, session = project.api(
        "POST", "/api/sessions", {"path": notebook_path, "name": notebook_path, "type": "notebook", "kernel": {"name": project.root.name}}
    )
    assert status == 201, status
    connection = project.runtime_dir / f"kernel-{session['kernel']['id']}.json"
    ran = subprocess.run(
        [str(project.root / ".jupyter_venv/bin/python"), "-c", RUN_CELL, str(connection), code],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return ran.stdout


def doctor_lines(project: Project) -> dict[str, str]:
    result = project.run("doctor", "--offline")
    return {line[6:51].strip(): line[:4] + line[51:] for line in result.stdout.splitlines()}


def test_a_tutorial_with_its_notebooks_at_the_top_level_opens_them_where_they_are(adopt):
    project, said = adopt(
        {
            "00-Introduction.ipynb": notebook("import numpy as np", "print(open('data/points.csv').read())"),
            "01-Plots.ipynb": notebook("import matplotlib.pyplot as plt\n%matplotlib inline"),
            "data/points.csv": "x,y\n1,2\n",
            "README.md": "# A tutorial\n",
        },
        "tutorial",
    )
    assert "JupyterLab's root is '.'" in said
    assert "notebook_dir: ." in (project.root / ".copier-answers.yml").read_text()
    assert not (project.root / "notebooks").exists(), "no empty notebooks/ beside the real ones"

    started = project.run("start", "--no-open")
    assert started.returncode == 0, started.output
    assert "notebooks import what is not installed: matplotlib, numpy" in started.stderr
    # The kernel starts beside its notebook: the tutorial's relative paths work.
    assert open_and_run(project, "00-Introduction.ipynb", "print(open('data/points.csv').read())") == "x,y\n1,2\n\n"

    doctor = doctor_lines(project)
    assert doctor["notebooks inside JupyterLab's root"].startswith("PASS")
    assert doctor["notebook imports installed"].startswith("WARN")
    assert "matplotlib, numpy" in doctor["notebook imports installed"]
    assert project.run("status").stdout.count("notebooks: ./") == 1


def test_a_library_with_notebooks_under_doc_imports_its_own_package_and_extras(adopt):
    project, said = adopt(
        {
            "pyproject.toml": """[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "shapes"
version = "0.1.0"
dependencies = ["six"]

[project.optional-dependencies]
config = ["iniconfig"]
""",
            "src/shapes/__init__.py": "SIDES = {'triangle': 3}\n",
            "doc/usage.ipynb": notebook("import shapes", "print(open('sides.txt').read())"),
            "doc/sides.txt": "three",
            ".gitignore": "doc/_build/\n",
        },
        "shapes",
    )
    assert "JupyterLab's root is 'doc'" in said
    with (project.root / "scripts/app.local.sh").open("a") as local:
        local.write("APP_EXTRAS=config\n")

    bootstrap = project.run("bootstrap", timeout=600)
    assert bootstrap.returncode == 0, bootstrap.output
    assert "the project itself, editable" in bootstrap.stderr
    project.start()
    printed = open_and_run(
        project,
        "usage.ipynb",
        "import shapes, six, iniconfig; print(shapes.SIDES['triangle'], open('sides.txt').read())",
    )
    assert printed == "3 three\n"
    # Editable: after a kernel restart, the notebook sees the project's code as edited.
    (project.root / "src/shapes/__init__.py").write_text("SIDES = {'triangle': 3, 'square': 4}\n")
    _, sessions = project.api("GET", "/api/sessions")
    assert project.api("POST", f"/api/kernels/{sessions[0]['kernel']['id']}/restart")[0] == 200
    assert open_and_run(project, "usage.ipynb", "import shapes; print(len(shapes.SIDES))") == "2\n"
    # A bootstrap while the notebook's kernel runs says it still has the old packages.
    again = project.run("bootstrap", "--force", timeout=600)
    assert again.returncode == 0, again.output
    assert "1 running kernel(s) still have the packages they started with" in again.stderr
    doctor = doctor_lines(project)
    assert doctor["notebooks inside JupyterLab's root"].startswith("PASS")
    assert doctor["venv bootstrapped"].startswith("PASS"), doctor


def test_a_pin_that_no_longer_resolves_never_costs_the_user_jupyterlab(adopt):
    project, said = adopt(
        {
            # A 2016 pin: ipykernel 4 cannot live with the Jupyter stack of today.
            "requirements.txt": "ipykernel==4.0.0\nsix\n",
            "environment.yml": "name: book\ndependencies:\n  - python=3.5\n",
            "notebooks/chapter1.ipynb": notebook("print('chapter 1')"),
            "notebooks/data.txt": "pages",
        },
        "book",
    )
    assert "JupyterLab's root is 'notebooks'" in said
    bootstrap = project.run("bootstrap", timeout=600)
    assert bootstrap.returncode == 1, bootstrap.output
    assert "ipykernel==4.0.0" in bootstrap.stderr, "the installer's reason names the offending pin"
    assert "environment.yml: not used" in bootstrap.stderr
    assert "JupyterLab works without them" in bootstrap.stderr

    started = project.run("start", "--no-open")
    assert started.returncode == 0, started.output
    assert "dependencies failed to install at the last bootstrap" in started.stderr
    assert open_and_run(project, "chapter1.ipynb", "print(open('data.txt').read())") == "pages\n"
    status = project.run("status")
    assert "deps:      failed" in status.stdout
    doctor = doctor_lines(project)
    assert doctor["venv bootstrapped"].startswith("FAIL") and "dependencies failed" in doctor["venv bootstrapped"]

    # Fixed pins: the next bootstrap installs them and everything is current again.
    (project.root / "requirements.txt").write_text("six\n")
    assert project.run("bootstrap", timeout=600).returncode == 0
    assert "deps:      installed" in project.run("status").stdout


def test_the_missing_imports_hint_names_distributions_and_never_the_projects_own_modules(adopt):
    """The hint after bootstrap (and doctor's line) lists what to install, by the name
    to install it under: mpl_toolkits is matplotlib's, jwt is PyJWT. It leaves out the
    project's own code: a package under src/, a module at the top level or beside any
    notebook (not only the importing one's), a module a notebook writes with %%writefile
    or %%file."""
    project, _ = adopt(
        {
            "src/shapes/__init__.py": "SIDES = 3\n",
            "analysis_utils.py": "",
            "notebooks/a/helpers.py": "",
            "notebooks/a/one.ipynb": notebook(
                "%%writefile mymod.py\nimport json\n",
                "%%file -a ../b/written_elsewhere.py\nX = 1\n",
                "import mymod, shapes, analysis_utils\nfrom mpl_toolkits.mplot3d import Axes3D",
            ),
            "notebooks/b/two.ipynb": notebook("import helpers, written_elsewhere\nimport jwt, dotenv", "import numpy as np"),
        },
        "ownmodules",
    )
    bootstrap = project.run("bootstrap", timeout=600)
    assert bootstrap.returncode == 0, bootstrap.output
    assert "notebooks import what is not installed: matplotlib, numpy, PyJWT, python-dotenv;" in bootstrap.stderr, bootstrap.stderr
    line = doctor_lines(project)["notebook imports installed"]
    assert line.startswith("WARN") and "not installed: matplotlib, numpy, PyJWT, python-dotenv;" in line, line


def test_a_pyproject_toml_that_does_not_parse_fails_bootstrap_instead_of_declaring_nothing(adopt):
    """A merge conflict left in pyproject.toml: its [project] table no longer reads as one."""
    broken = '[project\nname = "lib"\n<<<<<<< HEAD\ndependencies = ["six"]\n'
    project, _ = adopt({"pyproject.toml": broken, "analysis.ipynb": notebook("1")}, "broken")
    bootstrap = project.run("bootstrap", timeout=600)
    assert bootstrap.returncode == 1, bootstrap.output
    assert "pyproject.toml is not valid TOML" in bootstrap.stderr and "JupyterLab works without them" in bootstrap.stderr
    assert (project.root / ".jupyter_venv/bin/jupyter-lab").exists(), "JupyterLab first, whatever the project's files say"
    assert "deps:      failed" in project.run("status").stdout


def test_doctor_fails_when_notebooks_lie_outside_the_root_or_git_ignores_it(adopt):
    project, _ = adopt(
        {"notebooks/a.ipynb": notebook("1"), ".gitignore": "notebooks/\n"},
        "ignored",
    )
    (project.root / "stray.ipynb").write_text(notebook("2"))
    doctor = doctor_lines(project)
    assert doctor["notebooks inside JupyterLab's root"].startswith("FAIL")
    assert "stray.ipynb" in doctor["notebooks inside JupyterLab's root"]
    assert doctor["notebook folder tracked by git"].startswith("FAIL")
    assert "add !notebooks/)" in doctor["notebook folder tracked by git"]  # what git understands


def files_copier_wrote(project: Project) -> set[str]:
    """The template's files in a project whose scripts/ the template made."""
    scripts = {path.relative_to(project.root).as_posix() for path in (project.root / "scripts").rglob("*") if path.is_file()}
    return scripts | {".copier-answers.yml"}


def test_every_template_file_is_committed_whatever_the_projects_gitignore_ignores(adopt):
    """emcee's .gitignore has `venv*`, which matches scripts/venv_packages.py, and many
    projects ignore `*.sh`: adopted, `git add -A` still takes every file the template
    made (the managed block re-includes them; without it a colleague's clone lacks
    them), the project's own ignored files stay ignored, and doctor passes."""
    project, _ = adopt(
        {
            ".gitignore": "venv*\n*.sh\n",
            "analysis.ipynb": notebook("1"),
            "tools/build.sh": "make\n",
            "venv/lib/site.py": "",
        },
        "emcee",
    )
    rendered = files_copier_wrote(project)
    assert {"scripts/venv_packages.py", "scripts/app.sh", "scripts/app.d/doctor.sh"} <= rendered
    git(project.root, "add", "-A")
    tracked = set(git(project.root, "ls-files").split())
    assert sorted(rendered - tracked) == []
    assert "tools/build.sh" not in tracked and "venv/lib/site.py" not in tracked, "the project's own lines still apply"
    git(project.root, "commit", "-qm", "adopted jupyter-template")

    bootstrap = project.run("bootstrap", timeout=600)
    assert bootstrap.returncode == 0, bootstrap.output
    doctor = project.run("doctor", "--offline")
    assert doctor.returncode == 0, doctor.stdout
    assert "PASS  template files tracked by git" in doctor.stdout


@pytest.mark.shells
def test_doctor_names_a_template_file_git_ignores_and_the_command_that_tracks_it(adopt):
    """A line after the managed block wins over it (git honours the last match): doctor
    fails, naming the file a clone would lack and how to track it anyway."""
    project, _ = adopt({"analysis.ipynb": notebook("1")}, "latecomer")
    with (project.root / ".gitignore").open("a") as gitignore:
        gitignore.write("venv*\n")
    line = doctor_lines(project)["template files tracked by git"]
    assert line.startswith("FAIL") and "git ignores scripts/venv_packages.py," in line, line
    assert line.endswith("track them: git add -f scripts/venv_packages.py"), line
    git(project.root, "add", "-f", "scripts/venv_packages.py")
    assert doctor_lines(project)["template files tracked by git"].startswith("PASS")
    git(project.root, "add", "-A")
    assert sorted(files_copier_wrote(project) - set(git(project.root, "ls-files").split())) == []


def test_notebooks_git_ignores_and_build_output_do_not_decide_the_root(adopt):
    project, said = adopt(
        {
            "book/intro.ipynb": notebook("1"),
            "book/part/more.ipynb": notebook("2"),
            "_build/jupyter_execute/intro.ipynb": notebook("1"),  # Jupyter Book's executed copies
            "scratch/try.ipynb": notebook("3"),
            ".gitignore": "scratch/\n",
        },
        "book",
    )
    assert "JupyterLab's root is 'book'" in said
    assert "notebook_dir: book" in (project.root / ".copier-answers.yml").read_text()


def test_a_project_with_its_own_venv_gets_the_project_kernel_on_start(adopt):
    """The project had a .venv before the template (its own packages, no kernel spec of
    the project): start bootstraps rather than serve a page with no kernel, and the
    kernel runs that .venv, whose packages stay."""
    project, _ = adopt({"analysis.ipynb": notebook("import iniconfig; print('ok')"), ".gitignore": ".venv/\n"}, "ownvenv")
    subprocess.run(["uv", "venv", "-q", str(project.root / ".venv")], check=True)
    subprocess.run(["uv", "pip", "install", "-q", "--python", str(project.root / ".venv/bin/python"), "iniconfig==2.1.0"], check=True)
    status = project.run("status")
    assert "jupyter:   .jupyter_venv missing; run: scripts/app.sh bootstrap (start does)" in status.stdout, status.stdout
    assert "venv:      .venv (Python 3." in status.stdout, status.stdout
    started = project.run("start", "--no-open")
    assert started.returncode == 0, started.output
    assert ".jupyter_venv is not there yet: bootstrapping first" in started.stderr
    code, specs = project.api("GET", "/api/kernelspecs")
    assert code == 200 and list(specs["kernelspecs"]) == ["ownvenv"], specs
    assert open_and_run(project, "analysis.ipynb", "import iniconfig; print('ok')") == "ok\n", "what the venv held stays"


def test_a_new_notebook_dir_while_the_server_runs_is_taken_up_by_restart(adopt):
    """copier update -d notebook_dir=... while JupyterLab runs (README's way to change
    it): app.sh still knows its server, and restart moves it to the new root."""
    project, _ = adopt({"notebooks/a.ipynb": notebook("1"), "docs/examples/b.ipynb": notebook("2")}, "moving")
    assert project.run("start", "--no-open").returncode == 0
    old = project.server_pid()
    git(project.root, "add", "-A")
    git(project.root, "commit", "-qm", "adopted")
    updated = copier_cli("update", "--trust", "--defaults", "-d", "notebook_dir=docs/examples", cwd=project.root)
    assert updated.returncode == 0, updated.stderr
    status = project.run("status")
    assert status.returncode == 0 and f"server:    running (PID {old})" in status.stdout, status.output
    restarted = project.run("restart", "--no-open")
    assert restarted.returncode == 0, restarted.output
    assert f"stopped JupyterLab (PID {old})" in restarted.stderr and "not stopping" not in restarted.stderr
    assert not pid_alive(old)
    code, model = project.api("GET", "/api/contents/b.ipynb")
    assert code == 200 and model["type"] == "notebook", "the new root is docs/examples"


def test_a_project_of_another_copier_template_keeps_its_answers(adopt):
    """README: a project that another copier template made gives this one its own
    answers file (-a); the hooks and doctor use that file."""
    theirs = "# Changes here will be overwritten by Copier\n_commit: v1.2.3\n_src_path: gh:someone/python-template\nlicense: MIT\n"
    project, said = adopt(
        {".copier-answers.yml": theirs, "docs/examples/a.ipynb": notebook("1")}, "twotemplates", "-a", ".copier-answers.jupyter.yml"
    )
    assert "conflict" not in said and (project.root / ".copier-answers.yml").read_text() == theirs
    answers = (project.root / ".copier-answers.jupyter.yml").read_text()
    assert "notebook_dir: docs/examples" in answers and "_src_path" in answers
    assert "NOTEBOOK_SUBDIR=docs/examples" in project.app.read_text()
    assert "ANSWERS_FILE=.copier-answers.jupyter.yml" in project.app.read_text()
    assert "!/.copier-answers.jupyter.yml" in (project.root / ".gitignore").read_text().splitlines(), "tracked, whatever .gitignore says"
    assert doctor_lines(project)["notebooks inside JupyterLab's root"].startswith("PASS")
