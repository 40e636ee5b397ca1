"""meterpoll.engine: scheduler, transports, protocol sessions and storage (asyncio/uvloop)."""
