"""The command line against simulators on loopback: `meterpoll poll` for every protocol (table
and JSON), a clean non-zero exit with a one-line reason when the meter cannot be reached, and
`meterpoll sim` serving a bounded time."""
import asyncio
import json
import subprocess
import sys
import threading

import pytest
import uvloop

from meterpoll.engine.drivers import simulator
from meterpoll.engine.sim.server import SimServer

CLI = [sys.executable, "-m", "meterpoll.engine.cli"]


class Sim:
    """A simulator on its own loop in a thread, so the CLI subprocess can poll it."""

    def __init__(self, protocol, **opts):
        self.protocol, self.opts = protocol, opts
        self.port = None
        self.ready = threading.Event()
        self.stop = None

    def __enter__(self):
        async def main():
            self.loop = asyncio.get_running_loop()
            self.stop = asyncio.Event()
            async with SimServer(simulator(self.protocol, **self.opts)) as srv:
                self.port = srv.port
                self.ready.set()
                await self.stop.wait()

        self.thread = threading.Thread(target=lambda: uvloop.run(main()), daemon=True)
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.stop.set)  # the event belongs to the simulator's loop
        self.thread.join(10)


@pytest.mark.parametrize(("protocol", "extra", "obis"), [
    ("modbus", ["--unit", "1", "--map", "sdm630"], "1.0.32.7.0.255"),
    ("mbus", ["--address", "1"], "6.0.1.0.0.255"),
    ("dlms", ["--client", "16", "--server", "1"], "1.0.1.8.0.255"),
    ("mercury", ["--address", "1", "--password", "111111"], "1.0.1.8.0.255"),
    ("iec62056-21", [], "1.0.1.8.0.255"),
])
def test_poll_each_protocol_as_json(protocol, extra, obis):
    with Sim(protocol, addresses=(1,), seed=5) as sim:
        out = subprocess.run(CLI + ["poll", "--protocol", protocol, "--host", "127.0.0.1", "--port", str(sim.port),
                                    "--json", *extra], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert rows and all(r["status"] == "OK" for r in rows)
    assert set(rows[0]) == {"meter", "obis", "ts", "value", "unit", "status"}
    assert any(r["obis"] == obis and r["value"] > 0 for r in rows), [r["obis"] for r in rows]


def test_poll_table_and_obis_filter():
    with Sim("modbus", addresses=(1,), seed=2) as sim:
        out = subprocess.run(CLI + ["poll", "--protocol", "modbus", "--host", "127.0.0.1", "--port", str(sim.port),
                                    "--unit", "1", "--obis", "1.0.32.7.0.255", "--obis", "1.0.14.7.0.255"],
                             capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:3] == ["meter", "obis", "ts"] and len(lines) == 3


def test_poll_unreachable_meter_exits_non_zero_with_one_line():
    out = subprocess.run(CLI + ["poll", "--protocol", "modbus", "--host", "127.0.0.1", "--port", "1", "--json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    err = out.stderr.strip().splitlines()
    assert len(err) == 1 and "cannot connect" in err[0]
    assert all(json.loads(l)["value"] is None for l in out.stdout.splitlines())  # NaN, never 0


def test_sim_command_serves_for_a_bounded_time():
    out = subprocess.run(CLI + ["sim", "--protocol", "mbus", "--count", "3", "--port", "0", "--duration", "0.2"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "ports within" in out.stderr  # port 0 refused: ports are explicit
    out = subprocess.run(CLI + ["sim", "--protocol", "mbus", "--count", "3", "--port", "27500", "--duration", "0.2"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "3 simulated mbus meters on 127.0.0.1:27500-27502" in out.stdout
