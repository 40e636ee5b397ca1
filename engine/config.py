"""The meter record: the poll server's fields (seed 002) plus protocol, link and what to read.

What each poll-server field means in meterpoll (units, defaults, ranges):

===================  =========================================================================
field                meaning
===================  =========================================================================
name                 display name, 1-200 characters
number_meter         the meter's factory (serial) number, as printed; checked against the
                     meter's answer where the protocol reports it; may be empty
connection_address   the meter's address on its bus: Modbus unit id 1-247; M-Bus primary
                     address 0-250; Mercury network address 0-240 (0 = broadcast, one meter per
                     line only); DLMS server address ``logical`` or ``logical/physical``
                     (e.g. ``1/17``); IEC 62056-21 device address (up to 32 letters/digits, empty
                     = any meter on the line)
password             DLMS low-level-security password, Mercury level password (6 digits),
                     IEC 62056-21 P1 password; empty = none
ip_address, port     TCP endpoint of the meter or of its TCP-to-RS-485 gateway (port 1-65535);
                     unused for ``link="serial"``
waiting_time         ms to the first byte of an answer (first-byte deadline), 50-120000,
                     default 2000
interval_time        ms of silence that ends an answer mid-frame (inter-byte deadline),
                     5-10000, default 200
pause_time           ms of quiet on the link between two exchanges, 0-60000, default 50
package_size         how much one request asks for: Modbus registers per read (1-125), DLMS
                     max receive PDU in bytes (64-65535), IEC/Mercury/M-Bus: unused; 0 = the
                     protocol's default
time_difference      seconds of clock drift tolerated before a clock event (and, if
                     ``set_clock``, a clock set), 1-86400, default 30
periodType           unit of the poll period: ``minutes``, ``hours``, ``days``, ``months``
period               (ours) number of periodType units between polls, 1-1440, default 15
data_polling_length  days of load profile to catch up after a gap or first start, 0-3650
                     (0 = no catch-up); catch-up resumes from the last stored interval
days_of_week         days polls may run, 1 = Monday .. 7 = Sunday; empty = every day; the
                     seed's ``"1,2,3"`` text form is accepted
days_of_month        days of the month polls may run, 1-31; empty = every day
===================  =========================================================================

Invalid values are refused with a message that names the field.
"""
from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

import msgspec

__all__ = ["MeterConfig", "SerialSettings", "ConfigError", "load_meter"]

Protocol = Literal["dlms", "mercury", "iec62056-21", "modbus", "mbus"]
Read = Literal["energy", "instant", "profile", "events", "clock"]


class ConfigError(ValueError):
    """A meter record is invalid; the message names the field."""


class SerialSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A serial port: device path and line settings (8N1 at 9600 Bd unless told)."""

    port: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    baudrate: Literal[300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 9600
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1


class MeterConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One meter (see the module docstring for what each field means)."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    protocol: Protocol
    connection_address: Annotated[str, msgspec.Meta(max_length=32)] = ""
    number_meter: Annotated[str, msgspec.Meta(max_length=64)] = ""
    password: Annotated[str, msgspec.Meta(max_length=64)] = ""
    link: Literal["tcp", "gateway", "serial"] = "tcp"
    ip_address: Annotated[str, msgspec.Meta(max_length=253)] = ""
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0
    serial: SerialSettings | None = None
    waiting_time: Annotated[int, msgspec.Meta(ge=50, le=120_000)] = 2000
    interval_time: Annotated[int, msgspec.Meta(ge=5, le=10_000)] = 200
    pause_time: Annotated[int, msgspec.Meta(ge=0, le=60_000)] = 50
    package_size: Annotated[int, msgspec.Meta(ge=0, le=65_535)] = 0
    time_difference: Annotated[int, msgspec.Meta(ge=1, le=86_400)] = 30
    periodType: Literal["minutes", "hours", "days", "months"] = "minutes"
    period: Annotated[int, msgspec.Meta(ge=1, le=1440)] = 15
    data_polling_length: Annotated[int, msgspec.Meta(ge=0, le=3650)] = 0
    days_of_week: tuple[Annotated[int, msgspec.Meta(ge=1, le=7)], ...] = ()
    days_of_month: tuple[Annotated[int, msgspec.Meta(ge=1, le=31)], ...] = ()
    reads: tuple[Read, ...] = ("energy", "instant")
    set_clock: bool = False
    register_map: str = ""            # Modbus: built-in map name (sdm630, sdm120) or TOML path
    id: str = ""

    def __post_init__(self) -> None:
        _check_address(self.protocol, self.connection_address)
        if self.link == "serial":
            if self.serial is None:
                raise ConfigError("serial: a serial link needs its port settings")
        else:
            if not self.ip_address:
                raise ConfigError("ip_address: required for a %s link" % self.link)
            _check_host(self.ip_address)
            if not 1 <= self.port <= 65535:
                raise ConfigError("port: must be 1-65535 for a %s link, got %d" % (self.link, self.port))
        if self.protocol == "modbus" and self.package_size > 125:
            raise ConfigError("package_size: Modbus reads at most 125 registers, got %d" % self.package_size)
        if self.protocol == "mercury" and self.password and not re.fullmatch(r"\d{6}", self.password):
            raise ConfigError("password: a Mercury password is 6 digits")

    @property
    def deadlines_ms(self) -> tuple[int, int]:
        return self.waiting_time, self.interval_time


def _check_host(host: str) -> None:
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    if not re.fullmatch(r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
                        r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?", host):
        raise ConfigError("ip_address: %r is neither an IP address nor a host name" % host)


def _int_address(text: str, lo: int, hi: int, what: str) -> int:
    try:
        v = int(text, 0)
    except ValueError:
        raise ConfigError("connection_address: %s must be a number %d-%d, got %r" % (what, lo, hi, text)) from None
    if not lo <= v <= hi:
        raise ConfigError("connection_address: %s must be %d-%d, got %d" % (what, lo, hi, v))
    return v


def _check_address(protocol: str, addr: str) -> None:
    if protocol == "modbus":
        _int_address(addr or "1", 1, 247, "a Modbus unit id")
    elif protocol == "mercury":
        _int_address(addr or "0", 0, 240, "a Mercury address")
    elif protocol == "mbus":
        if re.fullmatch(r"[0-9A-Fa-f]{16}", addr or ""):
            return  # secondary address
        _int_address(addr or "0", 0, 250, "an M-Bus primary address (or 16 hex digits)")
    elif protocol == "dlms":
        parts = (addr or "1").split("/")
        if len(parts) > 2:
            raise ConfigError("connection_address: DLMS takes 'logical' or 'logical/physical', got %r" % addr)
        _int_address(parts[0], 0, 0x3FFF, "a DLMS logical address")
        if len(parts) == 2:
            _int_address(parts[1], 0, 0x3FFF, "a DLMS physical address")
    elif protocol == "iec62056-21":
        if not re.fullmatch(r"[A-Za-z0-9 ]{0,32}", addr):
            raise ConfigError("connection_address: an IEC 62056-21 address is up to 32 letters and digits")


_LISTS = ("days_of_week", "days_of_month", "reads")


def load_meter(record: dict) -> MeterConfig:
    """A MeterConfig from a record in the poll server's form, where every value may be text
    (``"port": "502"``, ``"days_of_week": "1,2,3"``).  Raises ConfigError naming the field."""
    if not isinstance(record, dict):
        raise ConfigError("a meter record must be an object")
    rec = dict(record)
    for key in _LISTS:
        v = rec.get(key)
        if isinstance(v, str):
            rec[key] = [p.strip() for p in v.split(",") if p.strip()]
    try:
        return msgspec.convert(rec, MeterConfig, strict=False)
    except msgspec.ValidationError as e:
        msg = str(e)
        m = re.search(r"at `\$\.(\w+)", msg)
        if m and not msg.startswith(m.group(1)):
            msg = "%s: %s" % (m.group(1), msg)
        raise ConfigError(msg) from None
