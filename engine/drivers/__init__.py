"""Protocol drivers (engine side) and simulated meters, looked up by protocol name.

``driver("modbus")`` returns a new :class:`~meterpoll.engine.driver.Driver`;
``simulator("modbus", addresses=[1, 2], seed=0, ...)`` a new
:class:`~meterpoll.engine.sim.server.Answerer` for those bus addresses.  Modules are imported on
first use, so a service that polls only Modbus never imports the DLMS stack.
"""
from __future__ import annotations

import importlib
from typing import Any

__all__ = ["DRIVERS", "SIMULATORS", "driver", "simulator", "available"]

#: protocol -> "module:class" of its engine driver
DRIVERS = {
    "modbus": "meterpoll.engine.drivers.modbus:ModbusDriver",
    "mbus": "meterpoll.engine.drivers.mbus:MbusDriver",
    "dlms": "meterpoll.engine.drivers.dlms:DlmsDriver",
    "mercury": "meterpoll.engine.drivers.mercury:MercuryDriver",
    "iec62056-21": "meterpoll.engine.drivers.iec62056_21:IecDriver",
}

#: protocol -> "module:class" of its simulated meter (an Answerer)
SIMULATORS = {
    "modbus": "meterpoll.engine.sim.modbus:ModbusSim",
    "mbus": "meterpoll.engine.sim.mbus:MbusSim",
    "dlms": "meterpoll.engine.sim.dlms:DlmsSim",
    "mercury": "meterpoll.engine.sim.mercury:MercurySim",
    "iec62056-21": "meterpoll.engine.sim.iec62056_21:IecSim",
}


def _load(table: dict[str, str], protocol: str) -> Any:
    try:
        target = table[protocol]
    except KeyError:
        raise ValueError("unknown protocol %r (known: %s)" % (protocol, ", ".join(sorted(table)))) from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def driver(protocol: str, **options: Any):
    return _load(DRIVERS, protocol)(**options)


def simulator(protocol: str, **options: Any):
    return _load(SIMULATORS, protocol)(**options)


def available() -> list[str]:
    """Protocols whose driver and simulator both import."""
    out = []
    for p in DRIVERS:
        try:
            _load(DRIVERS, p)
            _load(SIMULATORS, p)
        except (ImportError, AttributeError):
            continue
        out.append(p)
    return out
