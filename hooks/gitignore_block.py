"""Keep the template's entries in the project's .gitignore, in one managed block.

Copier runs this as a task after `copier copy` and `copier update`, with the
destination project as the working directory (during an update it also runs in
temporary copies of the old and new project). It therefore only touches
./.gitignore, and running it any number of times gives the same file.

Every line the user wrote outside the block is kept as it is. The block holds the
entries of the Jupyter lifecycle spec (section 10) plus the project venv,
notebook checkpoints and editable-install metadata, each exactly once: an entry the user already lists outside the block is left out of it.
"""

from __future__ import annotations

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


def render_block(user_lines: list[str]) -> list[str]:
    taken = {normalise(line) for line in user_lines if line.strip() and not line.startswith("#")}
    block = [BEGIN]
    for title, entries in SECTIONS:
        missing = [entry for entry in entries if normalise(entry) not in taken]
        if missing:
            block += ["", title, *missing] if len(block) > 1 else [title, *missing]
    return block + [END]


def updated_gitignore(text: str) -> str:
    before, after = split_block(text.splitlines())
    while before and not before[-1].strip():
        before.pop()
    user_lines = before + after
    separator = [""] if before else []
    return "\n".join(before + separator + render_block(user_lines) + after) + "\n"


def main() -> int:
    path = Path(".gitignore")
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    new = updated_gitignore(old)
    if new != old:
        path.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
