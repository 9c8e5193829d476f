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

from conftest import TEMPLATE, TEST_PORTS, Project, git, render

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
    scripts = [rendered.app, *sorted(rendered.root.glob("scripts/app.d/*.sh"))]
    assert len(scripts) > 5, "app.sh and its parts in scripts/app.d/"
    subprocess.run(["shellcheck", "-x", "--severity=style", *map(str, scripts)], check=True)


def test_the_script_is_shfmt_clean(rendered: Project):
    subprocess.run(["shfmt", "-d", str(rendered.app), *map(str, sorted(rendered.root.glob("scripts/app.d/*.sh")))], check=True)


def test_every_part_of_the_script_is_loaded_and_only_defines(rendered: Project):
    """scripts/app.d/ holds app.sh's concerns, one file each: main loads every one of them
    (a part nobody loads is dead code), and none acts when loaded (traced while sourced)."""
    parts = sorted(path.stem for path in (rendered.root / "scripts/app.d").glob("*.sh"))
    script = rendered.app.read_text()
    checked = re.search(r'APP_PARTS="([^"]+)"', script).group(1).split()
    sourced = re.findall(r'source "\$PROJECT_ROOT/scripts/app\.d/([a-z_]+)\.sh"', script)
    assert sorted(checked) == sorted(sourced) == parts
    for part in parts:
        acting = [command for command in top_level_commands(rendered, f"scripts/app.d/{part}.sh") if not re.match(TOP_LEVEL_ALLOWED, command)]
        assert not acting, f"{part}.sh acts when loaded: {acting}"


# Constructs macOS's bash 3.2 or BSD tools lack: README promises "Bash 3.2 (macOS) and
# Linux" (issue 11). A fast early warning; the bash-3.2 leg of the end-to-end tests is the
# proof. Each entry: pattern, why, a line it must flag, a line it must pass
# (test_the_portability_lint_catches_each_construct).
NOT_PORTABLE = [
    (r"\b(declare|typeset|local)\s+-[a-zA-Z]*A", "associative arrays (bash 4)", "declare -A seen=()", "declare -a seen=()"),
    (r"\bmapfile\b|\breadarray\b", "mapfile/readarray (bash 4)", "mapfile -t lines <file", 'while read -r line; do lines+=("$line"); done <file'),
    (r"\$\{[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?(,,|\^\^|,|\^)", "case modification ${x,,} ${x^^} (bash 4)", 'echo "${name^^}"', 'echo "$(tr a-z A-Z <<<"$name")"'),
    (r"\$\{[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?@[A-Za-z]", "${x@Q} and other @ operators (bash 4.4)", 'echo "${args[@]@Q}"', 'printf "%q " "${args[@]}"'),
    (r"\[\[\s+-v\b", "[[ -v name ]] (bash 4.2; a parse error in 3.2)", "[[ -v PORT ]] && echo set", '[[ -n ${PORT+x} ]] && echo set'),
    (r"\b(declare|typeset|local)\s+-[a-zA-Z]*n", "namerefs: local -n (bash 4.3)", "local -n ref=$1", "local name=$1"),
    (r"\b(declare|typeset|local)\s+-[a-zA-Z]*g", "declare -g (bash 4.2)", "declare -g COUNT=0", "declare -r COUNT=0"),
    (r"\bprintf\s+-v\s+[\"']?[A-Za-z_][A-Za-z0-9_]*\[", "printf -v into an array element (bash 4.1)", "printf -v 'ports[i]' %d 8888", "printf -v port %d 8888"),
    (r"\bwait\s+-n\b", "wait -n (bash 4.3)", "wait -n", 'wait "$pid"'),
    (r"&>>", "&>> (bash 4; a parse error in 3.2)", "make &>>build.log", "make >>build.log 2>&1"),
    (r"\|&", "|& (bash 4; a parse error in 3.2)", "make |& tee log", "make 2>&1 | tee log"),
    (r"\$\{[A-Za-z_][A-Za-z0-9_]*\[\s*-[0-9]", "negative array index (bash 4.3)", 'echo "${args[-1]}"', 'echo "${args[${#args[@]}-1]}"'),
    # Bash 3.2 cannot parse an unquoted `(`, `)` or `|` in the regex of [[ =~ ]]; put the
    # regex in a variable: re='a(b|c)'; [[ $x =~ $re ]] (quoted, it would match literally).
    (r"=~\s+(?![\"'])(?:\\.|[^\s\\()|\"'])*[()|]", "unquoted ( ) | in a [[ =~ ]] regex (a parse error in 3.2)", "[[ $1 =~ ^(lab|server)$ ]]", "[[ $1 =~ $server_re || $1 =~ ^[0-9]{1,5}$ ]]"),
    (r"\bsed\s+-i\b", "sed -i (GNU and BSD differ)", "sed -i 's/a/b/' file", "sed 's/a/b/' file >file.new"),
    (r"\breadlink\s+-f\b", "readlink -f (GNU only)", 'readlink -f "$0"', 'readlink -- "$0"'),
    (r"date\s+\+%N|%N", "date +%N (GNU only)", "date +%s%N", "date +%s"),
    (r"\bEPOCHREALTIME\b|\bEPOCHSECONDS\b", "EPOCHREALTIME (bash 5)", "start=$EPOCHREALTIME", "start=$SECONDS"),
    (r"^\s*(setsid|flock|lsof|ss)\s", "setsid/flock/lsof/ss without a fallback", "lsof -i :8888", "command -v lsof >/dev/null && lsof -i :8888"),
]


def portability_problems(text: str) -> list[str]:
    problems = []
    for number, line in enumerate(text.splitlines(), 1):
        code = line.split(" #", 1)[0] if not line.lstrip().startswith("#") else ""
        for pattern, why, _, _ in NOT_PORTABLE:
            if re.search(pattern, code):
                problems.append(f"line {number}: {why}: {line.strip()}")
    return problems


@pytest.mark.parametrize("pattern, why, bad, good", NOT_PORTABLE, ids=[why.split(" (")[0] for _, why, _, _ in NOT_PORTABLE])
def test_the_portability_lint_catches_each_construct(pattern, why, bad, good):
    assert re.search(pattern, bad), f"misses: {bad}"
    assert not portability_problems(good), f"flags the portable way: {good}"


def is_shell_script(path: Path) -> bool:
    first_line = path.read_bytes()[:200].split(b"\n")[0]
    return path.suffix == ".sh" or bool(re.match(rb"#!.*\b(ba)?sh\b", first_line))


def shell_files(project: Project) -> list[Path]:
    """Every shell script a rendered project gets, then the repository's own."""
    rendered = sorted(path for path in project.root.rglob("*") if path.is_file() and is_shell_script(path))
    return [*rendered, TEMPLATE / ".ci/run", TEMPLATE / "tests/tools/bash-3.2/build.sh"]


def test_the_scripts_stay_within_bash_3_2_and_portable_tools(rendered: Project):
    files = shell_files(rendered)
    assert rendered.app in files and rendered.root / "scripts/app.local.sh" in files
    problems = [f"{path.name} {problem}" for path in files for problem in portability_problems(path.read_text())]
    assert not problems, "\n".join(problems)


@pytest.mark.bash32
def test_the_scripts_parse_under_bash_3_2(rendered: Project, bash32):
    for path in shell_files(rendered):
        parsed = subprocess.run([bash32, "-n", str(path)], capture_output=True, text=True)
        assert parsed.returncode == 0, f"{path.name} does not parse under bash 3.2:\n{parsed.stderr}"


# --- a script that cannot run never looks like success ------------------------------------
# Bash reads a script one top-level command at a time and runs each before reading the
# next, so a parse error further down stops it only after the commands above ran. It then
# exits 2, except that bash 3.2, when an EXIT trap is set, exits with the trap's status:
# 0 (an EXIT trap at the top of app.sh made every command print the error and "succeed"
# under bash 3.2; issue 11). What guarantees exit 2 with nothing done: before the last
# compound command (which calls main), the script only assigns variables, sets shell
# options and defines functions; traps are set in main, which runs once bash has parsed
# everything. (A body wrapped in one `{ ...; }` group would also do: bash parses a group
# whole before running any of it.)
FINAL_IF = '\nif [[ "${BASH_SOURCE[0]}" == "$0" ]]; then\n'
TOP_LEVEL_ALLOWED = r'[A-Za-z_][A-Za-z0-9_]*=|readonly [A-Za-z_]|set -[euo]+ pipefail$|source |\[\[ "\$\{BASH_SOURCE\[0\]\}" == "\$0" \]\]$'


def top_level_commands(project: Project, script: str) -> list[str]:
    """The commands bash runs while it sources SCRIPT (a DEBUG trace)."""
    return subprocess.run(
        ["bash", "-c", f'exec 3>&1 >/dev/null; set -T; trap \'printf "%s\\n" "$BASH_COMMAND" >&3\' DEBUG; source {script}'],
        cwd=project.root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()


def test_before_main_runs_the_script_only_defines_and_assigns(rendered: Project):
    """The top-level commands that run when bash reads app.sh (traced while sourcing it):
    none may set a trap or act, or a parse error below it would not fail the command."""
    script = rendered.app.read_text()
    assert FINAL_IF in script, "app.sh no longer ends by calling main from its last compound command"
    tail = [line.strip() for line in script.split(FINAL_IF)[-1].splitlines() if line.strip() and not line.strip().startswith("#")]
    assert tail[0] == 'main "$@"' and set(tail[1:]) <= {"exit", 'exit "$?"', "fi", "}"}, tail
    traced = top_level_commands(rendered, "scripts/app.sh")
    acting = [command for command in traced if not re.match(TOP_LEVEL_ALLOWED, command)]
    assert not acting, f"top-level commands before main: {acting}"
    assert len(traced) > 10, traced


SYNTAX_ERRORS = {
    # Parses in bash 4 and later, so shellcheck, shfmt and a modern bash -n miss it.
    "bash-3.2-only": "parse_guard_probe() { [[ $1 =~ a(b|c) ]]; }",
    "any-bash": "parse_guard_probe() { if; }",
}


@pytest.mark.parametrize(
    "bash_name, error",
    [
        pytest.param("bash-3.2", "bash-3.2-only", marks=pytest.mark.bash32),
        pytest.param("bash-3.2", "any-bash", marks=pytest.mark.bash32),
        pytest.param("bash", "any-bash"),
    ],
)
def test_a_script_that_cannot_parse_fails_every_command(rendered: Project, request, bash_name, error):
    """A syntax error at the last top-level position, where every top-level command has
    run: no command may exit 0, print its output, or pass for a valid status (3, 4)."""
    binary = request.getfixturevalue("bash32") if bash_name == "bash-3.2" else "bash"
    text = rendered.app.read_text()
    assert FINAL_IF in text
    head, _, tail = text.rpartition(FINAL_IF)
    rendered.app.write_text(f"{head}\n{SYNTAX_ERRORS[error]}{FINAL_IF}{tail}")
    for command in ("--version", "help", "status", "stop"):
        result = subprocess.run([binary, str(rendered.app), command], cwd=rendered.root, capture_output=True, text=True, timeout=60)
        assert result.returncode not in (0, 3, 4), f"{command}: exit {result.returncode}\n{result.stderr}"
        assert result.stdout == "", f"{command} ran: {result.stdout}"
        assert "syntax error" in result.stderr


def test_the_github_workflows_pass_actionlint():
    """.github/workflows runs on GitHub only (macOS among others): linted here, where installed."""
    workflows = sorted(TEMPLATE.glob(".github/workflows/*.y*ml"))
    assert TEMPLATE / ".github/workflows/ci.yml" in workflows
    actionlint = os.environ.get("ACTIONLINT") or shutil.which("actionlint")
    if not actionlint:
        pytest.skip("actionlint is not installed: uv sync --group lint (its build downloads it from GitHub), or ACTIONLINT=path")
    linted = subprocess.run([actionlint, *map(str, workflows)], cwd=TEMPLATE, capture_output=True, text=True)
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_the_script_body_is_not_jinja(rendered: Project):
    """Only the constants block is rendered; the body reads and lints as plain bash."""
    source = (TEMPLATE / "template/scripts/app.sh.jinja").read_text()
    head, _, body = source.partition("{% raw %}")
    assert "{% endraw" in body and "{{" not in body.split("{% endraw")[1]
    jinja_lines = [line for line in head.splitlines() if "{{" in line or "{%" in line]
    assert 0 < len(jinja_lines) <= 9, jinja_lines
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


def test_the_gitignore_block_keeps_every_template_file_tracked_even_in_an_ignored_folder(rendered: Project):
    """git cannot re-include a file whose folder is excluded: a project that ignores
    scripts/ (or every .py, .sh and .yml) still commits every file the template renders,
    since the block re-includes the folders too."""
    root = rendered.root
    gitignore = root / ".gitignore"
    gitignore.write_text("scripts/\n*.py\n*.sh\n*.yml\n" + gitignore.read_text())
    subprocess.run([sys.executable, str(TEMPLATE / "hooks/gitignore_block.py")], cwd=root, check=True)
    template_files = {path.relative_to(root).as_posix() for path in (root / "scripts").rglob("*") if path.is_file()}
    assert len(template_files) > 10 and "scripts/venv_packages.py" in template_files
    git(root, "init", "-q")
    git(root, "add", "-A")
    tracked = set(git(root, "ls-files").split())
    assert sorted((template_files | {".copier-answers.yml"}) - tracked) == []


def copier_copy_output(destination: Path) -> str:
    """What `copier copy` prints into DESTINATION, as a user runs it."""
    result = subprocess.run(
        [sys.executable, "-m", "copier", "copy", "--trust", "--defaults", "-d", "project_name=demo", str(TEMPLATE), str(destination)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def test_copying_into_a_directory_keeps_its_requirements_txt_and_says_nothing_alarming(tmp_path):
    (tmp_path / "requirements.txt").write_text("numpy\n")
    output = copier_copy_output(tmp_path)
    assert (tmp_path / "requirements.txt").read_text() == "numpy\n"
    assert (tmp_path / "scripts/app.sh").is_file()
    assert "conflict" not in output and "skip" not in output, output


@pytest.mark.parametrize("table", ["[project]", "[build-system]"])
def test_no_requirements_txt_beside_a_pyproject_toml_that_declares_dependencies(tmp_path, table):
    (tmp_path / "pyproject.toml").write_text(f'{table}\nname = "demo"\n')
    output = copier_copy_output(tmp_path)
    assert not (tmp_path / "requirements.txt").exists()
    assert "pyproject.toml declares the dependencies" in output


def test_a_pyproject_toml_for_tools_only_still_gets_a_requirements_txt(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.ruff]\nline-length = 100\n")
    copier_copy_output(tmp_path)
    assert "This file is yours" in (tmp_path / "requirements.txt").read_text()


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


@pytest.mark.parametrize(
    "bash_name, error",
    [
        pytest.param("bash-3.2", "bash-3.2-only", marks=pytest.mark.bash32),
        pytest.param("bash", "any-bash"),
    ],
)
def test_a_part_that_cannot_parse_fails_every_command_that_loads_it(rendered: Project, request, bash_name, error):
    """The same guarantee for scripts/app.d/: main loads the parts before anything acts."""
    binary = request.getfixturevalue("bash32") if bash_name == "bash-3.2" else "bash"
    part = rendered.root / "scripts/app.d/doctor.sh"
    part.write_text(part.read_text() + "\n" + SYNTAX_ERRORS[error] + "\n")
    for command in ("status", "stop", "doctor"):
        result = subprocess.run([binary, str(rendered.app), command], cwd=rendered.root, capture_output=True, text=True, timeout=60)
        assert result.returncode not in (0, 3, 4), f"{command}: exit {result.returncode}\n{result.stderr}"
        assert result.stdout == "" and "syntax error" in result.stderr, result.stderr
