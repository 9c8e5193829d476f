"""Existing projects and `copier update`: adopt the conventions without losing a line,
then resync from every later version. Real copier CLI, real git, real servers.

These tests work on temporary clones of the template: untagged ones, as users get
them (only `main` is pushed, so copier versions each commit 0.0.0.postN), and ones
where they make the tags (and later versions) they need, as a release would.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TEMPLATE, TEST_PORTS, Project, port, git, leave_nothing_behind, pid_alive, process_table

pytestmark = pytest.mark.slow

LEGACY_PORT = port(42)  # the legacy script's fixed port, outside the range
LEGACY_APP_SH = """#!/usr/bin/env bash
# A hand-written lifecycle script, as projects had before the template (spec v1.0
# snippets, PID file in .run/ as section 4 allows, a notebook directory relative to
# the project).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export JUPYTER_CONFIG_DIR="$ROOT/.jupyter_config" JUPYTER_DATA_DIR="$ROOT/.jupyter_data"
export JUPYTER_RUNTIME_DIR="$ROOT/.jupyter_runtime" IPYTHONDIR="$ROOT/.ipython"
export MPLCONFIGDIR="$ROOT/.cache/matplotlib"
mkdir -p "$ROOT/.run" "$ROOT/.logs"
cd "$ROOT"
nohup "$JUPYTER" lab --port=LEGACY_PORT --no-browser --ip=127.0.0.1 --allow-root \\
  --notebook-dir=notebooks > .logs/legacy.log 2>&1 &
echo $! > .run/jupyter.pid
""".replace("LEGACY_PORT", str(LEGACY_PORT))


def copier_cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """The copier command line, as a user runs it: no TTY."""
    return subprocess.run(
        [sys.executable, "-m", "copier", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )


def commit_all(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-qm", message, "--allow-empty")


@pytest.fixture
def releases(template_repo: Path, tmp_path: Path):
    """A clone of the template to cut releases from: release(tag, change) commits
    `change(clone)` (if any) and tags it."""
    clone = tmp_path / "template-clone"
    git(tmp_path, "clone", "-q", str(template_repo), str(clone))

    def release(tag: str, change=None) -> Path:
        if change is not None:
            change(clone)
            commit_all(clone, f"release {tag}")
        git(clone, "tag", tag)
        return clone

    return release


def conflict_leftovers(root: Path) -> list[str]:
    """Files a failed merge leaves: .rej/.orig files, conflict markers."""
    found = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = [d for d in subdirs if d not in (".venv", ".jupyter_venv", ".git")]
        for name in files:
            path = Path(directory) / name
            if name.endswith((".rej", ".orig")):
                found.append(str(path))
            elif path.is_file() and path.stat().st_size < 1_000_000:
                text = path.read_text(errors="replace")
                if "<<<<<<< " in text or ">>>>>>> " in text:
                    found.append(str(path))
    return found


def test_an_existing_project_adopts_the_template_without_losing_a_line(template_repo, bootstrapped_project, tmp_path):
    root = tmp_path / "legacy"
    (root / "scripts").mkdir(parents=True)
    (root / "notebooks").mkdir()
    user_files = {
        ".gitignore": "# mine\n*.csv\n.venv\n",
        "README.md": "# Legacy analysis\n",
        "requirements.txt": "iniconfig==2.1.0\n",
        "notebooks/analysis.ipynb": json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}),
        "scripts/app.sh": LEGACY_APP_SH,
    }
    for name, text in user_files.items():
        (root / name).write_text(text)
    (root / "scripts/app.sh").chmod(0o755)
    git(root, "init", "-q")
    commit_all(root, "legacy project")

    # The old script's server is running when the user adopts the template.
    jupyter = str(bootstrapped_project.root / ".jupyter_venv/bin/jupyter")
    subprocess.run([str(root / "scripts/app.sh")], env={**os.environ, "JUPYTER": jupyter}, check=True)
    legacy_pid = int((root / ".run/jupyter.pid").read_text())
    project = Project(root)
    try:
        deadline = time.monotonic() + 60
        while not (root / f".jupyter_runtime/jpserver-{legacy_pid}.json").exists():
            assert time.monotonic() < deadline and pid_alive(legacy_pid), "the legacy server did not start"
            time.sleep(0.2)

        result = copier_cli("copy", "--trust", "--defaults", "-d", "project_name=legacy", "-d", f"port_range_start={LEGACY_PORT}",
                            "-d", f"port_range_end={port(51)}", str(template_repo), ".", cwd=root)
        assert result.returncode == 0, result.stderr

        # Nothing the user wrote is overwritten or lost.
        for name in ("README.md", "requirements.txt", "notebooks/analysis.ipynb"):
            assert (root / name).read_text() == user_files[name], name
        assert (root / "scripts/app.sh.pre-template").read_text() == LEGACY_APP_SH
        assert "kept your previous scripts/app.sh" in result.stderr
        gitignore = (root / ".gitignore").read_text()
        assert gitignore.startswith(user_files[".gitignore"])
        assert gitignore.splitlines().count(".logs/") == 1 and ".venv/" not in gitignore.splitlines()
        assert "Generated by jupyter-template" in project.app.read_text()
        assert not (root / "scripts/app.sh.new").exists()

        # The new script sees the old server through spec 4's other PID file, and stops it.
        status = project.run("status")
        assert status.returncode == 0, status.output
        assert f"running (PID {legacy_pid})" in status.stdout
        stop = project.run("stop")
        assert stop.returncode == 0 and f"stopped JupyterLab (PID {legacy_pid})" in stop.stderr
        assert not pid_alive(legacy_pid)
        assert not (root / ".run/jupyter.pid").exists()

        # Bootstrap installs the project's own dependencies and warns about a kernel of
        # the same name in the user's kernel directory (spec 2's collision).
        home = tmp_path / "home"
        (home / ".local/share/jupyter/kernels/legacy").mkdir(parents=True)
        env = {"HOME": str(home)}
        boot = project.run("bootstrap", env=env)
        assert boot.returncode == 0, boot.output
        assert "requirements.txt" in boot.stderr
        assert "jupyter kernelspec remove legacy" in boot.stderr
        assert subprocess.run([str(root / ".venv/bin/python"), "-c", "import iniconfig"]).returncode == 0

        doctor = project.run("doctor", env=env)
        assert doctor.returncode == 1
        assert "FAIL  no kernel of that name for the user (spec 2)" in doctor.stdout
        commit_all(root, "adopted jupyter-template")
        healthy = project.run("doctor")
        assert healthy.returncode == 0, healthy.stdout
        assert "FAIL" not in healthy.stdout
    finally:
        leave_nothing_behind(project)


def test_bootstrap_reads_dependencies_from_pyproject_toml(make_project):
    project = make_project("pyproj", bootstrapped=False)
    (project.root / "pyproject.toml").write_text('[project]\nname = "pyproj"\nversion = "0"\ndependencies = ["iniconfig==2.1.0"]\n')
    result = project.run("bootstrap")
    assert result.returncode == 0, result.output
    assert "pyproject.toml" in result.stderr
    assert subprocess.run([str(project.root / ".venv/bin/python"), "-c", "import iniconfig"]).returncode == 0


def change_script_comment(clone: Path) -> None:
    script = clone / "template/scripts/app.sh.jinja"
    text = script.read_text()
    script.write_text(text.replace("# --- main ---", "# --- main (new release) ---", 1))


def render_at(template: Path, tag: str, root: Path, **answers) -> Project:
    data = {"project_name": root.name, **TEST_PORTS, **answers}
    args = ["copy", "--trust", "--defaults", "--vcs-ref", tag]
    for key, value in data.items():
        args += ["-d", f"{key}={value}"]
    result = copier_cli(*args, str(template), str(root), cwd=root.parent)
    assert result.returncode == 0, result.stderr
    git(root, "init", "-q")
    commit_all(root, f"rendered at {tag}")
    return Project(root)


def test_update_keeps_customisations_without_conflicts(releases, tmp_path):
    old = releases("v1.0.0")
    project = render_at(old, "v1.0.0", tmp_path / "custom")
    assert "jupyter-template v1.0.0" in project.run("--version").stdout

    # Customised the documented way, plus the user's own ignore lines.
    local = project.root / "scripts/app.local.sh"
    local.write_text(local.read_text() + "JUPYTER_EXTRA_ARGS+=(--ServerApp.iopub_msg_rate_limit=4321)\n")
    with open(project.root / ".gitignore", "a") as gitignore:
        gitignore.write("data/\n")
    commit_all(project.root, "customised")

    releases("v1.1.0", change_script_comment)
    doctor = project.run("doctor")
    assert "FAIL  template up to date" in doctor.stdout and "copier update" in doctor.stdout

    result = copier_cli("update", "--trust", "--defaults", cwd=project.root)
    assert result.returncode == 0, result.stderr
    assert conflict_leftovers(project.root) == []
    assert "--ServerApp.iopub_msg_rate_limit=4321" in local.read_text()
    assert "data/" in (project.root / ".gitignore").read_text().splitlines()
    assert "# --- main (new release) ---" in project.app.read_text()
    assert "jupyter-template v1.1.0" in project.run("--version").stdout
    assert "jupyter-template v1.1.0" in project.run("status").stdout
    commit_all(project.root, "updated")
    assert "PASS  template up to date" in project.run("doctor").stdout


def untagged_clone(template_repo: Path, tmp_path: Path) -> Path:
    """A clone of the template as users get it: `main` only, no tags (copier then
    versions each commit 0.0.0.postN)."""
    clone = tmp_path / "untagged-clone"
    git(tmp_path, "clone", "-q", str(template_repo), str(clone))
    assert git(clone, "tag", "--list").strip() == ""
    return clone


def add_a_block_entry(clone: Path) -> None:
    """A template change inside the managed block: one more entry in its venv section."""
    hook = clone / "hooks/gitignore_block.py"
    text = hook.read_text()
    changed = text.replace('(".venv/",)', '(".venv/", ".uv-cache/")', 1)
    assert changed != text, "hooks/gitignore_block.py no longer lists .venv/ as this test expects"
    hook.write_text(changed)


def unmerged_paths(root: Path) -> list[str]:
    return git(root, "diff", "--name-only", "--diff-filter=U").split()


@pytest.mark.parametrize("change", ["script-only", "managed-block"])
@pytest.mark.parametrize("conflict", ["inline", "rej"])
def test_update_in_either_conflict_mode_leaves_no_rej_and_no_markers(conflict, change, template_repo, tmp_path):
    """An adopted project whose .gitignore has the user's lines on both sides of the
    managed block (and lists .venv itself, so the block leaves it out), customised the
    way the README says: `copier update --conflict inline|rej` must leave neither
    .rej files nor conflict markers, whether or not the block changed."""
    clone = untagged_clone(template_repo, tmp_path)
    root = tmp_path / "adopted"
    (root / "scripts").mkdir(parents=True)
    (root / ".gitignore").write_text("# mine\n*.csv\n.venv\n")
    (root / "README.md").write_text("# Legacy analysis\n")
    (root / "scripts/app.sh").write_text(LEGACY_APP_SH)
    git(root, "init", "-q")
    commit_all(root, "legacy project")
    data = {"project_name": "adopted", **TEST_PORTS}
    args = [arg for key, value in data.items() for arg in ("-d", f"{key}={value}")]
    result = copier_cli("copy", "--trust", "--defaults", "--vcs-ref", "HEAD", *args, str(clone), ".", cwd=root)
    assert result.returncode == 0, result.stderr
    local = root / "scripts/app.local.sh"
    local.write_text(local.read_text() + "JUPYTER_EXTRA_ARGS+=(--ServerApp.iopub_msg_rate_limit=4321)\n")
    with open(root / ".gitignore", "a") as gitignore:
        gitignore.write("my-data/\n")
    commit_all(root, "adopted and customised")

    change_script_comment(clone)
    if change == "managed-block":
        add_a_block_entry(clone)
    commit_all(clone, f"template change: {change}")

    result = copier_cli("update", "--trust", "--defaults", "--conflict", conflict, cwd=root)
    assert result.returncode == 0, result.stderr
    assert conflict_leftovers(root) == []
    assert unmerged_paths(root) == []
    lines = (root / ".gitignore").read_text().splitlines()
    assert lines[:3] == ["# mine", "*.csv", ".venv"] and lines[-1] == "my-data/", lines
    assert lines.count(".logs/") == 1 and ".venv/" not in lines, lines
    assert lines.count(".uv-cache/") == (1 if change == "managed-block" else 0), lines
    assert "# --- main (new release) ---" in (root / "scripts/app.sh").read_text()
    assert (root / "scripts/app.sh.pre-template").read_text() == LEGACY_APP_SH
    assert "--ServerApp.iopub_msg_rate_limit=4321" in local.read_text()


def test_migrations_run_on_every_update_without_tags_and_are_idempotent(template_repo, tmp_path):
    """Clones carry no tags, so a migration gated on a version never runs there: the
    PID-file move must happen on an update between two untagged commits, and a second
    update must change nothing."""
    clone = untagged_clone(template_repo, tmp_path)
    project = render_at(clone, "HEAD", tmp_path / "untagged")
    # The old layout: an older script kept the server's PID at .run/jupyter.pid.
    (project.root / ".run").mkdir()
    (project.root / ".run/jupyter.pid").write_text("4242\n")

    change_script_comment(clone)
    commit_all(clone, "a newer template commit")
    result = copier_cli("update", "--trust", "--defaults", cwd=project.root)
    assert result.returncode == 0, result.stderr
    assert "moved .run/jupyter.pid to .logs/jupyter.pid" in result.stderr
    assert project.pid_file.read_text() == "4242\n"
    assert not (project.root / ".run/jupyter.pid").exists()
    assert conflict_leftovers(project.root) == []
    commit_all(project.root, "updated")
    before = project.pid_file.stat()

    result = copier_cli("update", "--trust", "--defaults", cwd=project.root)
    assert result.returncode == 0, result.stderr
    assert "moved" not in result.stderr
    assert git(project.root, "status", "--porcelain", "--untracked-files=all").strip() == ""
    after = project.pid_file.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert project.pid_file.read_text() == "4242\n"
    assert not (project.root / ".run/jupyter.pid").exists()


def test_the_customisation_home_reaches_the_server_but_not_its_guarantees(make_project):
    project = make_project("extra-args")
    local = project.root / "scripts/app.local.sh"
    original = local.read_text()
    local.write_text(original + "JUPYTER_EXTRA_ARGS+=(--ServerApp.iopub_msg_rate_limit=4321)\n")
    project.start()
    args = dict((p, a) for p, _, a in process_table())[project.server_pid()]
    assert "--ServerApp.iopub_msg_rate_limit=4321" in args
    project.run("stop")

    for forbidden in ("--ip=0.0.0.0", "--ServerApp.token=", "--port=9999", "--IdentityProvider.token=x"):
        local.write_text(original + f"JUPYTER_EXTRA_ARGS+=({forbidden})\n")
        result = project.run("start", "--no-open")
        assert result.returncode == 1, forbidden
        assert f"JUPYTER_EXTRA_ARGS may not set {forbidden.split('=')[0]}" in result.stderr
        assert not project.pid_file.exists()


def test_a_broken_local_config_is_a_clear_error_that_only_start_refuses(rendered):
    (rendered.root / "scripts/app.local.sh").write_text("false\n")
    result = rendered.run("start", "--no-open")
    assert result.returncode == 1
    assert "error: scripts/app.local.sh failed (status 1)" in result.stderr
    assert not (rendered.root / ".logs/jupyter.pid").exists()
    result = rendered.run("status")  # looking (and stopping) still works
    assert result.returncode == 3
    assert "warning: scripts/app.local.sh failed (status 1)" in result.stderr


def test_app_local_sh_is_run_as_a_users_shell_file_and_never_pollutes_stdout(rendered):
    """Unset variables are empty there (PYTHONPATH=$PYTHONPATH:...), and what it prints
    goes to stderr: stdout carries the URL and status --json."""
    local = rendered.root / "scripts/app.local.sh"
    original = local.read_text()
    local.write_text(original + 'export PYTHONPATH=$PYTHONPATH:/opt/lib\necho "hello from app.local.sh"\nshopt -s failglob\n')
    result = rendered.run("status", "--json")
    assert result.returncode == 3, result.output
    assert json.loads(result.stdout)["server"] == "not running"
    assert "hello from app.local.sh" in result.stderr and "unbound" not in result.stderr
    assert "no match" not in result.stderr, "its shell options stay its own"
    assert rendered.run("stop").returncode == 0
    # An exit there would end app.sh silently: it is an error that names the file.
    local.write_text(original + "exit 0\n")
    result = rendered.run("stop")
    assert result.returncode == 1 and "scripts/app.local.sh called exit" in result.stderr, result.output


def test_bootstrap_never_clears_a_venv_it_did_not_make(rendered, tmp_path):
    """A .venv of the project's own whose python does not run, or a link to one
    elsewhere: bootstrap says how to proceed and leaves every file where it is."""
    venv = rendered.root / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin/python").symlink_to("/nonexistent/python3")
    (venv / "USERFILE").write_text("mine\n")
    result = rendered.run("bootstrap")
    assert result.returncode == 1 and "never clears it" in result.stderr, result.output
    assert (venv / "USERFILE").read_text() == "mine\n"
    shared = tmp_path / "shared-venv"
    venv.rename(shared)
    venv.symlink_to(shared)
    result = rendered.run("bootstrap")
    assert result.returncode == 1 and "(a link)" in result.stderr, result.output
    assert (shared / "USERFILE").read_text() == "mine\n"


def test_the_v1_migration_moves_a_running_servers_pid_file(releases, tmp_path):
    old = releases("v0.9.0")
    project = render_at(old, "v0.9.0", tmp_path / "migrating")
    try:
        # An older script kept the running server's PID at .run/jupyter.pid.
        project.start()
        pid = project.server_pid()
        (project.root / ".run").mkdir()
        project.pid_file.rename(project.root / ".run/jupyter.pid")
        commit_all(project.root, "server running, PID in .run/")

        releases("v1.0.0", change_script_comment)
        result = copier_cli("update", "--trust", "--defaults", cwd=project.root)
        assert result.returncode == 0, result.stderr
        assert "moved .run/jupyter.pid to .logs/jupyter.pid" in result.stderr
        assert conflict_leftovers(project.root) == []
        assert project.server_pid() == pid
        status = project.run("status")
        assert status.returncode == 0 and f"running (PID {pid})" in status.stdout
        assert project.run("stop").returncode == 0
        assert not pid_alive(pid)
    finally:
        leave_nothing_behind(project)


# Release tag -> the commit CHANGELOG.md says it points at; and the tags this checkout has.
CHANGELOG_RELEASES = dict(
    re.findall(r"^## (v\d+\.\d+\.\d+) \(.*commit ([0-9a-f]{40})\)$", (TEMPLATE / "CHANGELOG.md").read_text(), re.MULTILINE)
)
TAGS = git(TEMPLATE, "tag", "--list", "v*").split()
RELEASED = sorted(set(CHANGELOG_RELEASES) | set(TAGS))


def test_every_release_is_in_the_changelog_with_the_commit_its_tag_names():
    assert CHANGELOG_RELEASES, "CHANGELOG.md lists no release"
    for tag in TAGS:
        assert tag in CHANGELOG_RELEASES, f"tag {tag} has no '## {tag} (date, commit SHA)' entry in CHANGELOG.md"
        assert git(TEMPLATE, "rev-parse", f"{tag}^{{commit}}").strip() == CHANGELOG_RELEASES[tag], tag


# Files a release rendered that HEAD no longer needs, with why: `copier update` deletes
# what a newer release stops rendering, so every other file must be kept by the update
# (copier.yml's _exclude). None yet.
RETIRED_FILES: dict[str, str] = {}


@pytest.mark.parametrize("tag", RELEASED)
def test_every_released_version_updates_cleanly_to_head(tag, template_repo, tmp_path):
    """A project made at any release updates to HEAD without a conflict, keeping the
    user's lines and every file the release made that the project still needs: the
    empty notebooks/ (JupyterLab's root) and its .gitkeep, the user's requirements.txt."""
    clone = tmp_path / "released"
    git(tmp_path, "clone", "-q", str(TEMPLATE), str(clone))
    if not git(clone, "tag", "--list", tag).strip():
        # This checkout came without tags: recreate the release from the changelog.
        commit = CHANGELOG_RELEASES[tag]
        if subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=clone).returncode != 0:
            if git(TEMPLATE, "rev-parse", "--is-shallow-repository").strip() == "true":
                pytest.skip(f"{tag} ({commit[:7]}) is not in this shallow clone; .ci/run fetches it where it can")
            raise AssertionError(f"CHANGELOG.md names commit {commit} for {tag}, not in this repository")
        git(clone, "tag", tag, commit)
    project = render_at(clone, tag, tmp_path / "from-release")
    rendered = set(git(project.root, "ls-files").split()) - set(RETIRED_FILES)
    # The release rendered requirements.txt; the user lists a package in it. HEAD no
    # longer renders the file, and copier deletes what a release stops rendering
    # unless the new release excludes it.
    requirements = project.root / "requirements.txt"
    requirements.write_text(requirements.read_text() + "six\n")
    commit_all(project.root, "a dependency")
    # HEAD is the template as it is in the working tree (template_repo), committed on
    # top of the clone's history, so copier sees a version after the release.
    git(clone, "fetch", "-q", str(template_repo), "HEAD")
    git(clone, "read-tree", "-u", "--reset", "FETCH_HEAD")
    commit_all(clone, "the working tree")
    git(clone, "checkout", "-q", "--detach")
    result = copier_cli("update", "--trust", "--defaults", "--vcs-ref", "HEAD", cwd=project.root)
    assert result.returncode == 0, result.stderr
    assert conflict_leftovers(project.root) == []
    assert requirements.read_text().splitlines()[-1] == "six"
    assert sorted(name for name in rendered if not (project.root / name).exists()) == []
    assert (project.root / "notebooks").is_dir()
