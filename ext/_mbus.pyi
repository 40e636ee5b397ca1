"""M-Bus RSP_UD batch decoder (native).  Use meterpoll.bindings.mbus, which checks arguments."""
import numpy as np
import numpy.typing as npt

from meterpoll.ext._frames import FrameBatch

def decode_batch(
    batch: FrameBatch,
    meter_ids: npt.NDArray[np.uint32] | None,
    received_at: npt.NDArray[np.int64] | None,
    received_scalar: int,
    media: npt.NDArray[np.int16] | None = None,
    medium_scalar: int = -1,
    /,
) -> tuple[npt.NDArray[np.void], npt.NDArray[np.void]]: ...
