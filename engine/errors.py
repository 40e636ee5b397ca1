"""Errors of the link layer.  Every failure of an exchange is one of these, so a session can
record the right reading quality (timeout, closed link, babble) and the next meter goes on."""
from __future__ import annotations

from meterpoll.bindings.errors import MeterpollError

__all__ = ["LinkError", "LinkTimeout", "LinkClosed", "FrameOverflow", "LinkBusy"]


class LinkError(MeterpollError):
    """An exchange on a link failed.  ``partial`` holds the bytes received before the failure."""

    def __init__(self, message: str, partial: bytes = b"") -> None:
        super().__init__(message)
        self.partial = partial


class LinkTimeout(LinkError, TimeoutError):
    """A deadline passed.  ``phase`` is "connect", "first_byte", "inter_byte" or "total"."""

    def __init__(self, phase: str, seconds: float, partial: bytes = b"") -> None:
        self.phase = phase
        self.seconds = seconds
        what = {"connect": "no connection", "first_byte": "no answer",
                "inter_byte": "answer stopped mid-frame", "total": "answer took too long"}[phase]
        super().__init__("%s within %.3f s (%s deadline)%s" % (
            what, seconds, phase.replace("_", "-"),
            ", %d bytes received" % len(partial) if partial else ""), partial)


class LinkClosed(LinkError, ConnectionError):
    """The peer closed the connection or the port went away (possibly mid-frame)."""


class FrameOverflow(LinkError):
    """The peer sent more bytes than any valid frame can hold (a babbling device)."""


class LinkBusy(LinkError):
    """The link is closing and takes no more exchanges."""
