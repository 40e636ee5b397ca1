"""Makes tests/ importable for the helper modules beside this file: ``vectors`` (the shared
protocol vectors) and ``reference`` (pure-Python reference codecs, the test oracle)."""
import pathlib
import sys

TESTS = str(pathlib.Path(__file__).resolve().parent)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)
