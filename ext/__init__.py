"""meterpoll.ext: the native core (Cython).  Bytes and arrays only: no I/O, no asyncio.

Internal: import the typed face from :mod:`meterpoll` / :mod:`meterpoll.bindings` instead.
"""
