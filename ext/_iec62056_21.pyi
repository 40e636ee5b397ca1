"""IEC 62056-21 mode C / DSMR P1 native decoder (see bindings/iec62056_21.py for the typed face)."""
import numpy as np
import numpy.typing as npt
from collections.abc import Buffer

from meterpoll.ext._frames import FrameBatch

REASONS: tuple[str, ...]

def decode_one(data: Buffer, bcc_mode: int, rx_ms: int, meter: int, utc_offset_min: int, /
               ) -> tuple[npt.NDArray[np.void], int, int, int, int]: ...
def decode_many(batch: FrameBatch, bcc_mode: int, meter_ids: npt.NDArray[np.uint32] | None,
                rx_ms: npt.NDArray[np.int64], utc_offset_min: int, /
                ) -> tuple[npt.NDArray[np.void], npt.NDArray[np.void]]: ...
