"""The promises of the layout: one import name, the four mapped subpackages, a stub for every
native module, dependencies pointing one way, README and CI in step."""
import importlib.metadata
import importlib.util
import pathlib
import re
import subprocess
import sys

import pytest

import meterpoll

REPO = pathlib.Path(__file__).resolve().parents[1]
LAYERS = ["ext", "bindings", "engine", "api"]


@pytest.mark.parametrize("name", LAYERS)
def test_no_generic_top_level_modules(name):
    assert importlib.util.find_spec(name) is None, "%s must only exist as meterpoll.%s" % (name, name)
    assert importlib.util.find_spec("meterpoll." + name) is not None


def test_native_modules_know_their_full_name():
    from meterpoll.ext import _crc, _frames, _readings
    for mod in (_crc, _frames, _readings):
        assert mod.__name__.startswith("meterpoll.ext._")
    assert meterpoll.FrameBatch.__module__ == "meterpoll.ext._frames"


def test_every_native_module_is_a_trio():
    for pyx in sorted((REPO / "ext").glob("_*.pyx")):
        assert pyx.with_suffix(".pyi").exists(), "%s has no .pyi stub" % pyx.name
        assert pyx.with_suffix(".pxd").exists(), "%s has no .pxd" % pyx.name


def test_version_and_public_api():
    assert re.fullmatch(r"\d+\.\d+\.\d+", meterpoll.__version__)
    for name in meterpoll.__all__:
        assert hasattr(meterpoll, name), name


_IMPORT = re.compile(r"^\s*(?:from|import|cimport)\s+meterpoll\.(\w+)|^\s*from\s+meterpoll\.(\w+)\S*\s+c?import",
                     re.M)


@pytest.mark.parametrize("layer", LAYERS)
def test_dependencies_point_one_way(layer):
    """api -> engine -> bindings -> ext; nothing imports a layer above its own."""
    allowed = {"ext": {"ext"}, "bindings": {"ext", "bindings"},
               "engine": {"ext", "bindings", "engine"}, "api": {"bindings", "engine", "api"}}[layer]
    for path in (REPO / layer).rglob("*"):
        if path.suffix not in (".py", ".pyx", ".pxd", ".pyi"):
            continue
        for m in _IMPORT.finditer(path.read_text(encoding="utf-8")):
            used = m.group(1) or m.group(2)
            assert used in allowed, "%s imports meterpoll.%s" % (path.relative_to(REPO), used)


def _readme_command(name):
    text = (REPO / "README.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- command:%s -->\s*```sh\n(.+?)\n```" % name, text)
    assert m, "README.md lacks the %s command" % name
    return m.group(1)


def test_readme_gives_exactly_two_commands():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(re.findall(r"<!-- command:\w+ -->", text)) == 2
    assert "meterpoll demo" in _readme_command("demo")
    assert _readme_command("test").endswith("pytest")


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "readme_command test" in ci and 'eval "$test_cmd"' in ci


def test_installed_wheel_holds_only_meterpoll():
    """In a regular (non-editable) install every file belongs to meterpoll/ or its metadata."""
    files = importlib.metadata.files("meterpoll") or []
    if any(str(f).endswith(".pth") for f in files):
        pytest.skip("editable install: the wheel layout is checked in CI's regular install")
    for f in files:
        top = str(f).split("/")[0]
        assert top in ("meterpoll", "..") or top.startswith("meterpoll-"), str(f)
    names = {str(f) for f in files}
    for layer in LAYERS:
        assert "meterpoll/%s/__init__.py" % layer in names
    assert not any(n.endswith((".pyx", ".pxd", ".c", "CMakeLists.txt")) for n in names)
    assert any(n.startswith("meterpoll/ext/_crc") and n.endswith(".pyi") for n in names)


def test_command_line_self_check_passes():
    out = subprocess.run([sys.executable, "-m", "meterpoll.engine.cli", "selfcheck", "--frames", "2000"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "self-check passed" in out.stdout and "CRC-16/MODBUS" in out.stdout


def test_command_line_rejects_bad_arguments():
    out = subprocess.run([sys.executable, "-m", "meterpoll.engine.cli", "selfcheck", "--frames", "0"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--frames must be positive" in out.stderr
    out = subprocess.run([sys.executable, "-m", "meterpoll.engine.cli", "demo", "--rounds", "0"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "must be positive" in out.stderr
