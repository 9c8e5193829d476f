"""Keep the template's entries in the project's .gitignore, in one managed block.

Copier runs this as a task after `copier copy` and `copier update`, with the
destination project as the working directory (during an update it also runs in
temporary copies of the old and new project). It therefore only touches
./.gitignore, and running it any number of times gives the same file.

Every line the user wrote outside the block is kept as it is. The block holds the
entries of the Jupyter lifecycle spec (section 10) plus the project venv,
notebook checkpoints and editable-install metadata, each exactly once: an entry the
user already lists outside the block is left out of it. It ends with a negation for
every file the template renders (and the folders that hold them), taken from the
template itself, so that no pattern of the user's (`venv*`, `*.sh`, `scripts/`) keeps
one out of git: a clone would lack it. git honours the last matching line, so these
win over every line above them; a line the user adds after the block wins over them,
and `scripts/app.sh doctor` reports a template file git ignores. The first argument
is the answers file (copier's -a), itself a template file.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

BEGIN = "# >>> jupyter-template: managed block, rewritten by copier; edit outside it >>>"
END = "# <<< jupyter-template <<<"

SECTIONS = (
    (
        "# Jupyter isolation directories",
        (".jupyter_config/", ".jupyter_data/", ".jupyter_runtime/", ".ipython/", ".cache/"),
    ),
    ("# Process management", (".logs/", ".run/")),
    ("# Project virtual environment", (".venv/",)),
    ("# JupyterLab's own environment (app.sh's) and the kernel's ipykernel", (".jupyter_venv/",)),
    # What using the project leaves beside its files: Jupyter's checkpoints beside the
    # notebooks, the metadata of the project's package installed in editable mode.
    ("# Jupyter checkpoints, editable install metadata", (".ipynb_checkpoints/", "*.egg-info/")),
)


# The template's files, as copier.yml's _subdirectory holds them (this hook runs from
# the template, at _copier_conf.src_path).
TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "template"
ANSWERS_FILE_NAME = "{{ _copier_conf.answers_file }}"
# Rendered under one name, kept under another: hooks/adopt_app_sh.py puts app.sh.new in place.
RENAMED = {"scripts/app.sh.new": "scripts/app.sh"}
TRACKED_TITLE = "# Template files: tracked, whatever a line above says (scripts/app.sh doctor checks)"


def rendered_files(answers_file: str) -> list[str]:
    """The project paths of the files the template renders, from template/ itself."""
    found = set()
    for directory, subdirs, files in os.walk(TEMPLATE_DIR):
        subdirs[:] = [d for d in subdirs if d != "__pycache__"]
        for name in files:
            if name.endswith((".pyc", ".pyo")):
                continue
            path = (Path(directory) / name).relative_to(TEMPLATE_DIR).as_posix()
            path = path[: -len(".jinja")] if path.endswith(".jinja") else path
            path = RENAMED.get(path, path).replace(ANSWERS_FILE_NAME, answers_file)
            if "{{" not in path and "{%" not in path and not path.startswith("/") and ".." not in path.split("/"):
                found.add(path)
    return sorted(found)


def escape(path: str) -> str:
    """A path as a .gitignore line matches it literally."""
    escaped = re.sub(r"([*?\[\\])", r"\\\1", path)
    return escaped[:-1] + "\\ " if escaped.endswith(" ") else escaped


def tracked_entries(answers_file: str) -> list[str]:
    """Negations for every rendered file and, first, the folders that hold them: git
    cannot re-include a file whose folder is excluded (`scripts/`), so the folder is
    re-included too; the user's other files there are then judged by their own lines."""
    files = rendered_files(answers_file)
    folders = sorted({parent.as_posix() for f in files for parent in Path(f).parents if parent != Path(".")})
    return [f"!/{escape(folder)}/" for folder in folders] + [f"!/{escape(f)}" for f in files]


def normalise(entry: str) -> str:
    """Spell a pattern the way git matches a directory: '/.venv', '.venv/' -> '.venv'."""
    return entry.strip().strip("/")


def split_block(lines: list[str]) -> tuple[list[str], list[str]]:
    """Return (lines before the block, lines after it); the block itself is dropped."""
    if BEGIN not in lines:
        return lines, []
    start = lines.index(BEGIN)
    end = lines.index(END, start) if END in lines[start:] else len(lines) - 1
    return lines[:start], lines[end + 1 :]


def render_block(user_lines: list[str], answers_file: str = ".copier-answers.yml") -> list[str]:
    taken = {normalise(line) for line in user_lines if line.strip() and not line.startswith("#")}
    block = [BEGIN]
    for title, entries in SECTIONS:
        missing = [entry for entry in entries if normalise(entry) not in taken]
        if missing:
            block += ["", title, *missing] if len(block) > 1 else [title, *missing]
    # Last, so that they win over the block's own lines too.
    tracked = tracked_entries(answers_file)
    if tracked:
        block += ["", TRACKED_TITLE, *tracked]
    return block + [END]


def updated_gitignore(text: str, answers_file: str = ".copier-answers.yml") -> str:
    before, after = split_block(text.splitlines())
    while before and not before[-1].strip():
        before.pop()
    user_lines = before + after
    separator = [""] if before else []
    return "\n".join(before + separator + render_block(user_lines, answers_file) + after) + "\n"


def main() -> int:
    answers_file = sys.argv[1] if len(sys.argv) > 1 else ".copier-answers.yml"
    path = Path(".gitignore")
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    new = updated_gitignore(old, Path(answers_file).as_posix())
    if new != old:
        path.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
