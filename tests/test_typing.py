"""mypy against the installed package: the .pyi stubs of the native modules must describe them
(a wrong stub makes this fail).  In an editable install mypy cannot follow the import hook, so
the check runs on the regular install CI makes."""
import importlib.metadata
import pathlib
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent


def _editable() -> bool:
    return any(str(f).endswith(".pth") for f in importlib.metadata.files("meterpoll") or [])


@pytest.mark.skipif(_editable(), reason="mypy cannot follow an editable install's import hook; CI checks the wheel")
def test_stubs_type_check_a_typical_use(tmp_path):
    out = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                          "--cache-dir", str(tmp_path), str(HERE / "typing" / "use_core.py")],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.skipif(_editable(), reason="see above")
def test_a_wrong_use_is_caught(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import meterpoll\nx: str = meterpoll.crc16_modbus(b'1')\n")
    out = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir", str(tmp_path), str(bad)],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 1 and "incompatible types" in out.stdout.lower()
