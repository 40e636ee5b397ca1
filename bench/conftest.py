"""Benchmark harness: sizes, peer ratios.

Name benchmark functions ``test_<case>__<impl>`` and put ``ours`` as one impl; every group of
the same ``<case>`` is printed at the end as our/peer ratios of the min and of the median time
(below 1 means we are faster; the figure in parentheses is how many times faster).  ``METERPOLL_BENCH_SCALE`` (default 1.0) scales
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
        groups.setdefault(case + param, {})[impl] = (bench.stats.min, bench.stats.median)
    tr = terminalreporter
    tr.section("meterpoll: our/peer time ratios (<1 = ours faster; min is the steadier on a busy machine)")
    tr.write_line("python %s, %s, scale %g" % (platform.python_version(), platform.machine(), SCALE))
    for case, impls in sorted(groups.items()):
        ours = {k: v for k, v in impls.items() if k.startswith("ours")}
        peers = {k: v for k, v in impls.items() if not k.startswith("ours")}
        for oname, (omin, omed) in sorted(ours.items()):
            for pname, (pmin, pmed) in sorted(peers.items()):
                tr.write_line("%-34s %-12s vs %-14s min ratio %8.4f (%6.1fx)   median ratio %8.4f (%6.1fx)"
                              % (case, oname, pname, omin / pmin, pmin / omin if omin else float("inf"),
                                 omed / pmed, pmed / omed if omed else float("inf")))
            if not peers:
                tr.write_line("%-34s %-12s %.3f ms (no peer)" % (case, oname, omed * 1e3))
    sys.stdout.flush()
