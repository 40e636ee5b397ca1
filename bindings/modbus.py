"""Modbus RTU / Modbus TCP: request encoders, frame parsing, register maps and the batch decoder.

Framing (every multi-byte header and register field is big-endian)::

    RTU   slave(1) function(1) data(n) CRC(2)      CRC-16/MODBUS over slave..data, LOW byte first
    TCP   transaction(2) protocol(2)=0 length(2) unit(1) function(1) data(n)
          (length counts unit + function + data; no CRC)

"RTU over TCP" (transparent serial gateways) is the RTU frame, CRC included, carried in a TCP
stream: decode it with ``tcp=False``.  ``tcp="auto"`` picks MBAP per frame when the protocol
id is 0, the MBAP length matches the frame and the frame's last two bytes are not its
CRC-16/MODBUS (an intact RTU frame wins the tie).

Functions: 0x03 read holding and 0x04 read input registers (request encoders, response
decoders), 0x06 write single / 0x10 write multiple registers (encoders, acknowledgement
check), 0x08 diagnostics (return query data echo), exception responses ``function | 0x80`` +
code (FrameStatus.PROTOCOL_EXCEPTION, ``frame_status["code"]``; the single API raises
:class:`~meterpoll.ProtocolExceptionError` with ``.code``).

Register maps are data (:class:`RegisterMap`): per quantity the PDU register address
(0-based: vendor register 30001 is address 0), function (3 or 4), type, word order, scale and
the OBIS code + DLMS unit of the reading it becomes.  Values are ``raw * scale`` in the base
unit (energy Wh/varh/VAh, power W/var/VA, voltage V, current A, frequency Hz, angle degrees).
Registers are big-endian 16-bit words; ``word_order="big"`` puts the most significant register
first (Eastron), ``"little"`` the least significant first ("word swapped").  64-bit integers are
converted to float64 (exact up to 2**53).  A float register holding NaN or +-inf becomes a
reading with :attr:`Quality.METER_ERROR` (never dropped).

OBIS mapping of the built-in Eastron maps (Modbus has no OBIS of its own).  "(mfr)" marks
codes from the manufacturer-specific range C = 128..199, used where IEC 62056-61 has no code:

========================================  ===================  ==========  =======  =====
quantity (Eastron input register, FC 04)  OBIS                 SDM630      SDM120   unit
========================================  ===================  ==========  =======  =====
voltage L1 / L2 / L3 (L-N)                1.0.32/52/72.7.0     0x00/02/04  0x00     V
current L1 / L2 / L3                      1.0.31/51/71.7.0     0x06/08/0A  0x06     A
active power L1 / L2 / L3 (signed)        1.0.21/41/61.7.0     0x0C/0E/10  -        W
apparent power L1 / L2 / L3               1.0.29/49/69.7.0     0x12/14/16  -        VA
reactive power L1 / L2 / L3 (signed)      1.0.23/43/63.7.0     0x18/1A/1C  -        var
power factor L1 / L2 / L3                 1.0.33/53/73.7.0     0x1E/20/22  -        (255)
phase angle I(Lx)-U(Lx) L1 / L2 / L3      1.0.81.7.4/15/26     0x24/26/28  0x24     deg
average L-N voltage                       1.0.12.7.0           0x2A        -        V
average line current                      1.0.11.7.0           0x2E        -        A
sum of line currents                      1.0.90.7.0           0x30        -        A
total active power (signed)               1.0.1.7.0            0x34        0x0C     W
total apparent power                      1.0.9.7.0            0x38        0x12     VA
total reactive power (signed)             1.0.3.7.0            0x3C        0x18     var
total power factor                        1.0.13.7.0           0x3E        0x1E     (255)
frequency                                 1.0.14.7.0           0x46        0x46     Hz
import / export active energy             1.0.1.8.0 / 2.8.0    0x48/4A     0x48/4A  Wh
import / export reactive energy           1.0.3.8.0 / 4.8.0    0x4C/4E     0x4C/4E  varh
apparent energy                           1.0.9.8.0            0x50        -        VAh
total system power demand / maximum       1.0.1.4.0 / 1.6.0    0x54/56     0x54/56  W
line voltage L1-L2 / L2-L3 / L3-L1 (mfr)  1.0.128/129/130.7.0  0xC8/CA/CC  -        V
neutral current                           1.0.91.7.0           0xE0        -        A
total active energy |import|+|export|     1.0.15.8.0           0x156       0x156    Wh
total reactive energy (mfr)               1.0.131.8.0          0x158       0x158    varh
import active energy L1 / L2 / L3         1.0.21/41/61.8.0     0x15A/C/E   -        Wh
export active energy L1 / L2 / L3         1.0.22/42/62.8.0     0x160/2/4   -        Wh
total active energy L1 / L2 / L3          1.0.35/55/75.8.0     0x166/8/A   -        Wh
========================================  ===================  ==========  =======  =====

(all OBIS end in .255; energies are kWh/kvarh/kVAh on the meter, scale 1000).  On the SDM120
the single phase's voltage/current/angle use the L1 codes and its powers the total codes.
Eastron's active and reactive power registers are signed (export negative) although C = 21/1/3
strictly names the import direction.
"""
from __future__ import annotations

import os
import struct
import tomllib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal, NamedTuple, Union

import numpy as np

from meterpoll.bindings.errors import (
    ChecksumError, FrameError, ProtocolExceptionError, TruncatedFrameError, UnsupportedFrameError,
    error_for_status,
)
from meterpoll.bindings.readings import FrameStatus, Unit, obis as _obis, obis_str, received_ms
from meterpoll.ext._crc import crc16_modbus
from meterpoll.ext._frames import FrameBatch
from meterpoll.ext._modbus import MAP_DTYPE, REQUEST_DTYPE, decode_many, decode_one
from meterpoll.ext._modbus import capacity_needed as _capacity_needed

__all__ = [
    "MAP_DTYPE", "MAPS", "REQUEST_DTYPE", "SDM120", "SDM630", "EXCEPTION_NAMES", "ModbusFrame",
    "ReadRequest", "RegisterEntry", "RegisterMap", "RegisterMapError", "TYPES",
    "capacity_needed", "decode", "decode_batch", "encode_diagnostic", "encode_exception", "encode_read",
    "encode_plan", "encode_read_holding", "encode_read_input", "encode_read_response", "encode_write_ack",
    "encode_write_coil", "encode_write_multiple", "encode_write_single", "make_requests", "parse_frame", "request",
]

READ_HOLDING = 0x03
READ_INPUT = 0x04
WRITE_SINGLE = 0x06
DIAGNOSTICS = 0x08
WRITE_MULTIPLE = 0x10
REQUEST_FUNCTIONS = (READ_HOLDING, READ_INPUT, WRITE_SINGLE, DIAGNOSTICS, WRITE_MULTIPLE)
MAX_READ = 125          # registers per 0x03/0x04 read (PDU limit 253 bytes)
MAX_WRITE = 123         # registers per 0x10 write

EXCEPTION_NAMES = {
    1: "illegal function", 2: "illegal data address", 3: "illegal data value",
    4: "slave device failure", 5: "acknowledge", 6: "slave device busy", 8: "memory parity error",
    10: "gateway path unavailable", 11: "gateway target device failed to respond",
}

#: type name -> (native code, registers)
TYPES = {
    "int16": (0, 1), "uint16": (1, 1), "int32": (2, 2), "uint32": (3, 2), "float32": (4, 2),
    "int64": (5, 4), "uint64": (6, 4), "float64": (7, 4),
}
_TYPE_NAMES = {code: name for name, (code, _) in TYPES.items()}
_WORD_ORDERS = {"big": 0, "little": 1}

_MODE_RTU, _MODE_TCP, _MODE_AUTO = 0, 1, 2

Tcp = Union[bool, Literal["auto"]]
RequestLike = Union[tuple, bytes, bytearray, memoryview, np.ndarray]


# --------------------------------------------------------------------------------------------
# register maps
# --------------------------------------------------------------------------------------------

class RegisterMapError(ValueError):
    """A register map entry is invalid; the message names the entry and the field."""


class RegisterEntry(NamedTuple):
    """One quantity of a register map (see :class:`RegisterMap`)."""

    name: str
    address: int          # PDU register address, 0-based
    function: int         # 3 (holding) or 4 (input)
    type: str             # one of TYPES
    word_order: str       # "big" (most significant register first) or "little"
    scale: float          # multiplier from the register value to the base unit
    obis: int             # packed OBIS (meterpoll.obis)
    unit: int             # DLMS unit (meterpoll.Unit)

    @property
    def width(self) -> int:
        """Registers the value occupies."""
        return TYPES[self.type][1]


class ReadRequest(NamedTuple):
    """One read the engine sends for a map: ``function`` (3/4), first register, count."""

    function: int
    start: int
    count: int


_UNIT_SYMBOLS = {
    "v": Unit.VOLT, "a": Unit.AMPERE, "w": Unit.WATT, "var": Unit.VAR, "va": Unit.VOLT_AMPERE,
    "wh": Unit.WATT_HOUR, "varh": Unit.VAR_HOUR, "vah": Unit.VOLT_AMPERE_HOUR, "hz": Unit.HERTZ,
    "deg": Unit.DEGREE, "degree": Unit.DEGREE, "°": Unit.DEGREE, "°c": Unit.CELSIUS,
    "c": Unit.CELSIUS, "k": Unit.KELVIN, "m3": Unit.CUBIC_METRE, "m3/h": Unit.CUBIC_METRE_PER_HOUR,
    "j": Unit.JOULE, "j/h": Unit.JOULE_PER_HOUR, "%": Unit.PERCENT, "": Unit.COUNT,
    "count": Unit.COUNT, "ah": Unit.AMPERE_HOUR, "s": Unit.SECOND,
}
_ENTRY_FIELDS = ("name", "address", "function", "type", "word_order", "scale", "obis", "unit")


def _bad(index: int, name: Any, field: str, why: str) -> RegisterMapError:
    label = "register #%d" % index if name is None else "register #%d %r" % (index, name)
    return RegisterMapError("%s: field %r: %s" % (label, field, why))


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _check_entry(index: int, raw: dict[str, Any]) -> RegisterEntry:
    """Validate one entry given as a mapping; errors name the entry and the field."""
    name = raw.get("name")
    for key in raw:
        if key not in _ENTRY_FIELDS:
            raise _bad(index, name, key, "unknown field (expected one of %s)" % ", ".join(_ENTRY_FIELDS))
    if not isinstance(name, str) or not name:
        raise _bad(index, None, "name", "a non-empty string is required, got %r" % (name,))
    for field in ("address", "type", "obis", "unit"):
        if field not in raw:
            raise _bad(index, name, field, "missing")
    address = raw["address"]
    if not _is_int(address) or not 0 <= address <= 0xFFFF:
        raise _bad(index, name, "address", "a PDU register address 0..65535 is required, got %r" % (address,))
    function = raw.get("function", READ_INPUT)
    if not _is_int(function) or function not in (READ_HOLDING, READ_INPUT):
        raise _bad(index, name, "function", "3 (holding) or 4 (input) expected, got %r" % (function,))
    typ = raw["type"]
    if typ not in TYPES:
        raise _bad(index, name, "type", "unknown type %r (expected one of %s)" % (typ, ", ".join(TYPES)))
    if address + TYPES[typ][1] > 0x10000:
        raise _bad(index, name, "address", "a %s at %d runs past register 65535" % (typ, address))
    order = raw.get("word_order", "big")
    if order not in _WORD_ORDERS:
        raise _bad(index, name, "word_order", "'big' or 'little' expected, got %r" % (order,))
    scale = raw.get("scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not np.isfinite(scale):
        raise _bad(index, name, "scale", "a finite number is required, got %r" % (scale,))
    code = raw["obis"]
    try:
        packed = int(code) if _is_int(code) else _obis(code)
        obis_str(packed)
    except (ValueError, TypeError) as exc:
        raise _bad(index, name, "obis", str(exc)) from None
    unit = raw["unit"]
    if _is_int(unit):
        if not 0 <= unit <= 255:
            raise _bad(index, name, "unit", "a DLMS unit code 0..255 is required, got %r" % (unit,))
        u = int(unit)
    elif isinstance(unit, str):
        key = unit.strip()
        if key.lower() in _UNIT_SYMBOLS:
            u = int(_UNIT_SYMBOLS[key.lower()])
        elif key.upper() in Unit.__members__:
            u = int(Unit[key.upper()])
        else:
            raise _bad(index, name, "unit", "unknown unit %r (a symbol such as V, A, W, var, VA, Wh, "
                       "varh, Hz, deg, a meterpoll.Unit name or a DLMS code)" % (unit,))
    else:
        raise _bad(index, name, "unit", "a unit symbol, name or code is required, got %r" % (unit,))
    return RegisterEntry(name, int(address), int(function), typ, order, float(scale), packed, u)


class RegisterMap:
    """The registers of one meter model, as data.

    ``entries`` are :class:`RegisterEntry` tuples or mappings with the same fields (``function``
    defaults to 4, ``word_order`` to "big", ``scale`` to 1).  The map keeps them sorted by
    (function, address) in a ``MAP_DTYPE`` numpy array that the native decoder reads;
    ``max_registers`` is the meter's own limit per read (Eastron: 80).  Readings come out in
    (function, address) order.
    """

    __slots__ = ("name", "max_registers", "entries", "_native")

    def __init__(self, entries: Iterable[RegisterEntry | dict[str, Any]], *, name: str = "",
                 max_registers: int = MAX_READ) -> None:
        if not _is_int(max_registers) or not 1 <= max_registers <= MAX_READ:
            raise RegisterMapError("max_registers: 1..125 expected, got %r" % (max_registers,))
        checked: list[RegisterEntry] = []
        seen: dict[str, int] = {}
        for i, e in enumerate(entries):
            raw = e._asdict() if isinstance(e, RegisterEntry) else e
            if not isinstance(raw, dict):
                raise RegisterMapError("register #%d: a table / mapping is required, got %r" % (i, type(e).__name__))
            entry = _check_entry(i, raw)
            if entry.name in seen:
                raise _bad(i, entry.name, "name", "duplicate of register #%d" % seen[entry.name])
            seen[entry.name] = i
            checked.append(entry)
        checked.sort(key=lambda e: (e.function, e.address))
        self.name = name
        self.max_registers = int(max_registers)
        self.entries: tuple[RegisterEntry, ...] = tuple(checked)
        arr = np.zeros(len(checked), dtype=MAP_DTYPE)
        for i, e in enumerate(checked):
            code, width = TYPES[e.type]
            arr[i] = (e.obis, e.scale, (e.function << 16) | e.address, width, code,
                      _WORD_ORDERS[e.word_order], e.unit)
        arr.flags.writeable = False
        self._native = arr

    # -- arrays handed to the native decoder --------------------------------------------------
    @property
    def native(self) -> np.ndarray:
        """The MAP_DTYPE array (read-only) the native decoder walks."""
        return self._native

    @property
    def addresses(self) -> np.ndarray:
        return (self._native["key"] & 0xFFFF).astype(np.uint16)

    @property
    def functions(self) -> np.ndarray:
        return (self._native["key"] >> 16).astype(np.uint8)

    @property
    def scales(self) -> np.ndarray:
        return self._native["scale"]

    @property
    def obis(self) -> np.ndarray:
        return self._native["obis"]

    @property
    def units(self) -> np.ndarray:
        return self._native["unit"]

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[RegisterEntry]:
        return iter(self.entries)

    def __getitem__(self, name: str) -> RegisterEntry:
        for e in self.entries:
            if e.name == name:
                return e
        raise KeyError(name)

    def __repr__(self) -> str:
        return "<RegisterMap %r entries=%d>" % (self.name, len(self.entries))

    # -- TOML ----------------------------------------------------------------------------------
    @classmethod
    def from_toml(cls, source: str | os.PathLike[str] | bytes) -> RegisterMap:
        """Load a map from TOML text or a TOML file path.

        Layout: optional top-level ``name`` and ``max_registers``, an optional ``[defaults]``
        table (``function``, ``type``, ``word_order``, ``scale``) and one ``[[register]]`` table
        per quantity with ``name``, ``address`` (PDU, 0-based; TOML hex ``0x0156`` works),
        ``type``, ``obis`` ("1.0.1.8.0.255" or "1-0:1.8.0"), ``unit`` (symbol such as "Wh",
        a :class:`Unit` name or a DLMS code) and optionally ``function``, ``word_order``,
        ``scale``.  Raises :class:`RegisterMapError` naming the entry and field.
        """
        if isinstance(source, bytes):
            text = source.decode("utf-8")
        elif isinstance(source, os.PathLike) or (isinstance(source, str) and not any(
                c in source for c in "=\n[")):
            with open(source, "rb") as fh:
                text = fh.read().decode("utf-8")
        else:
            text = source
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise RegisterMapError("register map TOML: %s" % exc) from None
        for key in doc:
            if key not in ("name", "max_registers", "defaults", "register"):
                raise RegisterMapError("register map TOML: unknown top-level key %r "
                                       "(expected name, max_registers, defaults, register)" % key)
        defaults = doc.get("defaults", {})
        if not isinstance(defaults, dict):
            raise RegisterMapError("register map TOML: [defaults] must be a table")
        for key in defaults:
            if key not in ("function", "type", "word_order", "scale"):
                raise RegisterMapError("register map TOML: [defaults] has unknown key %r" % key)
        regs = doc.get("register", [])
        if not isinstance(regs, list):
            raise RegisterMapError("register map TOML: 'register' must be an array of tables ([[register]])")
        name = doc.get("name", "")
        if not isinstance(name, str):
            raise RegisterMapError("register map TOML: 'name' must be a string")
        return cls([{**defaults, **r} if isinstance(r, dict) else r for r in regs], name=name,
                   max_registers=doc.get("max_registers", MAX_READ))

    # -- read planning -------------------------------------------------------------------------
    def plan(self, max_registers: int = MAX_READ, max_gap: int = 0) -> list[ReadRequest]:
        """The reads (function, start, count) covering every entry: entries of one function
        whose registers are adjacent (or ``max_gap`` registers apart at most) are merged while
        a read stays within ``min(max_registers, self.max_registers)`` registers."""
        if not _is_int(max_registers) or not 1 <= max_registers <= MAX_READ:
            raise ValueError("max_registers must be 1..125, got %r" % (max_registers,))
        if not _is_int(max_gap) or max_gap < 0:
            raise ValueError("max_gap must be >= 0, got %r" % (max_gap,))
        limit = min(max_registers, self.max_registers)
        out: list[ReadRequest] = []
        cur: list[int] | None = None   # [function, start, end)
        for e in self.entries:
            s, end = e.address, e.address + e.width
            if e.width > limit:
                raise ValueError("register %r (%d registers) does not fit in a read of %d" % (e.name, e.width, limit))
            if (cur is not None and cur[0] == e.function and s - cur[2] <= max_gap
                    and max(end, cur[2]) - cur[1] <= limit):
                cur[2] = max(cur[2], end)
                continue
            if cur is not None:
                out.append(ReadRequest(cur[0], cur[1], cur[2] - cur[1]))
            cur = [e.function, s, end]
        if cur is not None:
            out.append(ReadRequest(cur[0], cur[1], cur[2] - cur[1]))
        return out


def _eastron(name: str, rows: Sequence[tuple[str, int, str, str, float]]) -> RegisterMap:
    return RegisterMap([{"name": n, "address": a, "function": READ_INPUT, "type": "float32",
                         "word_order": "big", "scale": s, "obis": o, "unit": u}
                        for n, a, o, u, s in rows], name=name, max_registers=80)


_K = 1000.0
SDM630 = _eastron("Eastron SDM630", [
    ("voltage_l1", 0x0000, "1.0.32.7.0.255", "V", 1), ("voltage_l2", 0x0002, "1.0.52.7.0.255", "V", 1),
    ("voltage_l3", 0x0004, "1.0.72.7.0.255", "V", 1),
    ("current_l1", 0x0006, "1.0.31.7.0.255", "A", 1), ("current_l2", 0x0008, "1.0.51.7.0.255", "A", 1),
    ("current_l3", 0x000A, "1.0.71.7.0.255", "A", 1),
    ("active_power_l1", 0x000C, "1.0.21.7.0.255", "W", 1), ("active_power_l2", 0x000E, "1.0.41.7.0.255", "W", 1),
    ("active_power_l3", 0x0010, "1.0.61.7.0.255", "W", 1),
    ("apparent_power_l1", 0x0012, "1.0.29.7.0.255", "VA", 1),
    ("apparent_power_l2", 0x0014, "1.0.49.7.0.255", "VA", 1),
    ("apparent_power_l3", 0x0016, "1.0.69.7.0.255", "VA", 1),
    ("reactive_power_l1", 0x0018, "1.0.23.7.0.255", "var", 1),
    ("reactive_power_l2", 0x001A, "1.0.43.7.0.255", "var", 1),
    ("reactive_power_l3", 0x001C, "1.0.63.7.0.255", "var", 1),
    ("power_factor_l1", 0x001E, "1.0.33.7.0.255", "", 1), ("power_factor_l2", 0x0020, "1.0.53.7.0.255", "", 1),
    ("power_factor_l3", 0x0022, "1.0.73.7.0.255", "", 1),
    ("phase_angle_l1", 0x0024, "1.0.81.7.4.255", "deg", 1), ("phase_angle_l2", 0x0026, "1.0.81.7.15.255", "deg", 1),
    ("phase_angle_l3", 0x0028, "1.0.81.7.26.255", "deg", 1),
    ("voltage_ln_average", 0x002A, "1.0.12.7.0.255", "V", 1),
    ("current_average", 0x002E, "1.0.11.7.0.255", "A", 1),
    ("current_sum", 0x0030, "1.0.90.7.0.255", "A", 1),
    ("active_power", 0x0034, "1.0.1.7.0.255", "W", 1),
    ("apparent_power", 0x0038, "1.0.9.7.0.255", "VA", 1),
    ("reactive_power", 0x003C, "1.0.3.7.0.255", "var", 1),
    ("power_factor", 0x003E, "1.0.13.7.0.255", "", 1),
    ("frequency", 0x0046, "1.0.14.7.0.255", "Hz", 1),
    ("import_active_energy", 0x0048, "1.0.1.8.0.255", "Wh", _K),
    ("export_active_energy", 0x004A, "1.0.2.8.0.255", "Wh", _K),
    ("import_reactive_energy", 0x004C, "1.0.3.8.0.255", "varh", _K),
    ("export_reactive_energy", 0x004E, "1.0.4.8.0.255", "varh", _K),
    ("apparent_energy", 0x0050, "1.0.9.8.0.255", "VAh", _K),
    ("active_power_demand", 0x0054, "1.0.1.4.0.255", "W", 1),
    ("active_power_demand_max", 0x0056, "1.0.1.6.0.255", "W", 1),
    ("voltage_l1_l2", 0x00C8, "1.0.128.7.0.255", "V", 1), ("voltage_l2_l3", 0x00CA, "1.0.129.7.0.255", "V", 1),
    ("voltage_l3_l1", 0x00CC, "1.0.130.7.0.255", "V", 1),
    ("current_neutral", 0x00E0, "1.0.91.7.0.255", "A", 1),
    ("total_active_energy", 0x0156, "1.0.15.8.0.255", "Wh", _K),
    ("total_reactive_energy", 0x0158, "1.0.131.8.0.255", "varh", _K),
    ("import_active_energy_l1", 0x015A, "1.0.21.8.0.255", "Wh", _K),
    ("import_active_energy_l2", 0x015C, "1.0.41.8.0.255", "Wh", _K),
    ("import_active_energy_l3", 0x015E, "1.0.61.8.0.255", "Wh", _K),
    ("export_active_energy_l1", 0x0160, "1.0.22.8.0.255", "Wh", _K),
    ("export_active_energy_l2", 0x0162, "1.0.42.8.0.255", "Wh", _K),
    ("export_active_energy_l3", 0x0164, "1.0.62.8.0.255", "Wh", _K),
    ("total_active_energy_l1", 0x0166, "1.0.35.8.0.255", "Wh", _K),
    ("total_active_energy_l2", 0x0168, "1.0.55.8.0.255", "Wh", _K),
    ("total_active_energy_l3", 0x016A, "1.0.75.8.0.255", "Wh", _K),
])

SDM120 = _eastron("Eastron SDM120", [
    ("voltage", 0x0000, "1.0.32.7.0.255", "V", 1),
    ("current", 0x0006, "1.0.31.7.0.255", "A", 1),
    ("active_power", 0x000C, "1.0.1.7.0.255", "W", 1),
    ("apparent_power", 0x0012, "1.0.9.7.0.255", "VA", 1),
    ("reactive_power", 0x0018, "1.0.3.7.0.255", "var", 1),
    ("power_factor", 0x001E, "1.0.13.7.0.255", "", 1),
    ("phase_angle", 0x0024, "1.0.81.7.4.255", "deg", 1),
    ("frequency", 0x0046, "1.0.14.7.0.255", "Hz", 1),
    ("import_active_energy", 0x0048, "1.0.1.8.0.255", "Wh", _K),
    ("export_active_energy", 0x004A, "1.0.2.8.0.255", "Wh", _K),
    ("import_reactive_energy", 0x004C, "1.0.3.8.0.255", "varh", _K),
    ("export_reactive_energy", 0x004E, "1.0.4.8.0.255", "varh", _K),
    ("active_power_demand", 0x0054, "1.0.1.4.0.255", "W", 1),
    ("active_power_demand_max", 0x0056, "1.0.1.6.0.255", "W", 1),
    ("total_active_energy", 0x0156, "1.0.15.8.0.255", "Wh", _K),
    ("total_reactive_energy", 0x0158, "1.0.131.8.0.255", "varh", _K),
])

MAPS: dict[str, RegisterMap] = {"sdm630": SDM630, "sdm120": SDM120}
_EMPTY_MAP = RegisterMap([], name="empty")


# --------------------------------------------------------------------------------------------
# encoders (pure Python: requests are few and small)
# --------------------------------------------------------------------------------------------

def _u(name: str, v: Any, lo: int, hi: int) -> int:
    if not _is_int(v) or not lo <= v <= hi:
        raise ValueError("%s must be an integer %d..%d, got %r" % (name, lo, hi, v))
    return int(v)


def _adu(unit: int, pdu: bytes, tcp: bool, transaction: int) -> bytes:
    unit = _u("unit", unit, 0, 255)
    if tcp:
        transaction = _u("transaction", transaction, 0, 0xFFFF)
        return struct.pack(">HHHB", transaction, 0, len(pdu) + 1, unit) + pdu
    frame = bytes((unit,)) + pdu
    return frame + crc16_modbus(frame).to_bytes(2, "little")


def encode_read(unit: int, function: int, start: int, count: int, *, tcp: bool = False,
                transaction: int = 0) -> bytes:
    """0x03 / 0x04 read request: ``function start(2) count(2)``, framed as RTU (CRC low byte
    first) or, with ``tcp=True``, behind an MBAP header with ``transaction``."""
    if function not in (READ_HOLDING, READ_INPUT):
        raise ValueError("function must be 3 or 4, got %r" % (function,))
    start = _u("start", start, 0, 0xFFFF)
    count = _u("count", count, 1, MAX_READ)
    if start + count > 0x10000:
        raise ValueError("start + count must not pass register 65535")
    return _adu(unit, struct.pack(">BHH", function, start, count), tcp, transaction)


def encode_read_holding(unit: int, start: int, count: int, **kw: Any) -> bytes:
    """0x03 read holding registers (see :func:`encode_read`)."""
    return encode_read(unit, READ_HOLDING, start, count, **kw)


def encode_read_input(unit: int, start: int, count: int, **kw: Any) -> bytes:
    """0x04 read input registers (see :func:`encode_read`)."""
    return encode_read(unit, READ_INPUT, start, count, **kw)


def encode_write_single(unit: int, address: int, value: int, *, tcp: bool = False,
                        transaction: int = 0) -> bytes:
    """0x06 write single register: ``06 address(2) value(2)``; the answer echoes it."""
    return _adu(unit, struct.pack(">BHH", WRITE_SINGLE, _u("address", address, 0, 0xFFFF),
                                  _u("value", value, 0, 0xFFFF)), tcp, transaction)


def encode_write_coil(unit: int, address: int, on: bool, *, tcp: bool = False,
                      transaction: int = 0) -> bytes:
    """0x05 write single coil: ``05 address(2) FF00|0000`` (ON|OFF); the answer echoes it."""
    return _adu(unit, struct.pack(">BHH", 0x05, _u("address", address, 0, 0xFFFF),
                                  0xFF00 if on else 0x0000), tcp, transaction)


def encode_write_multiple(unit: int, start: int, values: Sequence[int], *, tcp: bool = False,
                          transaction: int = 0) -> bytes:
    """0x10 write multiple registers: ``10 start(2) count(2) byte_count(1) values(2 each)``;
    the answer echoes start and count."""
    start = _u("start", start, 0, 0xFFFF)
    regs = [_u("values[%d]" % i, v, 0, 0xFFFF) for i, v in enumerate(values)]
    if not 1 <= len(regs) <= MAX_WRITE:
        raise ValueError("0x10 writes 1..123 registers, got %d" % len(regs))
    if start + len(regs) > 0x10000:
        raise ValueError("start + count must not pass register 65535")
    pdu = struct.pack(">BHHB%dH" % len(regs), WRITE_MULTIPLE, start, len(regs), 2 * len(regs), *regs)
    return _adu(unit, pdu, tcp, transaction)


def encode_diagnostic(unit: int, sub_function: int = 0, data: int = 0, *, tcp: bool = False,
                      transaction: int = 0) -> bytes:
    """0x08 diagnostics ``08 sub(2) data(2)``; sub-function 0 (return query data) is echoed."""
    return _adu(unit, struct.pack(">BHH", DIAGNOSTICS, _u("sub_function", sub_function, 0, 0xFFFF),
                                  _u("data", data, 0, 0xFFFF)), tcp, transaction)


def encode_read_response(unit: int, function: int, registers: Sequence[int], *, tcp: bool = False,
                         transaction: int = 0) -> bytes:
    """A 0x03/0x04 answer ``function byte_count registers`` (for simulators and tests)."""
    if function not in (READ_HOLDING, READ_INPUT):
        raise ValueError("function must be 3 or 4, got %r" % (function,))
    regs = [_u("registers[%d]" % i, v, 0, 0xFFFF) for i, v in enumerate(registers)]
    if not 1 <= len(regs) <= MAX_READ:
        raise ValueError("a read answer carries 1..125 registers, got %d" % len(regs))
    return _adu(unit, struct.pack(">BB%dH" % len(regs), function, 2 * len(regs), *regs), tcp, transaction)


def encode_write_ack(unit: int, function: int, word1: int, word2: int, *, tcp: bool = False,
                     transaction: int = 0) -> bytes:
    """The echo answer of 0x06 (address, value), 0x10 (start, count) or 0x08 (sub, data)."""
    if function not in (WRITE_SINGLE, DIAGNOSTICS, WRITE_MULTIPLE):
        raise ValueError("function must be 6, 8 or 16, got %r" % (function,))
    return _adu(unit, struct.pack(">BHH", function, _u("word1", word1, 0, 0xFFFF),
                                  _u("word2", word2, 0, 0xFFFF)), tcp, transaction)


def encode_exception(unit: int, function: int, code: int, *, tcp: bool = False,
                     transaction: int = 0) -> bytes:
    """An exception answer ``function|0x80 code``."""
    return _adu(unit, bytes((_u("function", function, 1, 0x7F) | 0x80, _u("code", code, 0, 255))),
                tcp, transaction)


# --------------------------------------------------------------------------------------------
# frames
# --------------------------------------------------------------------------------------------

class ModbusFrame:
    """One parsed Modbus frame.  ``payload`` is the PDU after the function byte (memoryview,
    CRC excluded).  Fields that do not apply to the function are None."""

    __slots__ = ("tcp", "transaction", "unit", "function", "exception_code", "payload",
                 "byte_count", "registers", "start", "count", "value", "sub_function", "data",
                 "crc", "direction")

    def __init__(self, **kw: Any) -> None:
        for k in self.__slots__:
            setattr(self, k, kw.get(k))

    @property
    def is_exception(self) -> bool:
        return self.exception_code is not None

    def __repr__(self) -> str:
        parts = ["%s=%r" % (k, getattr(self, k)) for k in self.__slots__
                 if k not in ("payload",) and getattr(self, k) is not None]
        return "ModbusFrame(%s)" % ", ".join(parts)


def _mode(tcp: Any) -> int:
    if tcp is True:
        return _MODE_TCP
    if tcp is False:
        return _MODE_RTU
    if tcp == "auto":
        return _MODE_AUTO
    raise ValueError("tcp must be True, False or 'auto', got %r" % (tcp,))


def _crc_ok(b: bytes, n: int) -> bool:
    return n >= 4 and crc16_modbus(b[:n - 2]) == b[n - 2] | (b[n - 1] << 8)


def _rtu_length(b: bytes, direction: str) -> int | None:
    """Expected RTU frame length from the function (None: need more bytes to know)."""
    n = len(b)
    fn = b[1]
    if direction == "response":
        if fn & 0x80:
            return 5
        if fn in (3, 4):
            return 5 + b[2] if n >= 3 else None
        if fn in (5, 6, 8, 16):
            return 8
    else:
        if fn in (3, 4, 5, 6, 8):
            return 8
        if fn == 16:
            return 9 + b[6] if n >= 7 else None
    return n if n >= 4 else None


def _count_offset(fn: int, direction: str) -> int:
    if direction == "response":
        return 2 if fn in (3, 4) else 1
    return 6 if fn == 16 else 1


def _split(data: Any, direction: str, tcp: Any) -> tuple[bool, int | None, int, bytes, int, int | None]:
    """Framing check shared by parse_frame: (tcp, transaction, unit, pdu, pdu offset, crc)."""
    b = bytes(data)
    n = len(b)
    mode = _mode(tcp)
    is_tcp = mode == _MODE_TCP or (mode == _MODE_AUTO and n >= 8 and b[2] == 0 and b[3] == 0
                                   and int.from_bytes(b[4:6], "big") == n - 6 and not _crc_ok(b, n))
    if is_tcp:
        if n < 8:
            raise TruncatedFrameError("Modbus TCP frame of %d bytes is shorter than MBAP + function" % n, n)
        if b[2] or b[3]:
            raise FrameError("MBAP protocol id is %d, not 0" % int.from_bytes(b[2:4], "big"), 2,
                             FrameStatus.BAD_FRAMING)
        ln = int.from_bytes(b[4:6], "big")
        if ln < 2:
            raise FrameError("MBAP length %d is less than unit + function" % ln, 4, FrameStatus.BAD_LENGTH)
        if n < 6 + ln:
            raise TruncatedFrameError("MBAP length says %d bytes, frame has %d" % (6 + ln, n), n)
        if n > 6 + ln:
            raise FrameError("%d bytes after the MBAP length's end" % (n - 6 - ln), 6 + ln, FrameStatus.BAD_LENGTH)
        return True, int.from_bytes(b[0:2], "big"), b[6], b[7:], 7, None
    if n < 2:
        raise TruncatedFrameError("Modbus RTU frame of %d bytes" % n, n)
    L = _rtu_length(b, direction)
    if L is None:
        raise TruncatedFrameError("Modbus RTU frame of %d bytes is too short for function 0x%02X" % (n, b[1]), n)
    if n != L:
        if _crc_ok(b, n):
            raise FrameError("function 0x%02X / byte count implies %d bytes, the intact frame has %d"
                             % (b[1], L, n), _count_offset(b[1], direction), FrameStatus.BAD_LENGTH)
        if n < L:
            raise TruncatedFrameError("Modbus RTU frame of %d bytes, its header says %d" % (n, L), n)
        if _crc_ok(b, L):
            raise FrameError("%d bytes after the end of the frame" % (n - L), L, FrameStatus.BAD_LENGTH)
        raise ChecksumError("CRC-16/MODBUS does not match", n - 2)
    if not _crc_ok(b, L):
        raise ChecksumError("CRC-16/MODBUS 0x%04X does not match the frame's 0x%04X"
                            % (crc16_modbus(b[:L - 2]), b[L - 2] | (b[L - 1] << 8)), L - 2)
    return False, None, b[0], b[1:L - 2], 1, b[L - 2] | (b[L - 1] << 8)


def parse_frame(data: Any, *, direction: Literal["response", "request"] = "response",
                tcp: Tcp = False) -> ModbusFrame:
    """Check the framing, length and CRC (RTU) or MBAP header (TCP) of one frame and split its
    fields.  Raises TruncatedFrameError, ChecksumError or FrameError (with the byte offset);
    an exception *response* is returned with ``exception_code`` set (use :func:`decode` to
    raise it)."""
    if direction not in ("response", "request"):
        raise ValueError("direction must be 'response' or 'request'")
    is_tcp, tid, unit, pdu, base, crc = _split(data, direction, tcp)
    fn = pdu[0]
    f = ModbusFrame(tcp=is_tcp, transaction=tid, unit=unit, function=fn, crc=crc,
                    payload=memoryview(pdu)[1:], direction=direction)
    ln = len(pdu)

    def bad(what: str, off: int = base) -> FrameError:
        return FrameError("function 0x%02X: %s" % (fn, what), off, FrameStatus.BAD_LENGTH)

    if direction == "response" and fn & 0x80:
        if ln != 2:
            raise bad("exception PDU of %d bytes" % ln)
        f.exception_code = pdu[1]
        return f
    if direction == "response" and fn in (3, 4):
        if ln < 2 or ln != 2 + pdu[1]:
            raise bad("byte count does not match the PDU length", base + 1)
        if pdu[1] & 1:
            raise bad("odd byte count %d" % pdu[1], base + 1)
        f.byte_count = pdu[1]
        f.registers = np.frombuffer(pdu, dtype=">u2", offset=2).astype(np.uint16)
        return f
    if fn in (3, 4, 5, 6, 8, 16):
        if direction == "request" and fn == 16:
            if ln < 6 or ln != 6 + pdu[5] or pdu[5] != 2 * int.from_bytes(pdu[3:5], "big"):
                raise bad("byte count does not match the register count / PDU length", base + 5)
            f.start, f.count, f.byte_count = int.from_bytes(pdu[1:3], "big"), int.from_bytes(pdu[3:5], "big"), pdu[5]
            f.registers = np.frombuffer(pdu, dtype=">u2", offset=6).astype(np.uint16)
            return f
        if ln != 5:
            raise bad("PDU of %d bytes (5 expected)" % ln)
        w1, w2 = int.from_bytes(pdu[1:3], "big"), int.from_bytes(pdu[3:5], "big")
        if fn in (3, 4, 16):
            f.start, f.count = w1, w2
        elif fn in (5, 6):
            f.start, f.value = w1, w2
        else:
            f.sub_function, f.data = w1, w2
        return f
    raise UnsupportedFrameError("function 0x%02X is not supported" % fn, base)


# --------------------------------------------------------------------------------------------
# requests (what an answer is checked against)
# --------------------------------------------------------------------------------------------

def request(unit: int | None, function: int, start: int, count: int, *,
            transaction: int | None = None) -> np.ndarray:
    """A REQUEST_DTYPE record (array of 1).  ``unit``/``transaction`` None: not checked.
    For 0x03/0x04/0x10 (start, count) are the registers; for 0x06 (address, value); for 0x08
    (sub-function, data) - the two words the answer must echo."""
    if function not in REQUEST_FUNCTIONS:
        raise ValueError("request function must be one of 3, 4, 6, 8, 16, got %r" % (function,))
    start = _u("start", start, 0, 0xFFFF)
    if function in (READ_HOLDING, READ_INPUT):
        count = _u("count", count, 1, MAX_READ)
        if start + count > 0x10000:
            raise ValueError("start + count must not pass register 65535")
    else:
        count = _u("count", count, 0, 0xFFFF)
    out = np.zeros(1, dtype=REQUEST_DTYPE)
    out[0] = (-1 if transaction is None else _u("transaction", transaction, 0, 0xFFFF),
              0xFFFF if unit is None else _u("unit", unit, 0, 255), start, count, function, 0)
    return out


def _request_from_frame(data: Any, tcp: Any) -> np.ndarray:
    f = parse_frame(data, direction="request", tcp=tcp)
    if f.function not in REQUEST_FUNCTIONS:
        raise ValueError("request function 0x%02X is not one this decoder checks" % f.function)
    if f.function == WRITE_SINGLE:
        w2 = f.value
    elif f.function == DIAGNOSTICS:
        return request(f.unit, f.function, f.sub_function, f.data, transaction=f.transaction)
    else:
        w2 = f.count
    return request(f.unit, f.function, f.start, w2, transaction=f.transaction)


def _is_single(req: Any) -> bool:
    if isinstance(req, (bytes, bytearray, memoryview)):
        return True
    if isinstance(req, tuple) and len(req) in (4, 5) and all(x is None or _is_int(x) for x in req):
        return True
    return False


def _one_request(req: Any, tcp: Any) -> np.ndarray:
    if isinstance(req, np.ndarray) and req.dtype == REQUEST_DTYPE:
        if req.shape != (1,) and req.shape != ():
            raise ValueError("one request expected, got an array of %d" % req.size)
        return req.reshape(1)
    if isinstance(req, (bytes, bytearray, memoryview)):
        return _request_from_frame(req, tcp)
    if isinstance(req, tuple) and len(req) in (4, 5):
        return request(*req[:4], transaction=req[4] if len(req) == 5 else None)
    raise TypeError("a request is (unit, function, start, count[, transaction]), the request "
                    "frame's bytes or a REQUEST_DTYPE record, not %r" % (type(req).__name__,))


def make_requests(items: Iterable[Any], *, tcp: Tcp = False) -> np.ndarray:
    """REQUEST_DTYPE array from tuples / request frames / records, one per frame."""
    parts = [_one_request(r, tcp) for r in items]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=REQUEST_DTYPE)


def encode_plan(unit: int, plan: Iterable[ReadRequest], *, tcp: bool = False,
                first_transaction: int = 0) -> tuple[list[bytes], np.ndarray]:
    """The request frames for a :meth:`RegisterMap.plan` and the matching REQUEST_DTYPE records
    (TCP: consecutive transaction ids from ``first_transaction``, wrapping at 65536) - what
    :func:`decode_batch` checks the answers against."""
    frames: list[bytes] = []
    recs: list[tuple] = []
    for i, r in enumerate(plan):
        tid = (first_transaction + i) & 0xFFFF
        frames.append(encode_read(unit, r.function, r.start, r.count, tcp=tcp, transaction=tid))
        recs.append((unit, r.function, r.start, r.count, tid if tcp else None))
    return frames, make_requests(recs)


# --------------------------------------------------------------------------------------------
# decoding
# --------------------------------------------------------------------------------------------

_WHY = {
    1: "frame shorter than its header", 2: "frame shorter than its function / byte count / MBAP length says",
    3: "CRC-16/MODBUS does not match", 4: "bytes after the end of the frame",
    5: "byte count / function implies another length than the intact frame has",
    6: "MBAP protocol id is not 0", 7: "MBAP length is less than unit + function",
    8: "more bytes than the MBAP length says", 9: "PDU length does not fit the function",
    10: "MBAP transaction id is not the request's", 11: "answer from another unit / slave address",
    12: "exception answers another function than the request's", 13: "exception",
    14: "function does not match the request", 15: "byte count is not 2 x the requested count",
    16: "echo does not match the request", 17: "no map entry in the requested registers",
    18: "out of memory", 19: "frame offsets point outside the batch buffer", 20: "odd byte count",
}


def _map_of(map: RegisterMap | str | None) -> RegisterMap:
    if map is None:
        return _EMPTY_MAP
    if isinstance(map, str):
        try:
            return MAPS[map.lower()]
        except KeyError:
            raise ValueError("unknown map %r (built-in: %s)" % (map, ", ".join(MAPS))) from None
    if not isinstance(map, RegisterMap):
        raise TypeError("map must be a RegisterMap or a built-in map name, not %r" % type(map).__name__)
    return map


def decode(data: Any, *, request: RequestLike, map: RegisterMap | str | None = None,
           tcp: Tcp = False, meter: int = 0, received_at: Any = None) -> np.ndarray:
    """Decode one response into a READING_DTYPE array.

    ``request`` is what was asked: ``(unit, function, start, count[, transaction])`` (unit /
    transaction None = not checked), the encoded request frame, or a REQUEST_DTYPE record.
    Raises ChecksumError, TruncatedFrameError, AddressMismatchError, ProtocolExceptionError
    (``.code``) or FrameError (``.status`` MISMATCH, BAD_LENGTH, BAD_FRAMING...).  A write /
    diagnostic echo that matches the request returns an empty array.
    """
    if request is None:
        raise ValueError("Modbus answers do not carry the start register: pass request=")
    rq = _one_request(request, tcp)
    m = _map_of(map)
    ts = int(received_ms(received_at, 1)[0])
    if not isinstance(data, (bytes, bytearray, memoryview)):
        data = memoryview(data)
    out, status, code, offset, why = decode_one(data, rq, m.native, _mode(tcp), _u("meter", meter, 0, 0xFFFFFFFF),
                                                ts)
    if status in (FrameStatus.OK, FrameStatus.NO_DATA):
        return out
    reason = "Modbus: " + _WHY.get(why, FrameStatus(status).name)
    if status == FrameStatus.PROTOCOL_EXCEPTION:
        reason = "Modbus exception %d (%s)" % (code, EXCEPTION_NAMES.get(code, "unknown"))
        raise ProtocolExceptionError(reason, offset, code)
    raise error_for_status(status, reason, offset, code)


def decode_batch(batch: FrameBatch | Iterable[Any], *, requests: Any, map: RegisterMap | str | None = None,
                 meter_ids: Any = None, received_at: Any = None,
                 tcp: Tcp | Sequence[bool] | np.ndarray = False,
                 out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Decode many responses in one native nogil call -> ``(readings, frame_status)``.

    ``requests``: one request for every frame (tuple / request bytes / record) or one per frame
    (a REQUEST_DTYPE array or a list).  ``meter_ids`` (uint32 per frame, default the frame
    index) goes into ``reading.meter``; ``received_at`` (datetime64[ms] scalar or one per frame,
    default now) into ``reading.ts``.  ``tcp``: False (RTU, also RTU over TCP), True (MBAP),
    "auto", or one bool per frame.  A bad frame gets its precise status and costs only its
    own readings.  ``out``: optional caller-owned READING_DTYPE array to decode into (reuse
    it across polls to spare the page faults of a fresh multi-MB output; its size must be at
    least :func:`capacity_needed`); the readings returned are then ``out[:n]``, a view that the
    next call with the same ``out`` overwrites.
    """
    if not isinstance(batch, FrameBatch):
        batch = FrameBatch.from_frames(batch)
    n = len(batch)
    if requests is None:
        raise ValueError("Modbus answers do not carry the start register: pass requests=")
    if _is_single(requests) or (isinstance(requests, np.ndarray) and requests.dtype == REQUEST_DTYPE
                                and requests.size == 1 and n != 1):
        reqs = _one_request(requests, tcp if isinstance(tcp, (bool, str)) else "auto")
        req_stride = 0
    else:
        if isinstance(requests, np.ndarray) and requests.dtype == REQUEST_DTYPE:
            reqs = np.ascontiguousarray(requests.reshape(-1))
        else:
            reqs = make_requests(requests, tcp=tcp if isinstance(tcp, (bool, str)) else "auto")
        if len(reqs) != n:
            raise ValueError("%d requests for %d frames" % (len(reqs), n))
        if not np.isin(reqs["function"], REQUEST_FUNCTIONS).all():
            raise ValueError("request functions must be 3, 4, 6, 8 or 16")
        req_stride = 1
    if isinstance(tcp, (bool, str)):
        modes = np.array([_mode(tcp)], dtype=np.uint8)
        mode_stride = 0
    else:
        modes = np.asarray(tcp, dtype=bool).astype(np.uint8).reshape(-1)
        if len(modes) != n:
            raise ValueError("%d tcp flags for %d frames" % (len(modes), n))
        mode_stride = 1
    if meter_ids is None:
        ids = np.arange(n, dtype=np.uint32)
    else:
        raw = np.asarray(meter_ids).reshape(-1)
        if len(raw) != n:
            raise ValueError("%d meter_ids for %d frames" % (len(raw), n))
        if n and (raw.dtype.kind not in "ui" or raw.min() < 0 or int(raw.max()) > 0xFFFFFFFF):
            raise ValueError("meter_ids must be integers 0..2**32-1")
        ids = np.ascontiguousarray(raw, dtype=np.uint32)
    ts = received_ms(received_at, n)
    ts_stride = 1 if ts.shape[0] == n and n > 1 else 0
    m = _map_of(map)
    return decode_many(batch, reqs, req_stride, m.native, modes, mode_stride, ids,
                       np.ascontiguousarray(ts), ts_stride, out)


def capacity_needed(batch: FrameBatch | Iterable[Any], *, requests: Any,
                    map: RegisterMap | str | None = None, tcp: Tcp = False) -> int:
    """Upper bound of the readings :func:`decode_batch` can produce for these frames and
    requests: the size an ``out`` array needs (a good read answer gives one reading per map
    entry inside its requested registers)."""
    if not isinstance(batch, FrameBatch):
        batch = FrameBatch.from_frames(batch)
    if _is_single(requests) or (isinstance(requests, np.ndarray) and requests.size == 1 and len(batch) != 1):
        return _capacity_needed(batch, _one_request(requests, tcp), 0, _map_of(map).native)
    reqs = requests if isinstance(requests, np.ndarray) else make_requests(requests, tcp=tcp)
    return _capacity_needed(batch, np.ascontiguousarray(reqs.reshape(-1)), 1, _map_of(map).native)
