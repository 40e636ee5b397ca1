"""Frame checksums (CRC-16/MODBUS, CRC-16/X-25, CRC-16/ARC, M-Bus sum, IEC 62056-21 BCC).

Single forms take one bytes-like object and return an int; ``*_many`` forms take a
:class:`~meterpoll.FrameBatch` (or an iterable of frames) and return one numpy value per frame,
computed in one native loop with the GIL released.
"""
from meterpoll.ext._crc import (
    bcc, bcc_many, bcc_sum7, bcc_sum7_many, crc16_arc, crc16_arc_many, crc16_modbus,
    crc16_modbus_many, crc16_x25, crc16_x25_many, crc_accelerator, mbus_checksum,
    mbus_checksum_many,
)

__all__ = [
    "bcc", "bcc_many", "bcc_sum7", "bcc_sum7_many", "crc16_arc", "crc16_arc_many",
    "crc16_modbus", "crc16_modbus_many", "crc16_x25", "crc16_x25_many", "crc_accelerator",
    "mbus_checksum", "mbus_checksum_many",
]
