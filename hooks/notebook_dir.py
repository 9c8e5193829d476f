"""Resolve the notebook_dir answer 'auto' to the folder that holds the project's notebooks.

Copier runs this as a task, with the project as the working directory, after copy and
update (during an update also in temporary copies of the old and new project), with
the operation ('copy' or 'update') as its argument. Copier cannot look at the
destination when it offers a default, so the question's default is 'auto' and this
task decides: notebooks/ when the project has no notebooks outside it (a new project),
else the deepest folder that holds every notebook git keeps ('.' for the top level). The result
is written back to the answers file (its name the second argument) and scripts/app.sh's
NOTEBOOK_SUBDIR line, so
`copier update` replays it; any other answer is left as it is. On copy, an empty or
missing notebook folder gets a .gitkeep so git keeps it. Stdlib (and git, when there);
idempotent.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path, PurePosixPath

# The answers file: copier's default, or the one `copier copy -a FILE` named (a project
# that another copier template made keeps its own .copier-answers.yml).
ANSWERS = Path(sys.argv[2] if len(sys.argv) > 2 else ".copier-answers.yml")
SCRIPT = Path("scripts/app.sh")
DEFAULT = "notebooks"
# Never the project's notebooks: tool state, environments, build output.
SKIPPED_DIRS = {"node_modules", "__pycache__", "site-packages", "build", "dist", "_build"}


def find_notebooks(root: Path) -> list[PurePosixPath]:
    """Notebooks of the project, relative to it, outside hidden and tool directories."""
    found = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith(".") and d not in SKIPPED_DIRS)
        rel = PurePosixPath(Path(directory).relative_to(root).as_posix())
        found += [rel / name for name in sorted(files) if name.endswith(".ipynb")]
    return found


def kept_by_git(notebooks: list[PurePosixPath]) -> list[PurePosixPath]:
    """The notebooks git does not ignore (build output such as a book's executed copies
    is not where the project keeps its notebooks); all of them outside a git work tree,
    without git, or when git ignores every one."""
    if not notebooks:
        return notebooks
    try:
        result = subprocess.run(
            ["git", "check-ignore", "--stdin", "-z"],
            input="\0".join(str(n) for n in notebooks) + "\0",
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return notebooks
    if result.returncode not in (0, 1):  # 128: not a git work tree
        return notebooks
    ignored = set(filter(None, result.stdout.split("\0")))
    return [n for n in notebooks if str(n) not in ignored] or notebooks


def notebook_home(notebooks: list[PurePosixPath]) -> str:
    """The deepest folder holding every notebook; notebooks/ when there are none."""
    if not notebooks:
        return DEFAULT
    common = os.path.commonpath([str(n.parent) for n in notebooks])
    return common if common not in ("", ".") else "."


def answer(text: str) -> str | None:
    match = re.search(r"(?m)^notebook_dir:\s*(.*?)\s*$", text)
    return match.group(1).strip("'\"") if match else None


def main() -> int:
    operation = sys.argv[1] if len(sys.argv) > 1 else "copy"
    if not ANSWERS.is_file():
        return 0
    text = ANSWERS.read_text(encoding="utf-8")
    value = answer(text)
    if value is None:
        return 0
    if value == "auto":
        notebooks = kept_by_git(find_notebooks(Path(".")))
        value = notebook_home(notebooks)
        # As copier writes it: plain when YAML reads it back as the same string.
        scalar = value if re.fullmatch(r"[A-Za-z0-9_./-]+", value) else "'" + value.replace("'", "''") + "'"
        ANSWERS.write_text(re.sub(r"(?m)^notebook_dir:.*$", lambda _: f"notebook_dir: {scalar}", text), encoding="utf-8")
        if SCRIPT.is_file():
            script = SCRIPT.read_text(encoding="utf-8")
            SCRIPT.write_text(
                re.sub(r"(?m)^NOTEBOOK_SUBDIR=.*$", lambda _: f"NOTEBOOK_SUBDIR={shlex.quote(value)}", script),
                encoding="utf-8",
            )
        if notebooks:
            print(
                f"jupyter-template: {len(notebooks)} notebook(s) found; JupyterLab's root is '{value}'"
                " (change it with: copier update --trust -d notebook_dir=FOLDER)",
                file=sys.stderr,
            )
    folder = Path(value)
    if operation == "copy" and (not folder.is_dir() or not any(folder.iterdir())):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ".gitkeep").touch()
    return 0


if __name__ == "__main__":
    sys.exit(main())
