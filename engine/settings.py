"""``meterpoll serve`` configuration, read from TOML and validated by msgspec.

    [store]
    url = "sqlite:///var/lib/meterpoll/readings.db"   # or postgresql://user@host/db

    [engine]
    max_concurrency = 512     # polls in flight across all links
    tick = 0.5                # seconds between decode-and-commit rounds

    [[meters]]                # one table per meter: the fields of meterpoll.engine.config
    name = "Feeder 7"
    protocol = "modbus"
    ip_address = "10.1.2.3"
    port = 502
    connection_address = "1"
    register_map = "sdm630"

Unknown keys are refused; an error names the table and field (``meters[3].port: ...``).
"""
from __future__ import annotations

import pathlib
import re
import tomllib
from typing import Annotated

import msgspec

from meterpoll.engine.config import ConfigError, MeterConfig, load_meter

__all__ = ["Settings", "StoreSettings", "EngineSettings", "load_settings"]


class StoreSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    url: str = "sqlite:///meterpoll.db"


class EngineSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    max_concurrency: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 512
    tick: Annotated[float, msgspec.Meta(gt=0, le=60)] = 0.5
    breaker_threshold: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 3
    probe_interval: Annotated[float, msgspec.Meta(gt=0)] = 600.0


class ApiSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8080


class Settings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    store: StoreSettings = StoreSettings()
    engine: EngineSettings = EngineSettings()
    api: ApiSettings = ApiSettings()
    meters: tuple[MeterConfig, ...] = ()


def load_settings(source: str | pathlib.Path) -> Settings:
    """Settings from a TOML file path or TOML text.  Raises ConfigError naming the field."""
    if isinstance(source, pathlib.Path) or (isinstance(source, str) and "\n" not in source and source.endswith(".toml")):
        path = pathlib.Path(source)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError("cannot read %s: %s" % (path, e.strerror)) from None
    else:
        text = str(source)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("not valid TOML: %s" % e) from None
    meters = raw.pop("meters", [])
    if not isinstance(meters, list):
        raise ConfigError("meters: must be an array of tables ([[meters]])")
    parsed = []
    for i, rec in enumerate(meters):
        try:
            parsed.append(load_meter(rec))
        except ConfigError as e:
            raise ConfigError("meters[%d].%s" % (i, e)) from None
    try:
        s = msgspec.convert(raw, Settings)
    except msgspec.ValidationError as e:
        msg = str(e)
        m = re.search(r"at `\$\.([\w.\[\]]+)`", msg)
        raise ConfigError("%s: %s" % (m.group(1), msg) if m else msg) from None
    return msgspec.structs.replace(s, meters=tuple(parsed))
