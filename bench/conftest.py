"""Benchmark harness: sizes, peer ratios.

Name benchmark functions ``test_<case>__<impl>`` and put ``ours`` as one impl; every group of
the same ``<case>`` is printed at the end as our/peer ratios of the median time (below 1 means
we are faster; ``x faster`` is the inverse).  ``METERPOLL_BENCH_SCALE`` (default 1.0) scales
the input sizes; CI runs with a small scale and few rounds so that every benchmark executes.
"""
from __future__ import annotations

import pathlib
import platform
import sys

import pytest

BENCH = str(pathlib.Path(__file__).resolve().parent)
if BENCH not in sys.path:  # bench files import ``benchutil``
    sys.path.insert(0, BENCH)

from benchutil import SCALE  # noqa: E402


def pytest_collection_modifyitems(config, items):
    for item in items:
        item.add_marker(pytest.mark.benchmark(group=item.name.split("__")[0].removeprefix("test_")))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    groups: dict[str, dict[str, float]] = {}
    for bench in session.benchmarks:
        if not bench.stats or not bench.stats.rounds:
            continue
        name = bench.name.split("[")[0]
        if "__" not in name:
            continue
        case, impl = name.removeprefix("test_").split("__", 1)
        param = bench.name[len(name):]
        groups.setdefault(case + param, {})[impl] = bench.stats.median
    tr = terminalreporter
    tr.section("meterpoll: our/peer time ratios (median; <1 = ours faster)")
    tr.write_line("python %s, %s, scale %g" % (platform.python_version(), platform.machine(), SCALE))
    for case, impls in sorted(groups.items()):
        ours = {k: v for k, v in impls.items() if k.startswith("ours")}
        peers = {k: v for k, v in impls.items() if not k.startswith("ours")}
        for oname, ot in sorted(ours.items()):
            for pname, pt in sorted(peers.items()):
                tr.write_line("%-40s %-22s vs %-22s ratio %8.4f  (%.1fx faster)"
                              % (case, oname, pname, ot / pt, pt / ot if ot else float("inf")))
            if not peers:
                tr.write_line("%-40s %-22s %.3f ms (no peer)" % (case, oname, ot * 1e3))
    sys.stdout.flush()
