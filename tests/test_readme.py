"""The README is a contract: every test it names as the proof of a promise exists."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import TEMPLATE


def test_every_test_the_readme_names_as_a_proof_exists():
    readme = (TEMPLATE / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`(test_[a-z0-9_]+)`", readme))
    assert len(named) > 20, "the guarantees section names its tests"
    defined = set()
    for module in Path(TEMPLATE / "tests").glob("test_*.py"):
        defined |= set(re.findall(r"(?m)^def (test_[a-z0-9_]+)\(", module.read_text(encoding="utf-8")))
    assert sorted(named - defined) == [], "README names tests that do not exist"
