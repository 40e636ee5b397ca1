"""Bit-at-a-time checksum definitions (the Rocksoft model), the oracle for the native kernels."""


def crc16_reflected(data: bytes, poly_reflected: int, init: int, xorout: int) -> int:
    crc = init
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ poly_reflected if crc & 1 else crc >> 1
    return crc ^ xorout


def crc16_modbus(data: bytes) -> int:
    return crc16_reflected(data, 0xA001, 0xFFFF, 0x0000)


def crc16_x25(data: bytes) -> int:
    return crc16_reflected(data, 0x8408, 0xFFFF, 0xFFFF)


def crc16_arc(data: bytes) -> int:
    return crc16_reflected(data, 0xA001, 0x0000, 0x0000)


def mbus_checksum(data: bytes) -> int:
    return sum(data) & 0xFF


def bcc(data: bytes) -> int:
    r = 0
    for b in data:
        r ^= b
    return r


def bcc_sum7(data: bytes) -> int:
    return sum(data) & 0x7F
