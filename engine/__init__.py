"""meterpoll.engine: scheduler, transports, protocol sessions and storage (asyncio/uvloop).

The embedding surface, importable from here: :class:`Engine`, :class:`MeterConfig`,
:func:`open_store`, :class:`Deadlines`; a protocol's driver by name:
``meterpoll.engine.drivers.driver("modbus")``.
"""
from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Engine", "MeterConfig", "open_store", "Deadlines"]

_WHERE = {"Engine": "meterpoll.engine.engine", "MeterConfig": "meterpoll.engine.config",
          "open_store": "meterpoll.engine.store", "Deadlines": "meterpoll.engine.transport"}


def __getattr__(name: str) -> Any:   # lazy: `meterpoll.engine.x` submodules import without all of them
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError("module 'meterpoll.engine' has no attribute %r" % name)
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value
    return value
