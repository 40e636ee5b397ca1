"""A throw-away PostgreSQL server for the store tests and benchmarks.

``PgServer`` runs Debian's own server binaries (``initdb``, ``pg_ctl`` under
``/usr/lib/postgresql/<version>/bin``, newest version first, or ``pg_config --bindir``) on a
fresh data directory in /tmp, listening on 127.0.0.1 on a free port, with trust
authentication for the superuser ``meterpoll``.  PostgreSQL refuses to run as root: when the
tests run as root the server runs as the unprivileged user ``nobody`` (the data directory is
handed to it).  ``stop()`` shuts the server down (immediate mode) and removes the directory.

The binaries come from Debian's ``postgresql`` package (``apt-get install -y postgresql``,
done by .ci/run).  If they are missing, :func:`require_server` FAILS the tests with a message
saying so, unless ``METERPOLL_SKIP_PG=1`` is set, which skips them explicitly.
"""
from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pathlib
import pwd
import re
import shutil
import socket
import subprocess
import tempfile

__all__ = ["PgServer", "find_bindir", "require_server", "PgUnavailable"]

SKIP_ENV = "METERPOLL_SKIP_PG"


class PgUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine (or the server would not start)."""


def _version_key(path: str) -> tuple[int, ...]:
    m = re.search(r"/postgresql/([\d.]+)/bin$", path)
    return tuple(int(x) for x in m.group(1).split(".")) if m else (0,)


def find_bindir() -> str | None:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres`` (newest version), or None."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10)
            if out.returncode == 0 and out.stdout.strip():
                candidates.append(out.stdout.strip())
    for d in candidates:
        if all(os.access(os.path.join(d, exe), os.X_OK) for exe in ("initdb", "pg_ctl", "postgres")):
            return d
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    """One private server.  ``settings`` are extra ``postgresql.conf`` lines (name -> value);
    the defaults favour a quick test run (``fsync=off``) unless ``durable=True``."""

    USER = "meterpoll"

    def __init__(self, *, durable: bool = False, settings: dict[str, str] | None = None) -> None:
        self.bindir = find_bindir()
        if self.bindir is None:
            raise PgUnavailable(
                "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found under "
                "/usr/lib/postgresql/*/bin: install Debian's package with "
                "`apt-get install -y postgresql` (.ci/run does), or set %s=1 to skip the "
                "PostgreSQL store tests explicitly" % SKIP_ENV)
        self.port = 0
        self.datadir: pathlib.Path | None = None
        self._root: str | None = None
        self._as: tuple[int, int] | None = None
        self.durable = durable
        self.settings = dict(settings or {})

    # ----------------------------------------------------------------------------------------
    def _run(self, args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
        kwargs: dict = {}
        if self._as is not None:
            kwargs.update(user=self._as[0], group=self._as[1], extra_groups=[])
        env = {"PATH": self.bindir + ":/usr/bin:/bin", "LC_ALL": "C", "LANG": "C", "TZ": "UTC"}
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env,
                              cwd=self._root, stdin=subprocess.DEVNULL, **kwargs)

    def start(self) -> "PgServer":
        self._root = tempfile.mkdtemp(prefix="meterpoll-pg-")
        atexit.register(self.stop)    # even if the test session dies before its teardown
        if os.geteuid() == 0:  # postgres will not run as root: hand the directory to nobody
            pw = pwd.getpwnam("nobody")
            self._as = (pw.pw_uid, pw.pw_gid)
            os.chown(self._root, pw.pw_uid, pw.pw_gid)
        os.chmod(self._root, 0o700)
        self.datadir = pathlib.Path(self._root) / "data"
        r = self._run([os.path.join(self.bindir, "initdb"), "-D", str(self.datadir), "-U", self.USER,
                       "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-instructions"]
                      + ([] if self.durable else ["--no-sync"]))
        if r.returncode != 0:
            self.stop()
            raise PgUnavailable("initdb failed (%d): %s" % (r.returncode, (r.stderr or r.stdout)[-2000:]))
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": "'%s'" % self._root,
            "max_connections": "50",
            "shared_buffers": "128MB",
            "max_wal_size": "2GB",
            "timezone": "'UTC'",
            "log_min_messages": "warning",
            "logging_collector": "off",
        }
        if not self.durable:
            conf.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        conf.update(self.settings)
        for attempt in range(5):
            self.port = _free_port()
            conf["port"] = str(self.port)
            with open(self.datadir / "postgresql.auto.conf", "w") as f:
                f.write("".join("%s = %s\n" % kv for kv in conf.items()))
            r = self._run([os.path.join(self.bindir, "pg_ctl"), "-D", str(self.datadir), "-w", "-t", "60",
                           "-l", str(pathlib.Path(self._root) / "server.log"), "start"])
            if r.returncode == 0:
                return self
            if "could not bind" not in self.log() and "already in use" not in self.log():
                break
        log = self.log()
        self.stop()
        raise PgUnavailable("PostgreSQL server did not start: %s\n%s" % ((r.stderr or r.stdout)[-1000:], log[-2000:]))

    def log(self) -> str:
        try:
            return (pathlib.Path(self._root or "/nonexistent") / "server.log").read_text(errors="replace")
        except OSError:
            return ""

    def url(self, database: str = "postgres") -> str:
        return "postgresql://%s@127.0.0.1:%d/%s" % (self.USER, self.port, database)

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL with the server's own psql (used to create test databases)."""
        r = self._run([os.path.join(self.bindir, "psql"), "-h", "127.0.0.1", "-p", str(self.port),
                       "-U", self.USER, "-d", database, "-v", "ON_ERROR_STOP=1", "-qAtc", sql], timeout=60)
        if r.returncode != 0:
            raise RuntimeError("psql failed: %s" % r.stderr)
        return r.stdout

    def create_database(self, name: str) -> str:
        """A fresh empty database; returns its URL."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError("database name %r" % name)
        self.psql("CREATE DATABASE %s TEMPLATE template0" % name)
        return self.url(name)

    def stop(self) -> None:
        if self.datadir is not None and (self.datadir / "postmaster.pid").exists():
            with contextlib.suppress(Exception):
                self._run([os.path.join(self.bindir, "pg_ctl"), "-D", str(self.datadir), "-w", "-t", "30",
                           "-m", "immediate", "stop"], timeout=60)
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None
        self.datadir = None

    def __enter__(self) -> "PgServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def require_server(**kwargs) -> PgServer:
    """Start a server, or raise: ``pytest.fail`` with a clear message when PostgreSQL is
    missing, ``pytest.skip`` only when METERPOLL_SKIP_PG=1 says so."""
    import pytest

    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip("%s=1: PostgreSQL store tests skipped on request" % SKIP_ENV)
    try:
        return PgServer(**kwargs).start()
    except PgUnavailable as e:
        pytest.fail(str(e), pytrace=False)
