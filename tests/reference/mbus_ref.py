"""Slow, obvious M-Bus RSP_UD decoder written from EN 13757-2/-3 and the rules documented in
bindings/mbus.py: the oracle for the native decoder.  Returns plain tuples, never numpy.

decode(frame, meter, rx_ms) -> (status, offset, code, readings) with readings a list of
(meter, obis_tuple, ts_ms, value, unit, quality).
"""
from __future__ import annotations

import datetime
import math
import struct

OK, CHECKSUM, TRUNCATED, BAD_LENGTH, BAD_ADDRESS, PROTOCOL_EXCEPTION, UNSUPPORTED, BAD_FRAMING = range(8)
TOO_DEEP, NO_DATA = 9, 12
Q_OK, Q_METER_ERROR, Q_CLOCK_INVALID = 0, 6, 7


class Stop(Exception):
    def __init__(self, status, offset):
        self.status = status
        self.offset = offset


# quantity names -> (unit code) ; ids match bindings.mbus.Quantity
ENERGY, VOLUME, MASS, ON_TIME, OP_TIME, POWER, VOLUME_FLOW, MASS_FLOW = 1, 2, 3, 4, 5, 6, 7, 8
FLOW_TEMP, RETURN_TEMP, TEMP_DIFF, EXT_TEMP, PRESSURE, HCA, FABNO = 9, 10, 11, 12, 13, 14, 15
VOLTAGE, CURRENT, ERROR_FLAGS, DATE, DATETIME = 16, 17, 18, 19, 20


def primary(code):
    """(quantity, factor to base unit, DLMS unit) of a primary VIF code (VIF & 0x7F) or None."""
    n = code & 7
    if code < 0x08:
        return ENERGY, 10.0 ** (n - 3), 30            # Wh
    if code < 0x10:
        return ENERGY, 10.0 ** n / 3600, 30           # J -> Wh
    if code < 0x18:
        return VOLUME, 10.0 ** (n - 6), 13
    if code < 0x20:
        return MASS, 10.0 ** (n - 3), 20
    if code < 0x28:
        secs = (1, 60, 3600, 86400)[code & 3]
        return (ON_TIME if code < 0x24 else OP_TIME), float(secs), 7
    if code < 0x30:
        return POWER, 10.0 ** (n - 3), 27
    if code < 0x38:
        return POWER, 10.0 ** n / 3600, 27            # J/h -> W
    if code < 0x40:
        return VOLUME_FLOW, 10.0 ** (n - 6), 15
    if code < 0x48:
        return VOLUME_FLOW, 10.0 ** (n - 7) * 60, 15  # per minute -> per hour
    if code < 0x50:
        return VOLUME_FLOW, 10.0 ** (n - 9) * 3600, 15
    if code < 0x58:
        return MASS_FLOW, 10.0 ** (n - 3) / 3600, 50  # kg/h -> kg/s
    if code < 0x6C:
        q = {0x58: FLOW_TEMP, 0x5C: RETURN_TEMP, 0x60: TEMP_DIFF, 0x64: EXT_TEMP, 0x68: PRESSURE}[code & ~3]
        unit = {FLOW_TEMP: 9, RETURN_TEMP: 9, TEMP_DIFF: 52, EXT_TEMP: 9, PRESSURE: 24}[q]
        return q, 10.0 ** ((code & 3) - 3), unit
    return {0x6C: (DATE, 1.0, 255), 0x6D: (DATETIME, 1.0, 255), 0x6E: (HCA, 1.0, 255),
            0x78: (FABNO, 1.0, 255)}.get(code)


def ext_fd(code):
    if code == 0x17:
        return ERROR_FLAGS, 1.0, 255
    if 0x40 <= code <= 0x4F:
        return VOLTAGE, 10.0 ** ((code & 15) - 9), 35
    if 0x50 <= code <= 0x5F:
        return CURRENT, 10.0 ** ((code & 15) - 12), 33
    return None


def ext_fb(code):
    n = code & 1
    table = {0x00: (ENERGY, 10.0 ** (n + 5), 30), 0x08: (ENERGY, 10.0 ** (n + 8) / 3600, 30),
             0x10: (VOLUME, 10.0 ** (n + 2), 13), 0x18: (MASS, 10.0 ** (n + 5), 20),
             0x28: (POWER, 10.0 ** (n + 5), 27), 0x30: (POWER, 10.0 ** (n + 8) / 3600, 27)}
    return table.get(code & ~1)


def medium_group(medium):
    if medium == 0x02:
        return 1, "elec"
    if medium == 0x03:
        return 7, "gas"
    if medium in (0x04, 0x0C, 0x0D):
        return 6, "thermal"
    if medium in (0x0A, 0x0B):
        return 5, "thermal"
    if medium in (0x06, 0x15):
        return 9, "water"
    if medium in (0x07, 0x16):
        return 8, "water"
    if medium == 0x08:
        return 4, "hca"
    return 0, "other"


def obis_for(fam, a, qty, func, storage, tariff, subunit, reverse):
    if func == 3 or storage > 254 or tariff > 254 or subunit > 254:
        return None
    f = 255 if storage == 0 else storage
    abstract = {ON_TIME: (96, 8, 0), OP_TIME: (96, 8, 1), FABNO: (96, 1, 0), ERROR_FLAGS: (97, 97, 0)}
    if qty in abstract:
        if func or tariff or reverse:
            return None
        c, d, e = abstract[qty]
        return (0, subunit, c, d, e, f)
    if qty in (VOLTAGE, CURRENT) or (fam == "elec" and qty in (ENERGY, POWER)):
        if qty in (VOLTAGE, CURRENT):
            if reverse:
                return None
            c, d = (32 if qty == VOLTAGE else 31), 7
        else:
            c, d = (2 if reverse else 1), (8 if qty == ENERGY else 7)
        d = {0: d, 1: 6, 2: 3}[func]
        return (1, subunit, c, d, tariff, f)
    if reverse:
        return None
    tables = {
        "water": {VOLUME: 1, VOLUME_FLOW: 2, FLOW_TEMP: 3},
        "gas": {VOLUME: 3},
        "thermal": {ENERGY: 1, VOLUME: 2, POWER: 8, VOLUME_FLOW: 9, FLOW_TEMP: 10, RETURN_TEMP: 11,
                    TEMP_DIFF: 12},
        "hca": {HCA: 1},
    }
    d = {0: 0, 1: 5, 2: 4}[func]
    c = tables.get(fam, {}).get(qty)
    if c is None:
        return (0, subunit, 200 + qty, d, tariff, f)
    return (a, subunit, c, d, tariff, f)


def year(y):
    return 2000 + y if y < 81 else 1900 + y


def date_ms(kind, d):
    """ms of a type G / F / I date; None if invalid; 'skip' if not a date encoding."""
    try:
        if kind == DATE:
            if len(d) != 2:
                return "skip"
            dt = datetime.datetime(year(((d[1] & 0xF0) >> 1) | ((d[0] & 0xE0) >> 5)), d[1] & 0x0F, d[0] & 0x1F)
        elif len(d) == 4:
            if d[0] & 0x80:
                return None
            dt = datetime.datetime(year(((d[3] & 0xF0) >> 1) | ((d[2] & 0xE0) >> 5)), d[3] & 0x0F,
                                   d[2] & 0x1F, d[1] & 0x1F, d[0] & 0x3F)
        elif len(d) == 6:
            if d[1] & 0x80:
                return None
            dt = datetime.datetime(year(((d[4] & 0xF0) >> 1) | ((d[3] & 0xE0) >> 5)), d[4] & 0x0F,
                                   d[3] & 0x1F, d[2] & 0x1F, d[1] & 0x3F, d[0] & 0x3F)
        else:
            return "skip"
    except ValueError:
        return None
    return int(dt.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)


def value_of(dt, d):
    """(value, bad_bcd)"""
    if dt == 5:
        return struct.unpack("<f", d)[0], False
    if dt >= 9:
        digits = d[::-1].hex().upper()
        neg = digits[0] == "F"
        if neg:
            digits = "0" + digits[1:]
        if not digits.isdigit():
            return math.nan, True
        return (-int(digits) if neg else int(digits)), False
    return int.from_bytes(d, "little", signed=True), False


LENGTHS = {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 4, 6: 6, 7: 8, 8: 0, 9: 1, 10: 2, 11: 3, 12: 4, 14: 6}


def decode(frame: bytes, meter: int = 0, rx_ms: int = 0, medium: int | None = None):
    try:
        return _decode(bytes(frame), meter, rx_ms, medium)
    except Stop as s:
        return s.status, s.offset, 0, []


def _decode(f, meter, rx, medium_default):
    n = len(f)
    if n == 0:
        raise Stop(TRUNCATED, 0)
    if f[0] == 0xE5:
        if n == 1:
            return NO_DATA, -1, 0, []
        raise Stop(BAD_LENGTH, 1)
    if f[0] == 0x10:
        if n < 5:
            raise Stop(TRUNCATED, n)
        if n > 5:
            raise Stop(BAD_LENGTH, 5)
        if f[4] != 0x16:
            raise Stop(BAD_FRAMING, 4)
        if (f[1] + f[2]) % 256 != f[3]:
            raise Stop(CHECKSUM, 3)
        return NO_DATA, -1, 0, []
    if f[0] != 0x68:
        raise Stop(BAD_FRAMING, 0)
    if n < 4:
        raise Stop(TRUNCATED, n)
    if f[1] != f[2]:
        raise Stop(BAD_FRAMING, 2)
    if f[3] != 0x68:
        raise Stop(BAD_FRAMING, 3)
    L = f[1]
    if L < 3:
        raise Stop(BAD_LENGTH, 1)
    if n < L + 6:
        raise Stop(TRUNCATED, n)
    if n > L + 6:
        raise Stop(BAD_LENGTH, L + 6)
    if f[L + 5] != 0x16:
        raise Stop(BAD_FRAMING, L + 5)
    if sum(f[4:4 + L]) % 256 != f[L + 4]:
        raise Stop(CHECKSUM, L + 4)
    c, ci = f[4], f[6]
    if c & 0x4F != 0x08:
        raise Stop(UNSUPPORTED, 4)
    end = 4 + L
    pos = 7
    medium = medium_default     # for CI 0x7A / 0x78; the 0x72 header's byte wins
    hstatus = 0
    msb = ci == 0x76                 # data fields most significant byte first
    if ci in (0x72, 0x76):
        if end - pos < 12:
            raise Stop(TRUNCATED, end)
        medium = f[pos + 7]
        hstatus = f[pos + 9]
        pos += 12
    elif ci == 0x7A:
        if end - pos < 4:
            raise Stop(TRUNCATED, end)
        hstatus = f[pos + 1]
        pos += 4
    elif ci == 0x78:
        pass
    elif ci == 0x70:
        return PROTOCOL_EXCEPTION, 6, (f[pos] if pos < end else 0), []
    else:
        raise Stop(UNSUPPORTED, 6)
    a, fam = medium_group(medium)
    base_q = Q_METER_ERROR if (hstatus & 0x03 or hstatus & 0x18) else Q_OK
    clocks = {}            # storage -> ms or None (invalid)
    out = []               # [meter, obis, storage, value, unit, q]
    more = False

    def need(k, at):
        if end - at < k:
            raise Stop(TRUNCATED, at if k == 1 else end)

    while pos < end:
        rec = pos
        dif = f[pos]
        pos += 1
        if dif & 0x0F == 0x0F:
            if dif == 0x0F:
                break
            if dif == 0x1F:
                more = True
                break
            if dif == 0x2F:
                continue
            raise Stop(UNSUPPORTED, rec)
        difes = []
        last = dif
        while last & 0x80:
            need(1, pos)
            if len(difes) == 10:
                raise Stop(TOO_DEEP, pos)
            last = f[pos]
            difes.append(last)
            pos += 1
        storage = (dif >> 6) & 1
        tariff = subunit = 0
        for i, dv in enumerate(difes):
            storage |= (dv & 15) << (1 + 4 * i)
            tariff |= ((dv >> 4) & 3) << (2 * i)
            subunit |= ((dv >> 6) & 1) << i
        func = (dif >> 4) & 3
        dt = dif & 15
        need(1, pos)
        vif = f[pos]
        pos += 1
        info = None
        vifes = []
        last = vif
        if vif & 0x7F == 0x7C:
            need(1, pos)
            k = f[pos]
            pos += 1
            need(k, pos) if k else None
            pos += k
        elif vif in (0xFD, 0xFB, 0xEF):
            need(1, pos)
            last = f[pos]
            pos += 1
            info = ext_fd(last & 0x7F) if vif == 0xFD else (ext_fb(last & 0x7F) if vif == 0xFB else None)
            vifes.append(None)
        else:
            info = primary(vif & 0x7F)
        while last & 0x80:
            need(1, pos)
            if len(vifes) == 10:
                raise Stop(TOO_DEEP, pos)
            last = f[pos]
            pos += 1
            vifes.append(last & 0x7F)
        mult = 1.0
        reverse = unknown = False
        for v in vifes:
            if v is None:
                continue
            if 0x70 <= v <= 0x77:
                mult *= 10.0 ** ((v & 7) - 6)
            elif v == 0x7D:
                mult *= 1000.0
            elif v == 0x3B:
                pass
            elif v == 0x3C:
                reverse = True
            else:
                unknown = True
        if dt == 0x0D:
            need(1, pos)
            lv = f[pos]
            if lv <= 0xBF:
                ln = lv
            elif lv <= 0xFA:
                ln = lv - {0xC0: 0xC0, 0xD0: 0xD0, 0xE0: 0xE0, 0xF0: 0xF0}[lv & 0xF0]
            else:
                raise Stop(UNSUPPORTED, pos)
            pos += 1
            need(ln, pos) if ln else None
            pos += ln
            continue
        ln = LENGTHS[dt]
        need(ln, pos) if ln else None
        data = f[pos:pos + ln]
        if msb:
            data = data[::-1]
        pos += ln
        if ln == 0 or info is None or unknown:
            continue
        qty, factor, unit = info
        if qty in (DATE, DATETIME):
            if func or storage >= 64 or reverse or mult != 1.0:
                continue
            if qty == DATE and storage == 0:
                continue
            if storage in clocks or dt == 5 or dt >= 9:
                continue
            ms = date_ms(qty, data)
            if ms == "skip":
                continue
            clocks[storage] = ms
            continue
        ob = obis_for(fam, a, qty, func, storage, tariff, subunit, reverse)
        if ob is None:
            continue
        raw, bad = value_of(dt, data)
        value = raw * factor * mult
        out.append([meter, ob, storage, value, unit, Q_METER_ERROR if bad else base_q])
    readings = []
    for m, ob, storage, value, unit, q in out[:256]:
        ts = rx
        if storage in clocks:
            if clocks[storage] is None:
                if q == Q_OK:
                    q = Q_CLOCK_INVALID
            else:
                ts = clocks[storage]
        readings.append((m, ob, ts, value, unit, q))
    return OK, -1, hstatus | (0x100 if more else 0), readings
