"""app.sh's command-line contract on a project that was never bootstrapped: help,
exit codes, and bad input, which must fail clearly and change nothing. Fast."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import TEST_PORT_END, TEST_PORT_START, Project


def test_help_lists_every_command_and_the_exit_codes(rendered: Project):
    for spelling in ("help", "-h", "--help"):
        result = rendered.run(spelling)
        assert result.returncode == 0
        for command in ("bootstrap", "start", "--foreground", "--no-open", "--port", "stop", "restart", "status", "url", "logs [-f]"):
            assert command in result.stdout, command
        assert "Exit codes:" in result.stdout
        assert f"{TEST_PORT_START}-{TEST_PORT_END}" in result.stdout, "help names the project's port range"


def settings_the_scripts_read(root: Path) -> set[str]:
    """The APP_* settings app.sh and its parts read ("${APP_X", seconds_setting VAR APP_X)."""
    text = "\n".join(p.read_text() for p in [root / "scripts/app.sh", *sorted((root / "scripts/app.d").glob("*.sh"))])
    return set(re.findall(r"\$\{(APP_[A-Z_]+)", text)) | set(re.findall(r"seconds_setting \w+ (APP_[A-Z_]+)", text))


def test_help_readme_and_app_local_sh_name_every_setting_and_command_the_parser_knows(rendered: Project):
    help_text = rendered.run("help").stdout
    settings = settings_the_scripts_read(rendered.root)
    assert {"APP_STOP_TIMEOUT", "APP_IDLE_TIMEOUT", "APP_EXTRAS", "APP_PYTHON"} <= settings, settings
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    local = (rendered.root / "scripts/app.local.sh").read_text()
    for name in sorted(settings):
        assert re.search(rf"^  {name}\b", help_text, re.M), f"help does not explain {name}"
        assert f"| `{name}` |" in readme, f"README's settings table lacks {name}"
        assert f"# {name}=" in local, f"scripts/app.local.sh does not show {name}"
    script = (rendered.root / "scripts/app.sh").read_text()
    accepted = re.search(r"^\t(bootstrap \| start \|[^)]*)\) ;;$", script, re.M)
    assert accepted, "main's list of commands"
    commands = {c.strip() for c in accepted.group(1).split("|")}
    listed = set(re.findall(r"^  ([a-z]+)\b", help_text.split("Commands:")[1].split("Exit codes:")[0], re.M))
    assert listed - {"help"} == commands, (listed, commands)


def test_version_names_the_spec(rendered: Project):
    result = rendered.run("--version")
    assert result.returncode == 0
    assert "jupyter-lifecycle-spec 1.0" in result.stdout


def test_no_command_prints_usage_on_stderr_and_exits_2(rendered: Project):
    result = rendered.run()
    assert result.returncode == 2
    assert "Usage:" in result.stderr and result.stdout == ""


@pytest.mark.parametrize(
    "args, message",
    [
        (["launch"], "unknown command 'launch'"),
        (["start", "--bogus"], "start: unknown option '--bogus'"),
        (["start", "--port"], "--port needs a value"),
        (["start", "--port", "abc"], "--port needs a number from 1 to 65535 (got 'abc')"),
        (["start", "--port=70000"], "(got '70000')"),
        (["start", "--port", "0"], "(got '0')"),
        (["start", "--port", "-5"], "(got '-5')"),
        (["stop", "now"], "stop: unknown option 'now'"),
        (["status", "--json-please"], "status: unknown option"),
        (["logs", "-n", "ten"], "-n needs a whole number"),
        (["logs", "--tail"], "logs: unknown option '--tail'"),
        (["url", "extra"], "url takes no arguments"),
        (["bootstrap", "--fast"], "bootstrap: unknown option '--fast'"),
    ],
)
def test_bad_input_is_a_usage_error_that_changes_nothing(rendered: Project, args, message):
    before = sorted(p.name for p in rendered.root.iterdir())
    result = rendered.run(*args)
    assert result.returncode == 2, result.output
    assert message in result.stderr
    assert result.stderr.startswith("app.sh: ")
    assert "scripts/app.sh help" in result.stderr
    assert result.stdout == ""
    assert sorted(p.name for p in rendered.root.iterdir()) == before, "a usage error must not create anything"


def test_status_of_a_project_never_bootstrapped_says_what_to_do(rendered: Project):
    result = rendered.run("status")
    assert result.returncode == 3
    assert "jupyter:   .jupyter_venv missing; run: scripts/app.sh bootstrap (start does)" in result.stdout
    assert "venv:      .venv missing; run: scripts/app.sh bootstrap (start does)" in result.stdout
    assert "server:    not running" in result.stdout


def test_url_and_stop_when_nothing_runs(rendered: Project):
    result = rendered.run("url")
    assert result.returncode == 3 and result.stdout == ""
    assert "not running" in result.stderr
    result = rendered.run("stop")
    assert result.returncode == 0
    assert "not running" in result.stderr


def test_logs_before_any_start_says_how_to_get_one(rendered: Project):
    for args in (["logs"], ["logs", "-f"]):
        result = rendered.run(*args, timeout=10)
        assert result.returncode == 1
        assert "no log yet" in result.stderr and "scripts/app.sh start" in result.stderr


def test_a_broken_venv_is_reported_with_the_fix(rendered: Project):
    (rendered.root / ".venv/bin").mkdir(parents=True)
    result = rendered.run("start", "--no-open")
    assert result.returncode == 1
    assert "is broken" in result.stderr and "scripts/app.sh bootstrap" in result.stderr
    assert not rendered.pid_file.exists()


def test_the_script_can_be_sourced_without_running_anything(rendered: Project):
    import subprocess

    result = subprocess.run(
        ["bash", "-c", 'source scripts/app.sh && resolve_project_root && load_parts && declare -F cmd_start >/dev/null && echo "$PROJECT_NAME"'],
        cwd=rendered.root,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "demo\n" and result.stderr == ""


def test_status_json_is_one_object_for_tools(rendered: Project):
    import json

    result = rendered.run("status", "--json")
    assert result.returncode == 3
    status = json.loads(result.stdout)
    assert status["project"] == "demo" and status["spec_version"] == "1.0"
    assert status["template_version"] and status["template_version"] != "unknown"
    assert status["venv"] == "missing" and status["project_env"] == "missing" and status["server"] == "not running"
    assert status["pid"] is None and status["url"] is None
    assert status["orphan_servers"] == [] and status["exit_code"] == 3


def test_doctor_names_every_unmet_requirement_with_its_fix(rendered: Project):
    result = rendered.run("doctor")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(line.startswith("FAIL  venv bootstrapped") and "scripts/app.sh bootstrap" in line for line in lines)
    assert any(line.startswith("FAIL  kernel in the venv (spec 2)") for line in lines)
    assert any(line.startswith("PASS  git-ignored state (spec 10)") for line in lines)
    assert "requirement(s) not met" in result.stderr
