"""Mercury 230/234 answer decoder (native).  See meterpoll.bindings.mercury for the typed face."""
from typing import Any

import numpy as np
import numpy.typing as npt

from meterpoll.ext._frames import FrameBatch

MK_ANY: int
MK_STATUS: int
MK_ENERGY: int
MK_AUX: int
MK_TIME: int
MK_JOURNAL: int
MK_SERIAL: int
MK_VERSION: int
MK_UNSUPPORTED: int
MK_PROFILE: int

def layout(addr: int, code: int, p1: int, p2: int, aux: int = 0) -> dict[str, Any]: ...
def decode_batch(
    batch: FrameBatch,
    requests: npt.NDArray[np.uint8] | None,
    meters: npt.NDArray[np.uint32],
    received: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.void], npt.NDArray[np.void]]: ...
