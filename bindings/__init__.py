"""meterpoll.bindings: the typed Python face of the native core.

Protocol codecs are submodules, re-exported at the top level: ``meterpoll.dlms``,
``meterpoll.mercury``, ``meterpoll.iec62056_21``, ``meterpoll.modbus``, ``meterpoll.mbus``, and
``meterpoll.dlms_apdu`` (DLMS request encoders, association, response builders).
"""
from meterpoll.bindings.checksums import (
    bcc, bcc_many, bcc_sum7, bcc_sum7_many, crc16_arc, crc16_arc_many, crc16_modbus,
    crc16_modbus_many, crc16_x25, crc16_x25_many, crc_accelerator, mbus_checksum,
    mbus_checksum_many,
)
from meterpoll.bindings.errors import (
    AddressMismatchError, ChecksumError, FrameError, MeterpollError, ProtocolExceptionError,
    TruncatedFrameError, UnsupportedFrameError,
)
from meterpoll.bindings.frames import FrameBatch
from meterpoll.bindings.readings import (
    FRAME_STATUS_DTYPE, READING_DTYPE, FrameStatus, Quality, Unit, obis, obis_str,
)

from meterpoll.bindings import dlms, dlms_apdu, iec62056_21, mbus, mercury, modbus  # noqa: E402

PROTOCOLS = ("dlms", "mercury", "iec62056_21", "modbus", "mbus")

__all__ = [
    "PROTOCOLS",
    "dlms",
    "dlms_apdu",
    "iec62056_21",
    "mbus",
    "mercury",
    "modbus",
    "FRAME_STATUS_DTYPE",
    "READING_DTYPE",
    "AddressMismatchError",
    "ChecksumError",
    "FrameBatch",
    "FrameError",
    "FrameStatus",
    "MeterpollError",
    "ProtocolExceptionError",
    "Quality",
    "TruncatedFrameError",
    "Unit",
    "UnsupportedFrameError",
    "obis",
    "obis_str",
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
