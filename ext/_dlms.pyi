"""DLMS/COSEM native decoder (HDLC / wrapper framing, GET.response, A-XDR, readings)."""
from collections.abc import Buffer
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from meterpoll.ext._frames import FrameBatch

MAX_DEPTH: int
READ_REQ_DTYPE: np.dtype[Any]
COL_DTYPE: np.dtype[Any]

class DlmsDecodeError(ValueError): ...

class DateTime(NamedTuple):
    year: int
    month: int
    day: int
    weekday: int
    hour: int
    minute: int
    second: int
    hundredths: int
    deviation: int | None
    status: int

class Date(NamedTuple):
    year: int
    month: int
    day: int
    weekday: int

class Time(NamedTuple):
    hour: int
    minute: int
    second: int
    hundredths: int

def decode_batch(batch: FrameBatch, reqs: npt.NDArray[Any], cols: npt.NDArray[Any],
                 want_reasons: bool = False) -> tuple[Any, ...]: ...
def hdlc_frame(data: Buffer) -> tuple[int, ...]: ...
def split_frames(data: Buffer) -> tuple[npt.NDArray[np.int64], int]: ...
def item_apdu(data: Buffer, framing: int = 0) -> tuple[str, bytes]: ...
def datetime_fields(b: Buffer) -> DateTime: ...
def datetime_utc_ms(b: Buffer, dev_default: int = 0) -> tuple[int | None, int, int]: ...
def decode_data(data: Buffer, exact: bool = True) -> Any: ...
