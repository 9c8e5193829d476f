"""What bootstrap leaves out for a fast start costs nothing a user sees (issue 14).

bootstrap excludes rfc3987-syntax (it builds ~35 Lark parsers when jsonschema's format
checkers load, half of JupyterLab's import time). It only provides jsonschema's 'iri'
and 'iri-reference' format checks: no schema in the venv uses them, and jupyter_events
(the server's event logging) still validates events, accepting good ones and refusing
bad ones. Functional checks on the session's bootstrapped venv; nothing here is timed.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from conftest import Project

pytestmark = pytest.mark.slow

# "format": "iri" or "iri-reference", as JSON or YAML writes it (quoted or not).
IRI_FORMAT = re.compile(r"""["']?format["']?\s*:\s*["']?iri(-reference)?\b""")

VALIDATE_EVENTS = r"""
import io, json, logging, pathlib, sys
import jsonschema, jupyter_events, jupyter_server
from jupyter_events import EventLogger

found = {
    "rfc3987_syntax": __import__("importlib.util").util.find_spec("rfc3987_syntax") is not None,
    "iri_checked": "iri" in jsonschema.FormatChecker().checkers,
    "uri_checked": "uri" in jsonschema.FormatChecker().checkers,
}
stream = io.StringIO()
logger = EventLogger()
logger.register_handler(logging.StreamHandler(stream))
schemas = pathlib.Path(jupyter_server.__file__).parent / "event_schemas"
for schema in sorted(schemas.glob("*/v1.yaml")):
    logger.register_event_schema(schema)
kernel_actions = "https://events.jupyter.org/jupyter_server/kernel_actions/v1"
logger.emit(schema_id=kernel_actions, data={"action": "start", "kernel_name": "x", "msg": "ok"})
try:
    logger.emit(schema_id=kernel_actions, data={"action": "no such action", "msg": 1})
    found["refused"] = None
except Exception as error:
    found["refused"] = type(error).__name__
# An event schema that uses the 'uri' format (jsonschema checks it without rfc3987-syntax).
logger.register_event_schema({
    "$id": "https://example.org/jt/link", "version": "1", "type": "object",
    "properties": {"url": {"type": "string", "format": "uri"}},
})
logger.emit(schema_id="https://example.org/jt/link", data={"url": "https://jupyter.org"})
found["emitted"] = [json.loads(line)["__schema__"] for line in stream.getvalue().splitlines()]
found["schemas"] = len(list(schemas.glob("*/v1.yaml")))
print(json.dumps(found))
"""


def site_packages(project: Project) -> Path:
    (path,) = (project.root / ".jupyter_venv/lib").glob("python*/site-packages")
    return path


def test_no_schema_in_the_venv_uses_the_iri_formats_rfc3987_syntax_provides(bootstrapped_project: Project):
    venv = bootstrapped_project.root / ".jupyter_venv"
    assert not list(site_packages(bootstrapped_project).glob("rfc3987_syntax*")), "bootstrap installed rfc3987-syntax"
    checked, users = 0, []
    for path in venv.rglob("*"):
        if path.suffix not in {".json", ".yaml", ".yml"} or not path.is_file():
            continue
        checked += 1
        text = path.read_text(errors="replace")
        if "iri" in text and IRI_FORMAT.search(text):
            users.append(str(path.relative_to(venv)))
    # The JupyterLab settings schemas, jupyter_server's event schemas, the JSON Schema
    # metaschemas: hundreds of files, so the scan did look.
    assert checked > 100, f"only {checked} schema files found in {venv}"
    assert not users, f"these use the 'iri' formats rfc3987-syntax checks: {users}"


def test_jupyter_events_validates_events_without_rfc3987_syntax(bootstrapped_project: Project):
    python = bootstrapped_project.root / ".jupyter_venv/bin/python"
    result = subprocess.run([str(python), "-c", VALIDATE_EVENTS], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["rfc3987_syntax"] is False and found["iri_checked"] is False, found
    assert found["uri_checked"] is True, found
    assert found["schemas"] >= 3, found
    # The good events are logged; the bad one is refused by schema validation.
    assert found["emitted"] == ["https://events.jupyter.org/jupyter_server/kernel_actions/v1", "https://example.org/jt/link"], found
    assert found["refused"] == "ValidationError", found


def test_a_venv_that_still_carries_rfc3987_syntax_is_named_by_doctor_and_repaired(make_project):
    """A venv bootstrapped before the exclusion (or one where something installed it
    again): doctor says what it costs, and bootstrap takes it out."""
    project = make_project("carrier")
    python = str(project.root / ".jupyter_venv/bin/python")
    subprocess.run(["uv", "pip", "install", "--quiet", "--python", python, "rfc3987-syntax"], check=True)
    line = next(line for line in project.run("doctor", "--offline").stdout.splitlines() if "slows the start" in line)
    assert line.startswith("WARN") and "rfc3987-syntax" in line and "bootstrap --force" in line, line
    repaired = project.run("bootstrap", "--force", timeout=600)
    assert repaired.returncode == 0 and "removing rfc3987-syntax" in repaired.stderr, repaired.output
    assert subprocess.run([python, "-c", "import rfc3987_syntax"], capture_output=True).returncode != 0
    line = next(line for line in project.run("doctor", "--offline").stdout.splitlines() if "slows the start" in line)
    assert line.startswith("PASS"), line
