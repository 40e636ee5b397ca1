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
