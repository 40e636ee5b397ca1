"""The exception hierarchy of meterpoll; native modules raise these classes."""

__all__ = ["MeterpollError"]


class MeterpollError(Exception):
    """Base class of every error meterpoll raises on purpose."""
