"""Frame batches: many frames in one contiguous buffer (Arrow binary-array layout)."""
from meterpoll.ext._frames import FrameBatch

__all__ = ["FrameBatch"]
