"""The protocol vectors in ../shared/protocols/vectors (importable from tests as ``vectors``)."""
from __future__ import annotations

import json
import os
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1]
NAMES = ("dlms", "iec62056_21", "mbus", "mercury", "modbus")


def shared_dir() -> pathlib.Path:
    """The shared/ folder beside the checkout (or $METERPOLL_SHARED)."""
    env = os.environ.get("METERPOLL_SHARED")
    return pathlib.Path(env) if env else REPO.parent / "shared"


def load_vectors(name: str) -> list[dict]:
    """Vectors of one protocol file, e.g. ``load_vectors("modbus")``; raises if it is missing."""
    path = shared_dir() / "protocols" / "vectors" / (name + ".json")
    if not path.exists():
        raise FileNotFoundError("protocol vectors not found at %s (set METERPOLL_SHARED)" % path)
    vectors = json.loads(path.read_text(encoding="utf-8"))
    for i, v in enumerate(vectors):
        v.setdefault("_id", "%s[%d]" % (name, i))
        v["_file"] = name
    return vectors


def all_vectors() -> list[dict]:
    return [v for name in NAMES for v in load_vectors(name)]
