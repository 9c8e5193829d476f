"""Which installed distributions only some requirements need: `app.sh bootstrap` asks
when the project's server switched (copier update -d server=...), to remove the
packages only the other server needed.

Usage: venv_packages.py WANTED... -- OTHER...
Prints, space-separated, the distributions installed in this interpreter's environment
that the OTHER requirements need (with their dependencies, as installed) and that
neither the WANTED requirements nor any other installed distribution needs. Run with
the venv's Python: the standard library, and packaging for markers when the venv has it.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata

try:
    from packaging.requirements import Requirement
except ImportError:
    Requirement = None

Node = tuple[str, frozenset]


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse(text: str):
    """(normalised name, extras, marker or None) of a requirement string."""
    if Requirement:
        requirement = Requirement(text)
        return norm(requirement.name), set(requirement.extras), requirement.marker
    match = re.match(r"\s*([A-Za-z0-9._-]+)\s*(?:\[([^]]*)\])?", text)
    return norm(match.group(1)), {e.strip() for e in (match.group(2) or "").split(",") if e.strip()}, None


def installed_distributions() -> dict[str, metadata.Distribution]:
    found: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions():
        found.setdefault(norm(dist.metadata["Name"] or ""), dist)
    return found


def needs(installed: dict, name: str, extras: set) -> set[Node]:
    """What NAME installed with EXTRAS requires (markers of other extras left out)."""
    found = set()
    for text in installed[name].requires or []:
        dep, dep_extras, marker = parse(text)
        if marker is not None:
            try:
                if not any(marker.evaluate({"extra": e}) for e in extras | {""}):
                    continue
            except Exception:  # a marker this packaging cannot evaluate: keep the dependency
                pass
        elif ";" in text and "extra" in text.split(";", 1)[1]:
            if not any(re.search(r"extra\s*==\s*.%s." % re.escape(e), text) for e in extras):
                continue
        found.add((dep, frozenset(dep_extras)))
    return found


def closure(installed: dict, roots) -> set[str]:
    """The installed names ROOTS need, themselves included."""
    seen: set[Node] = set()
    todo = list(roots)
    while todo:
        name, extras = todo.pop()
        if name not in installed or (name, extras) in seen:
            continue
        seen.add((name, extras))
        todo.extend(needs(installed, name, set(extras)))
    return {name for name, _ in seen}


def only_needed_by(wanted: list[str], other: list[str]) -> list[str]:
    installed = installed_distributions()
    wanted_nodes = [(name, frozenset(extras)) for name, extras, _ in map(parse, wanted)]
    candidates = closure(installed, ((name, frozenset(extras)) for name, extras, _ in map(parse, other)))
    candidates -= {name for name, _ in wanted_nodes}
    keep = closure(installed, wanted_nodes + [(name, frozenset()) for name in installed if name not in candidates])
    return sorted(candidates - keep)


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    split = argv.index("--")
    print(" ".join(only_needed_by(argv[:split], argv[split + 1 :])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
