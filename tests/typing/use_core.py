"""Type-checked by tests/test_typing.py: how an embedder uses the native core's public face."""
import numpy as np

import meterpoll

crc: int = meterpoll.crc16_modbus(b"123456789")
fcs: int = meterpoll.crc16_x25(bytearray(b"abc"))
batch = meterpoll.FrameBatch.from_frames([b"\x01\x02", memoryview(b"\x03")])
sums: np.ndarray = meterpoll.crc16_modbus_many(batch)
first: bytes = batch[0]
sub: meterpoll.FrameBatch = batch[0:1]
n: int = len(batch)
code: int = meterpoll.obis("1.0.1.8.0.255")
text: str = meterpoll.obis_str(code)
status: meterpoll.FrameStatus = meterpoll.FrameStatus.OK
