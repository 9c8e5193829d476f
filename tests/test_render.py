"""Rendering the template: what `copier copy` puts in a project, and what it refuses.

Fast: no venv, no JupyterLab.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import TEMPLATE, TEST_PORTS, Project, render

SPEC_GITIGNORE = [".jupyter_config/", ".jupyter_data/", ".jupyter_runtime/", ".ipython/", ".cache/", ".logs/", ".run/"]


def test_a_new_project_gets_the_lifecycle_files(rendered: Project):
    root = rendered.root
    assert rendered.app.is_file()
    assert rendered.app.stat().st_mode & stat.S_IXUSR, "scripts/app.sh must be executable"
    assert (root / "notebooks").is_dir()
    assert (root / "requirements.txt").is_file()
    assert (root / "scripts/app.local.sh").is_file()
    assert not (root / "scripts/app.sh.new").exists(), "the copy-time name is put in place by the hook"
    lines = (root / ".gitignore").read_text().splitlines()
    for entry in [*SPEC_GITIGNORE, ".venv/"]:
        assert lines.count(entry) == 1, entry


def test_the_answers_file_records_every_question(rendered: Project):
    answers = yaml.safe_load((rendered.root / ".copier-answers.yml").read_text())
    assert answers["project_name"] == "demo"
    assert answers["display_name"] == "Demo"
    assert answers["port_range_start"] == TEST_PORTS["port_range_start"]
    assert answers["port_range_end"] == TEST_PORTS["port_range_end"]
    assert answers["_src_path"]


def test_defaults_derive_display_name_and_the_spec_port_range(copie):
    result = copie.copy(extra_answers={"project_name": "sales_report-2"})
    assert result.exit_code == 0 and result.exception is None, result.exception
    script = (Path(result.project_dir) / "scripts/app.sh").read_text()
    assert "DISPLAY_NAME='Sales Report 2'" in script
    assert "PORT_RANGE_START=8888\n" in script
    assert "PORT_RANGE_END=8899\n" in script


@pytest.mark.parametrize("name", ["MyProj", "1proj", "-proj", "my proj", "proj!", "", "é", "a" * 64])
def test_a_bad_project_name_is_refused_with_a_clear_message(copie, name):
    result = copie.copy(extra_answers={"project_name": name})
    assert result.exit_code != 0
    assert "not a valid project name" in str(result.exception)


@pytest.mark.parametrize(
    "answers, message",
    [
        ({"port_range_start": 80}, "1024-65535"),
        ({"port_range_start": 70000}, "1024-65535"),
        ({"port_range_start": 9000, "port_range_end": 8999}, "port range is empty"),
        ({"port_range_end": 65536}, "1024-65535"),
    ],
)
def test_a_bad_port_range_is_refused(copie, answers, message):
    result = copie.copy(extra_answers={"project_name": "demo", **answers})
    assert result.exit_code != 0
    assert message in str(result.exception)


def test_a_display_name_with_shell_characters_stays_a_plain_string(copie, tmp_path):
    nasty = "Bob's $(touch pwned) `x` \"quoted\""
    root = render(copie, display_name=nasty)
    out = subprocess.run(
        ["bash", "-c", 'source scripts/app.sh && printf "%s" "$DISPLAY_NAME"'],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == nasty
    assert not (root / "pwned").exists()


def test_the_script_passes_shellcheck(rendered: Project):
    subprocess.run(["shellcheck", "-x", "--severity=style", str(rendered.app)], check=True)


def test_the_script_is_shfmt_clean(rendered: Project):
    subprocess.run(["shfmt", "-d", str(rendered.app)], check=True)


# Constructs macOS's bash 3.2 or BSD tools lack (DEVELOPERS.md's list).
NOT_PORTABLE = {
    r"\bdeclare\s+-A\b|\blocal\s+-A\b": "associative arrays (bash 4)",
    r"\bmapfile\b|\breadarray\b": "mapfile/readarray (bash 4)",
    r"\$\{[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?(,,|\^\^|,|\^)": "case modification ${x,,} (bash 4)",
    r"\bwait\s+-n\b": "wait -n (bash 4.3)",
    r"&>>": "&>> (bash 4)",
    r"\|&": "|& (bash 4)",
    r"\[-1\]\}": "negative array index (bash 4.3)",
    r"\bsed\s+-i\b": "sed -i (GNU and BSD differ)",
    r"\breadlink\s+-f\b": "readlink -f (GNU only)",
    r"date\s+\+%N|%N": "date +%N (GNU only)",
    r"\bEPOCHREALTIME\b|\bEPOCHSECONDS\b": "EPOCHREALTIME (bash 5)",
    r"^\s*(setsid|flock|lsof|ss)\s": "setsid/flock/lsof/ss without a fallback",
}


def test_the_script_stays_within_bash_3_2_and_portable_tools(rendered: Project):
    problems = []
    for number, line in enumerate(rendered.app.read_text().splitlines(), 1):
        code = line.split(" #", 1)[0] if not line.lstrip().startswith("#") else ""
        for pattern, why in NOT_PORTABLE.items():
            if re.search(pattern, code):
                problems.append(f"line {number}: {why}: {line.strip()}")
    assert not problems, "\n".join(problems)


def test_the_script_body_is_not_jinja(rendered: Project):
    """Only the constants block is rendered; the body reads and lints as plain bash."""
    source = (TEMPLATE / "template/scripts/app.sh.jinja").read_text()
    head, _, body = source.partition("{% raw %}")
    assert "{% endraw" in body and "{{" not in body.split("{% endraw")[1]
    jinja_lines = [line for line in head.splitlines() if "{{" in line or "{%" in line]
    assert 0 < len(jinja_lines) <= 8, jinja_lines
    assert all(re.match(r"^[A-Z_]+=\{\{ .* \}\}$", line) for line in jinja_lines), "only constants are rendered"


def run_hook(cwd: Path) -> None:
    subprocess.run([sys.executable, str(TEMPLATE / "hooks/gitignore_block.py")], cwd=cwd, check=True)


def test_the_gitignore_hook_keeps_user_lines_and_is_idempotent(tmp_path):
    user = "# my stuff\n*.csv\n.venv\n/data/\n"
    (tmp_path / ".gitignore").write_text(user)
    run_hook(tmp_path)
    once = (tmp_path / ".gitignore").read_text()
    run_hook(tmp_path)
    assert (tmp_path / ".gitignore").read_text() == once
    assert once.startswith(user)
    lines = once.splitlines()
    for entry in SPEC_GITIGNORE:
        assert lines.count(entry) == 1, entry
    # The user already ignores the venv: the block does not repeat it.
    assert ".venv/" not in lines and lines.count(".venv") == 1


def test_the_gitignore_hook_rewrites_only_its_own_block(tmp_path):
    run_hook(tmp_path)
    text = (tmp_path / ".gitignore").read_text()
    edited = "top\n" + text.replace(".logs/\n", "") + "bottom\n"
    (tmp_path / ".gitignore").write_text(edited)
    run_hook(tmp_path)
    final = (tmp_path / ".gitignore").read_text().splitlines()
    assert final[0] == "top" and final[-1] == "bottom"
    assert final.count(".logs/") == 1


def test_copying_into_a_directory_keeps_its_requirements_txt(tmp_path):
    from copier import run_copy

    (tmp_path / "requirements.txt").write_text("numpy\n")
    run_copy(str(TEMPLATE), str(tmp_path), data={"project_name": "demo"}, defaults=True, unsafe=True, quiet=True)
    assert (tmp_path / "requirements.txt").read_text() == "numpy\n"
    assert (tmp_path / "scripts/app.sh").is_file()


@pytest.mark.parametrize("enabled", [False, True])
def test_server_side_execution_is_a_rendered_constant(copie, enabled):
    root = render(copie, server_side_execution=enabled)
    script = (root / "scripts/app.sh").read_text()
    assert f"SERVER_SIDE_EXECUTION={'true' if enabled else 'false'}\n" in script
    answers = yaml.safe_load((root / ".copier-answers.yml").read_text())
    assert answers["server_side_execution"] is enabled


def run_hook_named(name: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TEMPLATE / "hooks" / name)], cwd=cwd, check=True, capture_output=True, text=True)


def test_the_adopt_hook_keeps_a_hand_written_script_and_is_idempotent(tmp_path):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "app.sh").write_text("#!/bin/sh\necho mine\n")
    (scripts / "app.sh.pre-template").write_text("an older backup\n")
    (scripts / "app.sh.new").write_text("#!/bin/sh\n# Generated by jupyter-template\n")
    run_hook_named("adopt_app_sh.py", tmp_path)
    run_hook_named("adopt_app_sh.py", tmp_path)
    assert (scripts / "app.sh").read_text() == "#!/bin/sh\n# Generated by jupyter-template\n"
    assert os.access(scripts / "app.sh", os.X_OK)
    assert (scripts / "app.sh.pre-template").read_text() == "an older backup\n"
    assert (scripts / "app.sh.pre-template.1").read_text() == "#!/bin/sh\necho mine\n"
    assert not (scripts / "app.sh.new").exists()


def test_the_pid_file_migration_is_idempotent_and_never_overwrites(tmp_path):
    (tmp_path / ".run").mkdir()
    (tmp_path / ".run/jupyter.pid").write_text("123\n")
    run_hook_named("migrate_pid_file.py", tmp_path)
    run_hook_named("migrate_pid_file.py", tmp_path)
    assert (tmp_path / ".logs/jupyter.pid").read_text() == "123\n"
    assert not (tmp_path / ".run/jupyter.pid").exists()
    assert stat.S_IMODE((tmp_path / ".logs").stat().st_mode) == 0o700
    (tmp_path / ".run/jupyter.pid").write_text("456\n")
    run_hook_named("migrate_pid_file.py", tmp_path)
    assert (tmp_path / ".logs/jupyter.pid").read_text() == "123\n"
