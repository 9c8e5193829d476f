"""Migration to the v1.0.0 convention: the PID file moves from .run/jupyter.pid to
.logs/jupyter.pid.

Copier runs this after every `copier update`, once, in the project directory (a
migration without `version:`: clones of the template carry no tags, so a migration
gated on v1.0.0 would never run there). Spec section 4 allows both places and app.sh
reads both, so a server started by an older script is found either way, also while
it runs; moving the file makes the project use the preferred place from now on.
Idempotent and a no-op when not needed: it moves the file only when
.logs/jupyter.pid does not exist, and does nothing when .run/jupyter.pid is absent.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

LEGACY = Path(".run/jupyter.pid")
PREFERRED = Path(".logs/jupyter.pid")


def main() -> int:
    if not LEGACY.is_file() or PREFERRED.exists():
        return 0
    PREFERRED.parent.mkdir(mode=0o700, exist_ok=True)
    os.replace(LEGACY, PREFERRED)
    print(f"jupyter-template: moved {LEGACY} to {PREFERRED} (lifecycle spec 4)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
