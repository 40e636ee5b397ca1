"""The exception hierarchy of meterpoll.  Native modules report a status; this module maps a
status to its exception class in one place (:func:`error_for_status`)."""
from __future__ import annotations

__all__ = [
    "ChecksumError",
    "FrameError",
    "MeterpollError",
    "ProtocolExceptionError",
    "TruncatedFrameError",
    "UnsupportedFrameError",
    "AddressMismatchError",
    "error_for_status",
]


class MeterpollError(Exception):
    """Base class of every error meterpoll raises on purpose."""


class FrameError(MeterpollError, ValueError):
    """A frame could not be decoded.  ``offset`` is the byte offset in the frame where decoding
    stopped (-1 if not known), ``reason`` the text, ``status`` the :class:`FrameStatus`."""

    status: int = 7  # FrameStatus.BAD_FRAMING

    def __init__(self, reason: str, offset: int = -1, status: int | None = None) -> None:
        self.reason = reason
        self.offset = offset
        if status is not None:
            self.status = status
        super().__init__(reason if offset < 0 else "%s (at byte %d)" % (reason, offset))


class ChecksumError(FrameError):
    """CRC, checksum or BCC does not match the frame."""

    status = 1


class TruncatedFrameError(FrameError):
    """The frame ends before its length field or structure says it should."""

    status = 2


class AddressMismatchError(FrameError):
    """The answer comes from another address than the one asked."""

    status = 4


class ProtocolExceptionError(FrameError):
    """The meter answered with an exception or error code (``code``)."""

    status = 5

    def __init__(self, reason: str, offset: int = -1, code: int = 0) -> None:
        self.code = code
        super().__init__(reason, offset)


class UnsupportedFrameError(FrameError):
    """Well-formed, but uses a function or type this decoder does not handle."""

    status = 6


_BY_STATUS: dict[int, type[FrameError]] = {
    1: ChecksumError,
    2: TruncatedFrameError,
    4: AddressMismatchError,
    6: UnsupportedFrameError,
}


def error_for_status(status: int, reason: str, offset: int = -1, code: int = 0) -> FrameError:
    """The exception for a non-OK :class:`FrameStatus` (not raised: the caller raises it)."""
    if status == 5:
        return ProtocolExceptionError(reason, offset, code)
    cls = _BY_STATUS.get(status)
    if cls is not None:
        return cls(reason, offset)
    return FrameError(reason, offset, status)
