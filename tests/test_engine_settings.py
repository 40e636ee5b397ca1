"""serve settings from TOML."""
import pytest

from meterpoll.engine.config import ConfigError
from meterpoll.engine.settings import load_settings

GOOD = """
[store]
url = "sqlite:///tmp/x.db"

[engine]
max_concurrency = 64
tick = 0.1

[[meters]]
name = "a"
protocol = "modbus"
ip_address = "127.0.0.1"
port = 1502
connection_address = "3"
register_map = "sdm630"

[[meters]]
name = "b"
protocol = "mbus"
link = "serial"
serial = { port = "/dev/ttyUSB0", baudrate = 2400, parity = "E" }
days_of_week = "1,2"
"""


def test_good_file(tmp_path):
    p = tmp_path / "meterpoll.toml"
    p.write_text(GOOD)
    s = load_settings(p)
    assert s.store.url == "sqlite:///tmp/x.db" and s.engine.max_concurrency == 64
    assert [m.name for m in s.meters] == ["a", "b"]
    assert s.meters[1].serial.baudrate == 2400 and s.meters[1].days_of_week == (1, 2)


@pytest.mark.parametrize(("text", "match"), [
    ("[engine]\ntick = 0\n", r"engine.tick"),
    ("[engine]\nturbo = true\n", r"turbo"),
    ("[[meters]]\nname = 'x'\nprotocol = 'modbus'\nip_address = '1.2.3.4'\nport = 99999\n", r"meters\[0\]\.port"),
    ("[[meters]]\nname = 'x'\nprotocol = 'modbus'\n", r"meters\[0\]\.ip_address"),
    ("meters = 3\n", r"meters: must be an array"),
    ("[store\n", r"not valid TOML"),
])
def test_bad_settings_name_the_field(text, match):
    with pytest.raises(ConfigError, match=match):
        load_settings(text)


def test_missing_file():
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings("/nonexistent/meterpoll.toml")


def test_serve_keeps_meter_ids_from_the_store_across_restarts(tmp_path):
    """`meterpoll serve` registers meters in the store by name; a second start with the config
    reordered polls the same meters under the same ids."""
    import subprocess
    import sys

    import uvloop

    from meterpoll.engine.store import open_store

    db = tmp_path / "s.db"

    def conf(order):
        meters = "".join('[[meters]]\nname = "%s"\nprotocol = "modbus"\nip_address = "127.0.0.1"\nport = 1\n'
                         'waiting_time = 100\n' % n for n in order)
        p = tmp_path / "c.toml"
        p.write_text('[store]\nurl = "sqlite:///%s"\n%s' % (db, meters))
        return p

    for order in (["a", "b"], ["b", "a"]):
        out = subprocess.run([sys.executable, "-m", "meterpoll.engine.cli", "serve", "--config", str(conf(order)),
                              "--duration", "0.2"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr

    async def ids():
        store = await open_store("sqlite:///%s" % db)
        try:
            return sorted((m.name, m.id) for m in await store.list_meters())
        finally:
            await store.close()

    assert uvloop.run(ids()) == [("a", 1), ("b", 2)]


def test_engine_refuses_a_duplicate_meter_id():
    from meterpoll.engine.config import MeterConfig
    from meterpoll.engine.engine import Engine
    from test_engine_core import ToyDriver

    eng = Engine(drivers={"modbus": ToyDriver()}, schedule=False)
    cfg = MeterConfig(name="x", protocol="modbus", ip_address="127.0.0.1", port=1)
    assert eng.add_meter(cfg, meter_id=7) == 7
    with pytest.raises(ValueError, match="already registered"):
        eng.add_meter(cfg, meter_id=7)
    assert eng.add_meter(cfg) not in (7,)
