"""Modbus RTU / TCP native decoder (use meterpoll.bindings.modbus)."""
import numpy as np
import numpy.typing as npt
from collections.abc import Buffer

from meterpoll.ext._frames import FrameBatch

MAP_DTYPE: np.dtype
REQUEST_DTYPE: np.dtype

def decode_one(data: Buffer, request: npt.NDArray[np.void], entries: npt.NDArray[np.void],
               mode: int, meter: int, ts: int, /) -> tuple[npt.NDArray[np.void], int, int, int, int]: ...
def decode_many(batch: FrameBatch, requests: npt.NDArray[np.void], req_stride: int,
                entries: npt.NDArray[np.void], modes: npt.NDArray[np.uint8], mode_stride: int,
                meter_ids: npt.NDArray[np.uint32], ts: npt.NDArray[np.int64], ts_stride: int,
                out: npt.NDArray[np.void] | None = None, /) -> tuple[npt.NDArray[np.void], npt.NDArray[np.void]]: ...
def capacity_needed(batch: FrameBatch, requests: npt.NDArray[np.void], req_stride: int,
                    entries: npt.NDArray[np.void], /) -> int: ...
def c_layouts() -> dict[str, tuple[int, dict[str, int]]]: ...
