"""Shared test fixtures: the protocol vectors in ../shared/protocols/vectors and the pure-Python
reference codecs in tests/reference (imported as ``reference.<name>``)."""
from __future__ import annotations

import json
import os
import pathlib
import sys

import pytest

TESTS = pathlib.Path(__file__).resolve().parent
REPO = TESTS.parent
if str(TESTS) not in sys.path:  # makes tests/reference importable as ``reference``
    sys.path.insert(0, str(TESTS))


def shared_dir() -> pathlib.Path:
    """The shared/ folder beside the checkout (or METERPOLL_SHARED)."""
    env = os.environ.get("METERPOLL_SHARED")
    return pathlib.Path(env) if env else REPO.parent / "shared"


def load_vectors(name: str) -> list[dict]:
    """Vectors of one protocol file, e.g. ``load_vectors("modbus")``; fails loudly if missing."""
    path = shared_dir() / "protocols" / "vectors" / (name + ".json")
    if not path.exists():
        pytest.fail("protocol vectors not found at %s (set METERPOLL_SHARED)" % path)
    vectors = json.loads(path.read_text(encoding="utf-8"))
    for i, v in enumerate(vectors):
        v.setdefault("_id", "%s[%d]" % (name, i))
    return vectors


def all_vectors() -> list[dict]:
    out = []
    for name in ("dlms", "iec62056_21", "mbus", "mercury", "modbus"):
        out.extend(load_vectors(name))
    return out
