"""Running the engine's event loop: uvloop by default, the stock asyncio loop (with a warning)
where uvloop cannot be imported."""
from __future__ import annotations

import asyncio
import warnings
from typing import Any, Coroutine, TypeVar

__all__ = ["run", "loop_kind"]

T = TypeVar("T")


def loop_kind() -> str:
    """"uvloop" or "asyncio": what :func:`run` will use."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def run(coro: Coroutine[Any, Any, T], *, debug: bool = False) -> T:
    """Run ``coro`` to completion on uvloop, or on asyncio with a RuntimeWarning if uvloop is
    missing (e.g. on Windows)."""
    try:
        import uvloop
    except ImportError:
        warnings.warn("uvloop is not installed: running on the stock asyncio loop (slower)",
                      RuntimeWarning, stacklevel=2)
        return asyncio.run(coro, debug=debug)
    return uvloop.run(coro, debug=debug)
