"""PostgreSQL binary COPY of READING_DTYPE arrays (native; see ext/_pgcopy.pyx for the format)."""
from typing import Iterator

import numpy as np
import numpy.typing as npt
from typing_extensions import Buffer

TS_MIN_MS: int
TS_MAX_MS: int
TUPLE_SIZE: int
HEADER: bytes
TRAILER: bytes
COLUMNS: tuple[str, str, str, str, str, str]

def first_bad(readings: npt.NDArray[np.void], /) -> int: ...
def build_copy(readings: npt.NDArray[np.void], start: int = 0, stop: int = -1, *,
               header: bool = True, trailer: bool = True) -> bytes: ...
def copy_chunks(readings: npt.NDArray[np.void], rows_per_chunk: int = 32768) -> Iterator[bytes]: ...
def parse_copy(data: Buffer, /) -> npt.NDArray[np.void]: ...
