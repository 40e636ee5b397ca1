# cython: language_level=3
"""DLMS/COSEM native decoder: HDLC (IEC 62056-46) and TCP wrapper (IEC 62056-47) framing,
xDLMS GET.response APDUs and A-XDR data, decoded straight into readings.

The per-frame request context (``req_t``) and the profile column table (``col_t``) are filled by
bindings/dlms.py as numpy structured arrays whose layouts mirror these structs (checked at import).
"""
from libc.stdint cimport uint8_t, int8_t, uint32_t, int32_t, uint64_t, int64_t


ctypedef struct req_t:
    uint64_t obis          # OBIS of a register value (packed, see obis_pack)
    int64_t now_ms         # receive time, ms UTC: ts of readings without a meter timestamp
    int64_t period_ms      # profile capture period in ms (0 = unknown)
    uint32_t meter         # reading.meter
    int32_t invoke         # expected invoke id (low 4 bits of invoke-id-and-priority), -1 = any
    int32_t col_start      # first column of this frame's profile columns in the column table
    int32_t col_count      # 0 = register value (no columns)
    int32_t dev_default    # deviation (DLMS minutes, UTC = local + deviation) used for 0x8000
    uint32_t exp_dst       # expected HDLC destination address (raw wire bytes, BE), 0 = any
    uint32_t exp_src       # expected HDLC source address (raw wire bytes, BE), 0 = any
    int8_t scaler          # register scaler (value * 10**scaler)
    uint8_t unit           # register DLMS unit
    uint8_t framing        # 0 auto, 1 HDLC, 2 wrapper, 3 bare APDU


ctypedef struct col_t:
    uint64_t obis
    int8_t scaler
    uint8_t unit
    uint8_t kind           # 0 value, 1 clock (date-time), 2 skip (status columns, strings ...)
