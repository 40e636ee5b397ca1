"""meterpoll.bindings: the typed Python face of the native core."""
from meterpoll.bindings.checksums import (
    bcc, bcc_many, bcc_sum7, bcc_sum7_many, crc16_arc, crc16_arc_many, crc16_modbus,
    crc16_modbus_many, crc16_x25, crc16_x25_many, crc_accelerator, mbus_checksum,
    mbus_checksum_many,
)
from meterpoll.bindings.errors import MeterpollError
from meterpoll.bindings.frames import FrameBatch

__all__ = [
    "FrameBatch",
    "MeterpollError",
    "bcc",
    "bcc_many",
    "bcc_sum7",
    "bcc_sum7_many",
    "crc16_arc",
    "crc16_arc_many",
    "crc16_modbus",
    "crc16_modbus_many",
    "crc16_x25",
    "crc16_x25_many",
    "crc_accelerator",
    "mbus_checksum",
    "mbus_checksum_many",
]
