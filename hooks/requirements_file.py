"""Create requirements.txt on `copier copy` when the project declares no dependencies.

Copier runs this as a task with the project as the working directory and the operation
('copy' or 'update') as its argument. On copy, a project that has neither a
requirements.txt nor a pyproject.toml with a [project] or [build-system] table (what
`scripts/app.sh bootstrap` installs from) gets a commented, empty requirements.txt to
list its packages in. A project that has one keeps it, and copier has nothing to say
about it: a template file would make copier print `conflict requirements.txt` and
`skip` for the user's own file. On update this does nothing: the file is the user's,
and so is deleting it (copier.yml's _skip_if_exists keeps it out of the update's diff).
Stdlib only; idempotent.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REQUIREMENTS = Path("requirements.txt")
PYPROJECT = Path("pyproject.toml")
# Byte for byte the file that v1.0.0 and earlier commits rendered from the template.
TEXT = """\
# This project's own Python dependencies, one per line (pip requirements format).
# `scripts/app.sh bootstrap` installs them into .venv next to JupyterLab and
# ipykernel, and registers the venv as this project's Jupyter kernel.
# This file is yours: the template creates it once and never touches it again.
"""


def pyproject_declares_dependencies() -> bool:
    """The same test as bootstrap's: a [project] or [build-system] table."""
    try:
        text = PYPROJECT.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return re.search(r"(?m)^\[(project|build-system)\]", text) is not None


def main() -> int:
    operation = sys.argv[1] if len(sys.argv) > 1 else "copy"
    if operation != "copy" or REQUIREMENTS.exists() or REQUIREMENTS.is_symlink():
        return 0
    if pyproject_declares_dependencies():
        print("jupyter-template: pyproject.toml declares the dependencies; no requirements.txt created")
        return 0
    REQUIREMENTS.write_text(TEXT, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
