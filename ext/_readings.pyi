"""Reading and frame-status layouts shared by the native decoders."""
import numpy as np
import numpy.typing as npt

READING_DTYPE: np.dtype
FRAME_STATUS_DTYPE: np.dtype

def c_layouts() -> dict[str, tuple[int, dict[str, int]]]: ...
def _synthetic(n: int, initial_capacity: int = 16) -> npt.NDArray[np.void]: ...
