"""meterpoll.api: the HTTP layer (msgspec)."""
